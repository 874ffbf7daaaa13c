import pytest

from accounts.models import SshKey
from instances.models import Instance, InstanceEvent, Standby
from instances.tests.factories import InstanceFactory, StandbyFactory

pytestmark = pytest.mark.django_db

ED25519_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGqGZpZ4hDXaFy0qzSs5DhiW1vx2Sh3xZzG8rO7vSbWp a@host"
)


def _create(account, **body):
    body = {"gpu": "RTX 4090", "region": "US-East", "max_price": 2.0, **body}
    return account.client.post("/api/instances", body, format="json")


def test_creating_an_instance_answers_202_pending_and_records_the_first_event(owner, simulator):
    response = _create(owner, gpu="rtx4090", name="trainer")

    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "pending"
    assert body["gpu"] == "RTX 4090"
    assert body["name"] == "trainer"
    assert body["max_price"] == 2.0
    assert body["max_price_micros"] == 2_000_000
    instance = Instance.objects.get(pk=body["id"])
    assert instance.tenant == owner.tenant
    assert list(instance.events.values_list("to_status", flat=True)) == ["pending"]


@pytest.mark.parametrize("spelling", ["RTX 4090", "rtx4090", "RTX4090", "rtx-4090", " Rtx 4090 "])
def test_gpu_names_are_accepted_in_any_case_and_spacing(owner, simulator, spelling):
    response = _create(owner, gpu=spelling)

    assert response.status_code == 202, response.content
    assert response.json()["gpu"] == "RTX 4090"


def test_the_region_may_be_left_out(owner, simulator):
    response = _create(owner, region="")

    assert response.status_code == 202
    assert response.json()["requested_region"] == ""


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"gpu": "GTX 9999"}, "unknown_gpu"),
        ({"region": "Mars-1"}, "unknown_region"),
        ({"max_price": -1}, "min_value"),
        ({"max_price": "cheap"}, "invalid"),
        ({"gpu_count": 0}, "min_value"),
        ({"ssh_key_ids": [999999]}, "unknown_ssh_key"),
        ({"image": "$(rm -rf /)"}, "invalid"),
    ],
)
def test_bad_input_gets_a_400_with_a_code_and_creates_nothing(owner, simulator, body, code):
    response = _create(owner, **body)

    assert response.status_code == 400, response.content
    assert response.json()["code"] == code
    assert not Instance.objects.exists()


def test_another_tenants_ssh_key_cannot_be_attached(two_tenants, simulator):
    a, b = two_tenants
    key = SshKey.objects.create(
        tenant=b.tenant,
        name="b",
        public_key=ED25519_KEY,
        key_type="ed25519",
        bits=256,
        fingerprint="SHA256:x",
    )

    response = _create(a, ssh_key_ids=[key.pk])

    assert response.status_code == 400
    assert response.json()["code"] == "unknown_ssh_key"


def test_no_offer_under_the_price_is_a_409_listing_cheaper_alternatives(owner, simulator):
    response = _create(owner, gpu="H100", max_price=0.05)

    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "no_capacity"
    assert body["alternatives"], body
    for alternative in body["alternatives"]:
        assert set(alternative) == {
            "gpu",
            "region",
            "gpu_count",
            "price_per_hour",
            "available",
            "why",
        }
        assert alternative["available"] > 0
    same_gpu = [alt for alt in body["alternatives"] if alt["gpu"] == "H100"]
    assert same_gpu and all(alt["price_per_hour"] > 0.05 for alt in same_gpu)
    assert not Instance.objects.exists()


def test_hibernating_an_instance_that_is_not_running_is_a_409(owner):
    instance = InstanceFactory(tenant=owner.tenant, status=Instance.Status.PENDING)

    response = owner.client.post(f"/api/instances/{instance.pk}/hibernate")

    assert response.status_code == 409
    assert response.json()["code"] == "invalid_transition"
    assert response.json()["status"] == "pending"
    instance.refresh_from_db()
    assert instance.status == "pending"


def test_waking_a_running_instance_is_a_409(owner):
    instance = InstanceFactory(tenant=owner.tenant, status=Instance.Status.RUNNING)

    response = owner.client.post(f"/api/instances/{instance.pk}/wake")

    assert response.status_code == 409
    assert response.json()["code"] == "invalid_transition"


def test_deleting_is_idempotent_while_deleting_and_refused_once_deleted(owner):
    instance = InstanceFactory(tenant=owner.tenant, status=Instance.Status.RUNNING)

    first = owner.client.delete(f"/api/instances/{instance.pk}")
    second = owner.client.delete(f"/api/instances/{instance.pk}")
    Instance.objects.filter(pk=instance.pk).update(status=Instance.Status.DELETED)
    third = owner.client.delete(f"/api/instances/{instance.pk}")

    assert (first.status_code, first.json()["status"]) == (202, "deleting")
    assert (second.status_code, second.json()["status"]) == (202, "deleting")
    assert InstanceEvent.objects.filter(instance=instance, to_status="deleting").count() == 1
    assert third.status_code == 409


def test_the_list_filters_by_status_and_paginates(owner):
    InstanceFactory.create_batch(3, tenant=owner.tenant, status=Instance.Status.RUNNING)
    InstanceFactory(tenant=owner.tenant, status=Instance.Status.HIBERNATED)

    running = owner.client.get("/api/instances?status=running&limit=2").json()
    hibernated = owner.client.get("/api/instances?status=hibernated").json()

    assert running["count"] == 3
    assert len(running["results"]) == 2
    assert running["next"]
    assert [item["status"] for item in hibernated["results"]] == ["hibernated"]


def test_the_list_shows_each_instances_current_standby_and_where_to_connect(owner):
    following = InstanceFactory(tenant=owner.tenant, status=Instance.Status.RUNNING)
    StandbyFactory(instance=following, status=Standby.Status.LOST)
    StandbyFactory(instance=following, status=Standby.Status.FOLLOWING)
    serving = InstanceFactory(
        tenant=owner.tenant, status=Instance.Status.ON_STANDBY, is_on_standby=True
    )
    StandbyFactory(
        instance=serving, status=Standby.Status.SERVING, ssh_host="cpu.example.net", ssh_port=2222
    )
    bare = InstanceFactory(tenant=owner.tenant, status=Instance.Status.RUNNING)
    StandbyFactory(instance=bare, status=Standby.Status.DELETED)

    listed = {item["id"]: item for item in owner.client.get("/api/instances").json()["results"]}

    assert listed[following.pk]["standby"]["status"] == "following"
    assert listed[serving.pk]["standby"]["status"] == "serving"
    assert listed[serving.pk]["connection"]["ssh_command"] == "ssh -p 2222 root@cpu.example.net"
    assert listed[bare.pk]["standby"] is None


def test_listing_50_instances_costs_the_queries_of_listing_2(
    owner, django_assert_max_num_queries, django_assert_num_queries
):
    def add_instances(count):
        for _ in range(count):
            instance = InstanceFactory(tenant=owner.tenant, status=Instance.Status.RUNNING)
            StandbyFactory(instance=instance, status=Standby.Status.FOLLOWING)

    add_instances(2)
    owner.client.get("/api/instances")  # the token's first use of the minute also writes
    with django_assert_max_num_queries(10) as few:
        assert len(owner.client.get("/api/instances").json()["results"]) == 2
    add_instances(48)

    with django_assert_num_queries(len(few.captured_queries)):
        page = owner.client.get("/api/instances").json()["results"]

    assert len(page) == 50
    assert {item["standby"]["status"] for item in page} == {"following"}


def test_an_unknown_status_filter_is_a_400(owner):
    response = owner.client.get("/api/instances?status=flying")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_choice"


def test_another_tenants_instance_is_a_404_everywhere(two_tenants):
    a, b = two_tenants
    instance = InstanceFactory(tenant=a.tenant, status=Instance.Status.RUNNING)

    for method, path in [
        ("get", ""),
        ("get", "/events"),
        ("post", "/hibernate"),
        ("post", "/wake"),
        ("delete", ""),
    ]:
        response = getattr(b.client, method)(f"/api/instances/{instance.pk}{path}")
        assert response.status_code == 404, (method, path)

    instance.refresh_from_db()
    assert instance.status == "running"


def test_less_than_an_hour_of_credit_is_a_402_and_creates_nothing(owner, simulator):
    from billing import ledger

    ledger.post(owner.tenant, "adjustment", -78_990_000, idempotency_key="spent")

    response = _create(owner, gpu="RTX 4090", max_price=2.0)

    assert response.status_code == 402
    assert response.json()["code"] == "insufficient_credits"
    assert "the balance is $0.01" in response.json()["detail"]
    assert not Instance.objects.exists()
