"""/api/webhooks and /api/webhook-deliveries: endpoints, secrets, roles, delivery log, resend."""

import json

import pytest
from django.db import transaction
from django.utils import timezone

from accounts.models import AuditLog, Membership
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.services import emit
from webhooks.signing import verify
from webhooks.tests.factories import make_endpoint, receiver_url

WEBHOOKS = "/api/webhooks"
DELIVERIES = "/api/webhook-deliveries"
PUBLIC_URL = "https://93.184.216.34/dumont"


def _create(account, **fields):
    body = {"url": PUBLIC_URL, "events": ["instance.running"], **fields}
    return account.client.post(WEBHOOKS, body, format="json")


@pytest.fixture
def member(owner, account_factory):
    return account_factory(role=Membership.Role.MEMBER, tenant=owner.tenant)


@pytest.fixture
def run_after_commit(django_capture_on_commit_callbacks, tasks_run_here, allow_loopback):
    """Run what a request queued after commit (the delivery task) in this process."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.mark.django_db
def test_creating_an_endpoint_shows_its_secret_once(owner):
    response = _create(owner, description="production", events=["instance.deleted", "balance.low"])

    assert response.status_code == 201
    body = response.json()
    endpoint = WebhookEndpoint.objects.get()
    assert body["secret"] == endpoint.secret
    assert body["secret"].startswith("whsec_") and len(body["secret"]) > 40
    assert body["events"] == ["instance.deleted", "balance.low"]
    assert body["is_active"] is True
    detail = owner.client.get(f"{WEBHOOKS}/{body['id']}")
    listing = owner.client.get(WEBHOOKS)
    assert "secret" not in detail.json()
    assert detail.json()["secret_prefix"] == endpoint.secret[:12]
    assert endpoint.secret not in detail.content.decode() + listing.content.decode()
    assert listing.json()["count"] == 1
    entry = AuditLog.objects.get(action=AuditLog.Action.WEBHOOK_CREATED)
    assert entry.target == PUBLIC_URL
    assert endpoint.secret not in json.dumps(entry.metadata)


@pytest.mark.django_db
def test_an_unknown_event_name_is_a_400_unknown_event(owner):
    response = _create(owner, events=["instance.running", "instance.exploded"])

    assert response.status_code == 400
    assert response.json()["code"] == "unknown_event"
    assert "instance.exploded" in response.json()["detail"]


@pytest.mark.django_db
def test_an_endpoint_must_subscribe_to_something(owner):
    response = _create(owner, events=[])

    assert response.status_code == 400
    assert response.json()["errors"]["events"][0]["code"] == "empty"


@pytest.mark.django_db
def test_members_read_endpoints_but_cannot_change_them(owner, member):
    endpoint_id = _create(owner).json()["id"]

    reads = [member.client.get(WEBHOOKS), member.client.get(f"{WEBHOOKS}/{endpoint_id}")]
    writes = [
        _create(member),
        member.client.patch(f"{WEBHOOKS}/{endpoint_id}", {"is_active": False}, format="json"),
        member.client.delete(f"{WEBHOOKS}/{endpoint_id}"),
        member.client.post(f"{WEBHOOKS}/{endpoint_id}/rotate-secret"),
        member.client.post(f"{WEBHOOKS}/{endpoint_id}/ping"),
    ]

    assert [response.status_code for response in reads] == [200, 200]
    assert [response.status_code for response in writes] == [403] * 5
    assert {response.json()["code"] for response in writes} == {"permission_denied"}
    assert WebhookEndpoint.objects.get().is_active


@pytest.mark.django_db
def test_an_admin_changes_events_and_disables_an_endpoint(owner):
    endpoint_id = _create(owner).json()["id"]

    response = owner.client.patch(
        f"{WEBHOOKS}/{endpoint_id}",
        {"events": ["price.alert", "price.changed", "price.alert"], "is_active": False},
        format="json",
    )

    assert response.status_code == 200
    assert response.json()["events"] == ["price.alert", "price.changed"]
    assert response.json()["is_active"] is False
    entry = AuditLog.objects.get(action=AuditLog.Action.WEBHOOK_UPDATED)
    assert entry.metadata["before"] == {"events": ["instance.running"], "is_active": True}


@pytest.mark.django_db
def test_put_is_not_offered(owner):
    endpoint_id = _create(owner).json()["id"]

    response = owner.client.put(
        f"{WEBHOOKS}/{endpoint_id}", {"url": PUBLIC_URL, "events": ["balance.low"]}, format="json"
    )

    assert response.status_code == 405


@pytest.mark.django_db
def test_deleting_an_endpoint_removes_its_deliveries(owner):
    endpoint_id = _create(owner).json()["id"]
    emit(owner.tenant, "instance.running", {})

    response = owner.client.delete(f"{WEBHOOKS}/{endpoint_id}")

    assert response.status_code == 204
    assert not WebhookEndpoint.objects.exists()
    assert not WebhookDelivery.objects.exists()
    assert AuditLog.objects.filter(action=AuditLog.Action.WEBHOOK_DELETED).count() == 1


@pytest.mark.django_db
def test_rotating_the_secret_signs_the_next_delivery_with_the_new_one(
    owner, httpserver, run_after_commit
):
    endpoint = make_endpoint(owner.tenant, receiver_url(httpserver))
    old_secret = endpoint.secret
    httpserver.expect_request("/hook").respond_with_data("ok")

    response = owner.client.post(f"{WEBHOOKS}/{endpoint.pk}/rotate-secret")
    with run_after_commit(), transaction.atomic():
        emit(owner.tenant, "instance.running", {})

    new_secret = response.json()["secret"]
    assert response.status_code == 200
    assert new_secret != old_secret and new_secret.startswith("whsec_")
    (request, _), *_ = httpserver.log
    header = request.headers["Dumont-Signature"]
    assert verify(new_secret, request.get_data(), header)
    assert not verify(old_secret, request.get_data(), header)
    assert AuditLog.objects.filter(action=AuditLog.Action.WEBHOOK_SECRET_ROTATED).exists()


@pytest.mark.django_db
def test_ping_sends_a_test_event_to_the_endpoint_now(owner, httpserver, run_after_commit):
    endpoint = make_endpoint(owner.tenant, receiver_url(httpserver), events=["balance.low"])
    httpserver.expect_request("/hook").respond_with_data("pong")

    with run_after_commit():
        response = owner.client.post(f"{WEBHOOKS}/{endpoint.pk}/ping")

    assert response.status_code == 202
    assert response.json()["event"] == "ping"
    (request, _), *_ = httpserver.log
    assert request.headers["Dumont-Event"] == "ping"
    assert json.loads(request.get_data())["data"]["endpoint"]["id"] == endpoint.pk
    detail = owner.client.get(f"{DELIVERIES}/{response.json()['id']}").json()
    assert detail["status"] == "succeeded"
    assert detail["response_body_excerpt"] == "pong"


@pytest.mark.django_db
def test_the_delivery_log_is_newest_first_and_filters_by_status_and_event(owner):
    endpoint = make_endpoint(owner.tenant)
    older = emit(owner.tenant, "instance.created", {})[0]
    newer = emit(owner.tenant, "instance.running", {})[0]
    WebhookDelivery.objects.filter(pk=older.pk).update(
        status="failed", next_attempt_at=None, last_attempt_at=timezone.now()
    )
    log = f"{WEBHOOKS}/{endpoint.pk}/deliveries"

    everything = owner.client.get(log).json()
    failed = owner.client.get(log, {"status": "failed"}).json()
    running = owner.client.get(log, {"event": "instance.running"}).json()
    first_page = owner.client.get(log, {"limit": 1}).json()
    invalid = owner.client.get(log, {"status": "exploded"})

    assert [row["id"] for row in everything["results"]] == [newer.pk, older.pk]
    assert [row["id"] for row in failed["results"]] == [older.pk]
    assert [row["id"] for row in running["results"]] == [newer.pk]
    assert first_page["count"] == 2 and len(first_page["results"]) == 1
    assert first_page["next"] is not None
    assert invalid.status_code == 400
    assert invalid.json()["code"] == "invalid_choice"


@pytest.mark.django_db
def test_members_read_the_delivery_log_and_a_delivery(owner, member):
    endpoint = make_endpoint(owner.tenant)
    (delivery,) = emit(owner.tenant, "instance.running", {"instance": {"id": 4}})

    log = member.client.get(f"{WEBHOOKS}/{endpoint.pk}/deliveries")
    detail = member.client.get(f"{DELIVERIES}/{delivery.pk}")

    assert log.status_code == 200
    assert detail.status_code == 200
    assert detail.json()["event_id"] == str(delivery.event_id)
    assert detail.json()["payload"]["data"] == {"instance": {"id": 4}}
    assert member.client.post(f"{DELIVERIES}/{delivery.pk}/redeliver").status_code == 403


@pytest.mark.django_db
def test_redeliver_sends_the_same_event_again_as_a_new_delivery(
    owner, httpserver, run_after_commit
):
    make_endpoint(owner.tenant, receiver_url(httpserver))
    httpserver.expect_request("/hook").respond_with_data("ok")
    with run_after_commit(), transaction.atomic():
        (original,) = emit(owner.tenant, "instance.running", {"instance": {"id": 5}})

    with run_after_commit():
        response = owner.client.post(f"{DELIVERIES}/{original.pk}/redeliver")

    assert response.status_code == 202
    resent = WebhookDelivery.objects.get(pk=response.json()["id"])
    assert resent.pk != original.pk
    assert resent.event_id == original.event_id
    assert resent.status == WebhookDelivery.Status.SUCCEEDED
    first, second = (request for request, _ in httpserver.log)
    assert json.loads(first.get_data()) == json.loads(second.get_data())
    assert first.headers["Dumont-Delivery"] != second.headers["Dumont-Delivery"]
    assert AuditLog.objects.filter(action=AuditLog.Action.WEBHOOK_REDELIVERED).count() == 1


@pytest.mark.django_db
def test_redeliver_to_a_disabled_endpoint_is_a_409(owner):
    endpoint = make_endpoint(owner.tenant)
    (delivery,) = emit(owner.tenant, "instance.running", {})
    endpoint.is_active = False
    endpoint.save()

    response = owner.client.post(f"{DELIVERIES}/{delivery.pk}/redeliver")

    assert response.status_code == 409
    assert response.json()["code"] == "endpoint_inactive"
    assert WebhookDelivery.objects.count() == 1


@pytest.mark.django_db
def test_an_organisation_has_at_most_twenty_endpoints(owner):
    for _ in range(20):
        make_endpoint(owner.tenant)

    response = _create(owner)

    assert response.status_code == 400
    assert response.json()["code"] == "too_many_endpoints"
    assert WebhookEndpoint.objects.count() == 20
