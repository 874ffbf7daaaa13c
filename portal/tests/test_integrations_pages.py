"""Settings → Standby Config and Webhooks: forms, roles, the delivery log, tenant isolation."""

import pytest
from django.test import Client

from accounts.models import AuditLog, Membership, TenantSettings
from dumont.celery import app
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.services import emit

pytestmark = pytest.mark.django_db

STANDBY = "/settings/standby/"
WEBHOOKS = "/settings/webhooks/"
PUBLIC_URL = "https://93.184.216.34/dumont"


def _browser(account) -> Client:
    client = Client()
    client.force_login(account.user)
    return client


@pytest.fixture
def browser(owner) -> Client:
    return _browser(owner)


@pytest.fixture
def member(owner, account_factory):
    return account_factory(role=Membership.Role.MEMBER, tenant=owner.tenant)


@pytest.fixture
def tasks_run_here():
    """`.delay()` runs the real delivery task in this process."""
    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager = False
    app.conf.task_eager_propagates = False


def _endpoint(client, **fields):
    form = {"url": PUBLIC_URL, "description": "prod", "events": ["instance.running"], **fields}
    return client.post(WEBHOOKS, form)


# --- Standby Config --------------------------------------------------------------------------


def test_the_standby_form_saves_the_settings_and_audits_them(browser, owner):
    response = browser.post(STANDBY, {"idle_threshold_percent": 12, "idle_minutes": 30})

    assert response.status_code == 302
    assert response["Location"] == STANDBY
    saved = TenantSettings.objects.get(tenant=owner.tenant)
    assert (saved.auto_hibernate, saved.idle_threshold_percent, saved.idle_minutes) == (
        False,
        12,
        30,
    )
    assert AuditLog.objects.filter(action=AuditLog.Action.SETTINGS_CHANGED).exists()
    page = browser.get(STANDBY).content.decode()
    assert 'value="12"' in page and 'value="30"' in page
    assert 'aria-current="page">Standby Config' in page


@pytest.mark.parametrize(
    ("form", "field"),
    [
        ({"idle_threshold_percent": 0, "idle_minutes": 5}, "idle_threshold_percent"),
        ({"idle_threshold_percent": 101, "idle_minutes": 5}, "idle_threshold_percent"),
        ({"idle_threshold_percent": 5, "idle_minutes": 0}, "idle_minutes"),
        ({"idle_threshold_percent": 5, "idle_minutes": 1441}, "idle_minutes"),
        ({"idle_threshold_percent": "lots", "idle_minutes": ""}, "idle_minutes"),
    ],
)
def test_out_of_range_standby_values_are_field_errors(browser, owner, form, field):
    response = browser.post(STANDBY, {"auto_hibernate": "on", **form})

    page = response.content.decode()
    assert response.status_code == 400
    assert f'name="{field}"' in page
    assert 'aria-invalid="true"' in page
    assert "field-error" in page
    saved = TenantSettings.objects.get(tenant=owner.tenant)
    assert (saved.idle_threshold_percent, saved.idle_minutes) == (5, 5)


def test_a_member_reads_the_standby_config_but_cannot_change_it(member):
    client = _browser(member)

    page = client.get(STANDBY).content.decode()
    refused = client.post(STANDBY, {"idle_threshold_percent": 50, "idle_minutes": 50})

    assert "Only owners and admins" in page
    assert "disabled" in page
    assert refused.status_code == 403
    assert TenantSettings.objects.get(tenant=member.tenant).idle_minutes == 5


def test_each_tenant_sees_and_changes_only_its_own_standby_config(two_tenants):
    a, b = two_tenants
    _browser(a).post(STANDBY, {"idle_threshold_percent": 77, "idle_minutes": 777})

    page = _browser(b).get(STANDBY).content.decode()

    assert 'value="777"' not in page
    assert TenantSettings.objects.get(tenant=b.tenant).idle_minutes == 5


# --- Webhooks ------------------------------------------------------------------------------------


def test_creating_an_endpoint_shows_its_secret_once(browser, owner):
    response = _endpoint(browser, events=["instance.running", "balance.low"])

    endpoint = WebhookEndpoint.objects.get(tenant=owner.tenant)
    assert response.status_code == 302
    assert response["Location"] == f"{WEBHOOKS}{endpoint.pk}/"
    first = browser.get(response["Location"]).content.decode()
    second = browser.get(response["Location"]).content.decode()
    listing = browser.get(WEBHOOKS).content.decode()
    assert endpoint.secret in first
    assert endpoint.secret not in second + listing
    assert endpoint.secret_prefix in listing
    assert endpoint.events == ["instance.running", "balance.low"]
    assert AuditLog.objects.filter(action=AuditLog.Action.WEBHOOK_CREATED).exists()


@pytest.mark.parametrize(
    ("form", "field", "message"),
    [
        ({"url": "ftp://example.com/x"}, "url", "Only http:// and https://"),
        ({"url": "http://127.0.0.1:8000/hook"}, "url", "non-public address"),
        ({"url": "http://169.254.169.254/latest"}, "url", "non-public address"),
        ({"url": ""}, "url", "This field is required."),
        ({"events": []}, "events", "Choose at least one event."),
        ({"events": ["instance.exploded"]}, "events", "Select a valid choice."),
    ],
)
def test_a_bad_endpoint_is_a_field_error_as_in_the_api(browser, form, field, message):
    response = _endpoint(browser, **form)

    page = response.content.decode()
    assert response.status_code == 400
    assert message in page
    assert not WebhookEndpoint.objects.exists()


def test_disable_enable_and_delete_an_endpoint(browser, owner):
    _endpoint(browser)
    endpoint = WebhookEndpoint.objects.get()
    base = f"{WEBHOOKS}{endpoint.pk}"

    browser.post(f"{base}/toggle/")
    disabled = WebhookEndpoint.objects.get().is_active
    refused_test = browser.post(f"{base}/test/", follow=True)
    browser.post(f"{base}/toggle/")
    enabled = WebhookEndpoint.objects.get().is_active
    deleted = browser.post(f"{base}/delete/")

    assert (disabled, enabled) == (False, True)
    assert "This endpoint is disabled" in refused_test.content.decode()
    assert deleted.status_code == 302 and deleted["Location"] == WEBHOOKS
    assert not WebhookEndpoint.objects.exists()


def test_an_admin_edits_an_endpoints_url_and_events(browser, owner):
    _endpoint(browser)
    endpoint = WebhookEndpoint.objects.get()
    edit = f"{WEBHOOKS}{endpoint.pk}/edit/"

    page = browser.get(f"{WEBHOOKS}{endpoint.pk}/").content.decode()
    refused = browser.post(edit, {"url": "http://10.0.0.8/in", "events": ["balance.low"]})
    saved = browser.post(
        edit,
        {"url": "https://93.184.216.35/new", "description": "new", "events": ["balance.low"]},
    )

    assert f'value="{PUBLIC_URL}"' in page
    assert refused.status_code == 400
    assert "non-public address" in refused.content.decode()
    assert "<details open>" in refused.content.decode()
    assert saved.status_code == 302
    endpoint.refresh_from_db()
    assert (endpoint.url, endpoint.description, endpoint.events) == (
        "https://93.184.216.35/new",
        "new",
        ["balance.low"],
    )
    assert AuditLog.objects.filter(action=AuditLog.Action.WEBHOOK_UPDATED).count() == 1


def test_a_test_event_reaches_the_receiver_and_shows_in_the_delivery_log(
    browser, owner, httpserver, settings, tasks_run_here, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    httpserver.expect_request("/hook").respond_with_data("pong", status=202)
    _endpoint(browser, url=f"http://127.0.0.1:{httpserver.port}/hook")
    endpoint = WebhookEndpoint.objects.get()

    with django_capture_on_commit_callbacks(execute=True):
        response = browser.post(f"{WEBHOOKS}{endpoint.pk}/test/")

    assert response.status_code == 302
    (request, _), *_ = httpserver.log
    assert request.headers["Dumont-Event"] == "ping"
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == WebhookDelivery.Status.SUCCEEDED
    log = browser.get(response["Location"]).content.decode()
    assert "<code>ping</code>" in log
    assert "<td>202</td>" in log
    assert "Succeeded" in log


def test_the_delivery_log_is_paginated_newest_first(browser, owner):
    _endpoint(browser)
    endpoint = WebhookEndpoint.objects.get()
    for _ in range(30):
        emit(owner.tenant, "instance.running", {})
    newest = WebhookDelivery.objects.latest("created_at", "id")
    oldest = WebhookDelivery.objects.earliest("created_at", "id")

    first = browser.get(f"{WEBHOOKS}{endpoint.pk}/")
    second = browser.get(f"{WEBHOOKS}{endpoint.pk}/", {"page": 2})

    assert first.context["deliveries"][0].pk == newest.pk
    assert len(first.context["deliveries"]) == 25
    assert list(second.context["deliveries"])[-1].pk == oldest.pk
    assert "Page 1 of 2" in first.content.decode()


def test_the_delivery_log_query_count_does_not_grow_with_rows(
    browser, owner, django_assert_max_num_queries
):
    _endpoint(browser)
    endpoint = WebhookEndpoint.objects.get()
    for _ in range(3):
        emit(owner.tenant, "instance.running", {})
    with django_assert_max_num_queries(100) as few:
        browser.get(f"{WEBHOOKS}{endpoint.pk}/")
    for _ in range(40):
        emit(owner.tenant, "instance.running", {})

    with django_assert_max_num_queries(len(few.captured_queries)):
        response = browser.get(f"{WEBHOOKS}{endpoint.pk}/")

    assert len(response.context["deliveries"]) == 25


def test_a_member_reads_webhooks_and_their_log_but_cannot_change_them(owner, browser, member):
    _endpoint(browser)
    endpoint = WebhookEndpoint.objects.get()
    client = _browser(member)

    listing = client.get(WEBHOOKS).content.decode()
    detail = client.get(f"{WEBHOOKS}{endpoint.pk}/").content.decode()
    refused = [
        client.post(WEBHOOKS, {"url": PUBLIC_URL, "events": ["instance.running"]}),
        client.post(f"{WEBHOOKS}{endpoint.pk}/edit/", {"url": PUBLIC_URL, "events": ["ping"]}),
        client.post(f"{WEBHOOKS}{endpoint.pk}/toggle/"),
        client.post(f"{WEBHOOKS}{endpoint.pk}/test/"),
        client.post(f"{WEBHOOKS}{endpoint.pk}/rotate-secret/"),
        client.post(f"{WEBHOOKS}{endpoint.pk}/delete/"),
    ]

    assert PUBLIC_URL in listing and "Add endpoint" not in listing
    assert "Delivery log" in detail and f"{endpoint.pk}/test/" not in detail
    assert [response.status_code for response in refused] == [403] * 6
    assert WebhookEndpoint.objects.get().is_active
    assert not WebhookDelivery.objects.exists()


def test_another_tenant_gets_404_on_an_endpoint_and_its_actions(two_tenants):
    a, b = two_tenants
    _endpoint(_browser(a), description="alpha-endpoint")
    endpoint = WebhookEndpoint.objects.get()
    emit(a.tenant, "instance.running", {})
    intruder = _browser(b)
    base = f"{WEBHOOKS}{endpoint.pk}"

    responses = [
        intruder.get(f"{base}/"),
        intruder.post(f"{base}/edit/", {"url": PUBLIC_URL, "events": ["balance.low"]}),
        intruder.post(f"{base}/toggle/"),
        intruder.post(f"{base}/test/"),
        intruder.post(f"{base}/rotate-secret/"),
        intruder.post(f"{base}/delete/"),
    ]

    assert [response.status_code for response in responses] == [404] * 6
    assert "alpha-endpoint" not in intruder.get(WEBHOOKS).content.decode()
    unchanged = WebhookEndpoint.objects.get()
    assert (unchanged.is_active, unchanged.secret) == (True, endpoint.secret)
    assert WebhookDelivery.objects.count() == 1
