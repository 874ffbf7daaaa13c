"""The instance pages: the dashboard's cards and their actions, an instance's page, the
new-instance wizard (through to an instance on the simulated market) and the snapshots page."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import SshKey
from billing import ledger
from billing.models import LedgerEntry, UsageInterval
from billing.money import usd_text
from instances.models import Failover, Instance, InstanceEvent
from instances.tests.factories import InstanceFactory
from snapshots.models import Restore, Snapshot

pytestmark = pytest.mark.django_db

Status = Instance.Status
ED25519_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGqGZpZ4hDXaFy0qzSs5DhiW1vx2Sh3xZzG8rO7vSbWp a@host"
)

CLOSED_URL = "http://127.0.0.1:9"  # nothing listens there: a provider that does not answer


def _browser(account) -> Client:
    client = Client()
    client.force_login(account.user)
    return client


@pytest.fixture
def browser(owner) -> Client:
    return _browser(owner)


def _instance(account, **fields) -> Instance:
    fields.setdefault("status", Status.RUNNING)
    return InstanceFactory(tenant=account.tenant, **fields)


def _snapshot(instance: Instance, **fields) -> Snapshot:
    fields.setdefault("status", Snapshot.Status.COMPLETED)
    fields.setdefault("name", f"snap-of-{instance.name}")
    return Snapshot.objects.create(
        tenant_id=instance.tenant_id,
        instance=instance,
        source_gpu=instance.gpu,
        source_region=instance.region,
        engine_snapshot_id="engine-1" if fields["status"] == Snapshot.Status.COMPLETED else "",
        **fields,
    )


def _htmx(client: Client, path: str, **data):
    return client.post(path, data, HTTP_HX_REQUEST="true")


# --- Dashboard ---------------------------------------------------------------------------------


def test_an_organisation_without_instances_sees_the_way_to_the_wizard(browser):
    page = browser.get("/").content.decode()

    assert "No instances yet" in page
    assert 'href="/instances/new/"' in page
    assert "data-instance-id" not in page


def test_a_card_shows_status_gpu_region_price_and_ssh_command(browser, owner, settings):
    settings.BILLING_GPU_MARGIN_PERCENT = 20
    instance = _instance(
        owner,
        name="trainer",
        gpu="A100",
        gpu_count=2,
        region="EU-West",
        price_micros=1_000_000,
        ssh_host="ssh5.example.net",
        ssh_port=40022,
    )

    page = browser.get("/").content.decode()

    assert f'data-instance-id="{instance.pk}"' in page
    assert 'data-status="running"' in page and ">Running<" in page
    assert "2\u00d7 A100" in page and "EU-West" in page
    assert "$1.20/h" in page  # the market price with the margin the customer pays
    assert "ssh -p 40022 root@ssh5.example.net" in page
    assert f"https://{instance.pk}-8888." in page
    assert 'data-action="hibernate"' in page and 'data-action="delete"' in page
    assert 'data-action="wake"' not in page


def test_a_hibernated_card_offers_wake_and_no_connection(browser, owner):
    _instance(owner, status=Status.HIBERNATED, ssh_host="h", ssh_port=22)

    page = browser.get("/").content.decode()

    assert 'data-status="hibernated"' in page
    assert 'data-action="wake"' in page and 'data-action="hibernate"' not in page
    assert "ssh -p" not in page


def test_deleted_instances_leave_the_dashboard(browser, owner):
    _instance(owner, status=Status.DELETED, name="gone-box")

    page = browser.get("/").content.decode()

    assert "gone-box" not in page


def test_the_cost_so_far_adds_posted_usage_and_what_the_open_interval_owes(browser, owner):
    instance = _instance(owner)
    ledger.post(
        owner.tenant,
        LedgerEntry.Kind.USAGE_GPU,
        -1_500_000,
        idempotency_key="usage-1",
        reference=instance.pk,
    )
    UsageInterval.objects.create(
        tenant=owner.tenant,
        kind=UsageInterval.Kind.GPU,
        subject_id=instance.pk,
        price_micros_per_hour=2_000_000,
        started_at=timezone.now() - timedelta(hours=1),
        posted_until=timezone.now() - timedelta(hours=1),
    )

    page = browser.get("/").content.decode()

    assert 'data-cost-usd="3.50"' in page


def test_the_dashboard_costs_the_same_queries_for_3_or_30_instances(
    browser, owner, django_assert_max_num_queries
):
    for _ in range(3):
        _instance(owner, ssh_host="h", ssh_port=22, price_micros=500_000)
    with django_assert_max_num_queries(30) as few:
        browser.get("/")
    for number in range(27):
        instance = _instance(owner, status=Status.ON_STANDBY, is_on_standby=True)
        ledger.post(
            owner.tenant,
            LedgerEntry.Kind.USAGE_GPU,
            -1000,
            idempotency_key=f"u{number}",
            reference=instance.pk,
        )

    with django_assert_max_num_queries(len(few.captured_queries)):
        page = browser.get("/").content.decode()

    assert page.count("data-instance-id=") == 30


def test_hibernating_from_the_card_answers_the_card_hibernating(browser, owner):
    instance = _instance(owner)

    response = _htmx(browser, f"/instances/{instance.pk}/hibernate/")

    page = response.content.decode()
    assert response.status_code == 200
    assert 'data-status="hibernating"' in page and "Hibernating" in page
    assert "<html" not in page  # only the card
    instance.refresh_from_db()
    assert instance.status == Status.HIBERNATING
    assert instance.events.filter(to_status=Status.HIBERNATING).exists()


def test_a_refused_action_leaves_the_instance_and_says_why_on_the_card(browser, owner):
    instance = _instance(owner)

    page = _htmx(browser, f"/instances/{instance.pk}/wake/").content.decode()

    assert 'role="alert"' in page and "cannot do that now: it is running" in page
    instance.refresh_from_db()
    assert instance.status == Status.RUNNING


def test_deleting_without_javascript_redirects_back_with_a_message(browser, owner):
    instance = _instance(owner, status=Status.HIBERNATED, name="old-box")

    response = browser.post(f"/instances/{instance.pk}/delete/", {"next": "/"}, follow=True)

    assert response.redirect_chain[-1][0] == "/"
    assert "Deleting “old-box”." in response.content.decode()
    instance.refresh_from_db()
    assert instance.status == Status.DELETING


def test_an_unknown_action_is_a_404(browser, owner):
    instance = _instance(owner)

    assert browser.post(f"/instances/{instance.pk}/explode/").status_code == 404
    assert browser.get(f"/instances/{instance.pk}/hibernate/").status_code == 405


def test_the_card_partial_of_a_deleted_instance_is_empty(browser, owner):
    instance = _instance(owner, status=Status.DELETED)

    response = browser.get(f"/instances/{instance.pk}/card/")

    assert response.status_code == 200 and response.content == b""


# --- Instance page -----------------------------------------------------------------------------


def test_the_instance_page_shows_its_timeline_failovers_and_snapshots(browser, owner):
    instance = _instance(owner, name="trainer")
    now = timezone.now()
    for from_status, to_status in [("", "pending"), ("pending", "provisioning")]:
        InstanceEvent.objects.create(
            tenant=owner.tenant,
            instance=instance,
            from_status=from_status,
            to_status=to_status,
            reason=f"reason {to_status}",
            actor="system",
            created_at=now,
        )
    Failover.objects.create(
        tenant=owner.tenant,
        instance=instance,
        status=Failover.Status.COMPLETED,
        reason="spot interrupted",
        interrupted_at=now,
        rpo_seconds=4.2,
        rto_standby_seconds=11.5,
        rto_gpu_seconds=93.0,
        failed_region="US-East",
        new_region="EU-West",
    )
    _snapshot(instance, name="before-upgrade")

    page = browser.get(f"/instances/{instance.pk}/").content.decode()

    assert "Pending → Provisioning" in page and "reason provisioning" in page
    assert 'data-rpo-seconds="4.2"' in page and "4.2 s" in page
    assert 'data-rto-standby-seconds="11.5"' in page and 'data-rto-gpu-seconds="93.0"' in page
    assert "US-East → EU-West" in page
    assert "before-upgrade" in page and "/restore/" in page
    assert 'data-action="snapshot"' in page


def test_the_instance_page_costs_the_same_queries_with_more_history(
    browser, owner, django_assert_max_num_queries
):
    instance = _instance(owner)
    with django_assert_max_num_queries(30) as few:
        browser.get(f"/instances/{instance.pk}/")
    now = timezone.now()
    for number in range(20):
        InstanceEvent.objects.create(
            tenant=owner.tenant, instance=instance, to_status="running", actor="s", created_at=now
        )
        _snapshot(instance, name=f"s{number}")
        Failover.objects.create(
            tenant=owner.tenant,
            instance=instance,
            status=Failover.Status.COMPLETED,
            reason="r",
            interrupted_at=now - timedelta(minutes=number),
        )

    with django_assert_max_num_queries(len(few.captured_queries)):
        browser.get(f"/instances/{instance.pk}/")


def test_taking_a_snapshot_of_a_running_instance_records_it(browser, owner):
    instance = _instance(owner)

    response = browser.post(f"/instances/{instance.pk}/snapshot/", {"name": "checkpoint"})

    assert response.status_code == 302
    snapshot = Snapshot.objects.get(instance=instance)
    assert (snapshot.name, snapshot.status) == ("checkpoint", Snapshot.Status.PENDING)


def test_a_snapshot_of_a_hibernated_instance_is_refused_readably(browser, owner):
    instance = _instance(owner, status=Status.HIBERNATED)

    response = browser.post(f"/instances/{instance.pk}/snapshot/", {"name": ""}, follow=True)

    assert "Only a running instance" in response.content.decode()
    assert not Snapshot.objects.exists()


def test_a_too_long_snapshot_name_is_a_field_error(browser, owner):
    instance = _instance(owner)

    response = browser.post(f"/instances/{instance.pk}/snapshot/", {"name": "x" * 101})

    assert response.status_code == 400
    assert 'class="field-error"' in response.content.decode()
    assert not Snapshot.objects.exists()


# --- Isolation ---------------------------------------------------------------------------------


def test_another_tenants_instance_is_a_404_on_every_instance_route(two_tenants):
    tenant_a, tenant_b = two_tenants
    instance = _instance(tenant_a)
    other = _browser(tenant_b)

    for path in ["", "card/", "live/"]:
        assert other.get(f"/instances/{instance.pk}/{path}").status_code == 404, path
    for path in ["hibernate/", "wake/", "delete/", "snapshot/"]:
        assert other.post(f"/instances/{instance.pk}/{path}").status_code == 404, path
    instance.refresh_from_db()
    assert instance.status == Status.RUNNING
    assert not Snapshot.objects.exists()
    assert instance.pk not in other.get("/").content.decode()


def test_another_tenants_snapshot_is_a_404_on_every_snapshot_route(two_tenants):
    tenant_a, tenant_b = two_tenants
    snapshot = _snapshot(_instance(tenant_a), name="alpha-secret-snapshot")
    other = _browser(tenant_b)

    assert other.get(f"/snapshots/{snapshot.pk}/row/").status_code == 404
    assert other.get(f"/snapshots/{snapshot.pk}/restore/").status_code == 404
    assert other.post(f"/snapshots/{snapshot.pk}/restore/", {"gpu": "A100"}).status_code == 404
    assert other.post(f"/snapshots/{snapshot.pk}/delete/").status_code == 404
    assert "alpha-secret-snapshot" not in other.get("/snapshots/").content.decode()
    snapshot.refresh_from_db()
    assert snapshot.status == Snapshot.Status.COMPLETED


# --- Snapshots page ----------------------------------------------------------------------------


def test_the_snapshots_page_lists_newest_first_with_progress_and_pages(browser, owner):
    instance = _instance(owner)
    for number in range(25):
        _snapshot(instance, name=f"snap-{number:02d}")
    _snapshot(
        instance,
        name="in-flight",
        status=Snapshot.Status.RUNNING,
        bytes_done=250,
        bytes_total=1000,
    )

    first = browser.get("/snapshots/").content.decode()
    second = browser.get("/snapshots/?page=2").content.decode()

    assert 'aria-current="page">Snapshots' in first
    assert "in-flight" in first and 'value="25" max="100"' in first
    assert first.count("data-snapshot-id=") == 20
    assert second.count("data-snapshot-id=") == 6 and "Page 2 of 2" in second


def test_the_snapshots_page_costs_the_same_queries_for_more_snapshots(
    browser, owner, django_assert_max_num_queries
):
    instance = _instance(owner)
    _snapshot(instance)
    with django_assert_max_num_queries(30) as few:
        browser.get("/snapshots/")
    for number in range(15):
        _snapshot(_instance(owner), name=f"more-{number}")

    with django_assert_max_num_queries(len(few.captured_queries)):
        browser.get("/snapshots/")


def test_deleting_a_snapshot_from_its_row_marks_it_deleting(browser, owner):
    snapshot = _snapshot(_instance(owner))

    page = _htmx(browser, f"/snapshots/{snapshot.pk}/delete/").content.decode()

    assert 'data-snapshot-status="deleting"' in page
    snapshot.refresh_from_db()
    assert snapshot.status == Snapshot.Status.DELETING


def test_a_snapshot_being_taken_cannot_be_deleted(browser, owner):
    snapshot = _snapshot(_instance(owner), status=Snapshot.Status.RUNNING)

    page = _htmx(browser, f"/snapshots/{snapshot.pk}/delete/").content.decode()

    assert "being taken or restored" in page
    snapshot.refresh_from_db()
    assert snapshot.status == Snapshot.Status.RUNNING


def test_restoring_into_another_gpu_makes_a_new_instance(browser, owner, simulator):
    source = _instance(owner, gpu="A100", region="US-East")
    snapshot = _snapshot(source, name="weights")

    form = browser.get(f"/snapshots/{snapshot.pk}/restore/").content.decode()
    response = browser.post(
        f"/snapshots/{snapshot.pk}/restore/",
        {"gpu": "RTX 4090", "gpu_count": "1", "region": "", "max_price": "2", "name": "moved"},
    )

    assert 'value="A100" selected' in form  # the snapshot's GPU to start from
    restore = Restore.objects.get(snapshot=snapshot)
    assert response.status_code == 302
    assert response["Location"] == f"/instances/{restore.instance_id}/"
    assert (restore.instance.gpu, restore.instance.name) == ("RTX 4090", "moved")
    assert restore.instance.status == Status.PENDING


def test_a_restore_with_a_bad_price_shows_the_field_error(browser, owner):
    snapshot = _snapshot(_instance(owner))

    response = browser.post(
        f"/snapshots/{snapshot.pk}/restore/", {"gpu": "RTX 4090", "max_price": "-1"}
    )

    assert response.status_code == 400
    assert 'class="field-error"' in response.content.decode()
    assert not Restore.objects.exists()


def test_a_snapshot_not_completed_cannot_be_restored(browser, owner):
    snapshot = _snapshot(_instance(owner), status=Snapshot.Status.FAILED)

    response = browser.post(
        f"/snapshots/{snapshot.pk}/restore/", {"gpu": "RTX 4090", "max_price": "2"}
    )

    assert response.status_code == 400
    assert "Only a completed snapshot can be restored." in response.content.decode()


# --- Wizard ------------------------------------------------------------------------------------


def test_the_wizard_starts_with_the_workload_and_a_skip_button(browser):
    page = browser.get("/instances/new/").content.decode()

    assert 'name="workload"' in page and 'name="skip"' in page
    assert 'aria-current="page">New instance' in page


def test_later_steps_send_back_to_the_first_one_missing(browser):
    assert browser.get("/instances/new/machine/")["Location"] == "/instances/new/"
    browser.post("/instances/new/", {"skip": "1"})
    assert browser.get("/instances/new/confirm/")["Location"] == "/instances/new/machine/"


def test_a_workload_without_a_model_size_is_a_field_error(browser):
    response = browser.post("/instances/new/", {"workload": "something clever"})

    assert response.status_code == 400
    assert "Say the model size" in response.content.decode()


def test_the_advisor_recommends_a_gpu_from_the_market(browser, market):
    response = browser.post(
        "/instances/new/", {"workload": "fine-tune a 7B model with LoRA", "region": ""}
    )

    page = response.content.decode()
    assert response.status_code == 200
    assert 'id="advice"' in page and "recommended" in page
    assert 'data-gpu="H100"' in page  # the only GPU with a price in the test market
    choose = browser.post(
        "/instances/new/", {"choose": "1", "gpu": "H100", "gpu_count": "1", "region": "EU-West"}
    )
    assert choose["Location"] == "/instances/new/machine/"
    machine = browser.get("/instances/new/machine/").content.decode()
    assert 'value="H100" selected' in machine and 'value="EU-West" selected' in machine


def _offers(simulator, **filters) -> list[dict]:
    """The simulated market's offers, read from its own HTTP answer (cheapest first)."""
    query = "&".join(f"{name}={value}" for name, value in filters.items())
    return simulator.get(f"/v1/offers?{query}")["offers"]


def test_the_machine_step_shows_the_providers_offers_for_the_gpu(browser, simulator):
    browser.post("/instances/new/", {"skip": "1"})

    before = _offers(simulator, gpu="H100", gpu_count=1, region="EU-West")
    partial = browser.get(
        "/instances/new/market/", {"gpu": "H100", "gpu_count": "1", "region": "EU-West"}
    ).content.decode()
    after = _offers(simulator, gpu="H100", gpu_count=1, region="EU-West")

    assert "<html" not in partial
    assert "cheapest now, in EU-West" in partial
    # Prices move every 5 minutes: the page shows the market of one of the two readings.
    assert any(
        f"${usd_text(offers[0]['price_micros_per_hour'])}" in partial
        and f"{sum(offer['available'] for offer in offers)} machine" in partial
        for offers in (before, after)
    )


def test_without_the_provider_the_machine_step_shows_the_sampled_market(browser, market, settings):
    settings.SIM_PROVIDER_URL = CLOSED_URL
    browser.post("/instances/new/", {"skip": "1"})

    partial = browser.get(
        "/instances/new/market/", {"gpu": "H100", "gpu_count": "1", "region": "EU-West"}
    ).content.decode()

    assert "(from the price history: no live offer)" in partial
    assert "2 machines available" in partial
    assert "$1.90" in partial  # the sampled price of EU-West


def test_the_machine_step_shows_field_errors(browser):
    browser.post("/instances/new/", {"skip": "1"})

    response = browser.post(
        "/instances/new/machine/", {"gpu": "GTX 9999", "max_price": "0", "region": "Mars"}
    )

    page = response.content.decode()
    assert response.status_code == 400
    assert page.count('class="field-error"') == 3
    assert 'id="machine-form"' in page


def _through_to_confirm(browser, **machine) -> str:
    browser.post("/instances/new/", {"skip": "1"})
    data = {"gpu": "RTX 4090", "gpu_count": "1", "region": "", "max_price": "2", "name": "w"}
    browser.post("/instances/new/machine/", {**data, **machine})
    keys = list(SshKey.objects.values_list("pk", flat=True))
    browser.post("/instances/new/keys/", {"ssh_keys": keys})
    return browser.get("/instances/new/confirm/").content.decode()


def test_the_wizard_creates_the_instance_on_the_simulated_market(
    browser, owner, simulator, settings
):
    settings.BILLING_GPU_MARGIN_PERCENT = 20
    key = SshKey.objects.create(
        tenant=owner.tenant,
        name="laptop",
        public_key=ED25519_KEY,
        key_type="ssh-ed25519",
        bits=256,
        fingerprint="SHA256:test",
    )

    before = _offers(simulator, gpu="RTX%204090", gpu_count=1)[0]["price_micros_per_hour"]
    confirm = _through_to_confirm(browser, name="from-the-wizard")
    after = _offers(simulator, gpu="RTX%204090", gpu_count=1)[0]["price_micros_per_hour"]
    response = browser.post("/instances/new/confirm/")

    assert "Create instance" in confirm and "laptop" in confirm
    assert 'data-balance-usd="79.00"' in confirm
    # The cheapest offer now (under the $2 maximum) with the 20 % margin, and the hours $79 buys.
    assert any(
        f'data-hourly-usd="{usd_text(price * 120 // 100)}"' in confirm
        and f'data-hours-covered="{79_000_000 // (price * 120 // 100)}"' in confirm
        for price in (before, after)
    )
    assert response.status_code == 302 and response["Location"] == "/"
    instance = Instance.objects.get(tenant=owner.tenant)
    assert (instance.name, instance.gpu) == ("from-the-wizard", "RTX 4090")
    assert instance.status == Status.PENDING
    assert list(instance.ssh_keys.all()) == [key]
    assert "from-the-wizard" in browser.get("/").content.decode()
    assert browser.get("/instances/new/confirm/")["Location"] == "/instances/new/"


def test_without_credit_the_confirm_step_says_so_and_creates_nothing(browser, owner, simulator):
    balance = ledger.balance_micros(owner.tenant)
    ledger.post(owner.tenant, LedgerEntry.Kind.ADJUSTMENT, -balance, idempotency_key="empty")

    _through_to_confirm(browser)
    response = browser.post("/instances/new/confirm/")

    assert response.status_code == 400
    assert "Your balance does not cover one hour" in response.content.decode()
    assert not Instance.objects.exists()


def test_no_capacity_under_the_price_lists_the_alternatives(browser, owner, simulator):
    _through_to_confirm(browser, max_price="0.01")
    response = browser.post("/instances/new/confirm/")

    page = response.content.decode()
    assert response.status_code == 400
    assert "No machine of this GPU is free under your maximum price" in page
    assert "Use this" in page
    assert not Instance.objects.exists()


def test_the_instance_pages_live_part_comes_alone_for_htmx(browser, owner):
    instance = _instance(owner, status=Status.HIBERNATED)

    partial = browser.get(f"/instances/{instance.pk}/live/").content.decode()

    assert "<html" not in partial
    assert 'id="instance-live"' in partial and 'data-status="hibernated"' in partial
    assert 'data-action="wake"' in partial


def test_without_a_market_price_the_maximum_starts_at_the_api_default(browser, settings):
    settings.SIM_PROVIDER_URL = CLOSED_URL
    settings.DEFAULT_MAX_PRICE_PER_GPU_USD = 1.5
    browser.post("/instances/new/", {"skip": "1"})
    browser.post("/instances/new/", {"choose": "1", "gpu": "A100", "gpu_count": "2"})

    page = browser.get("/instances/new/machine/").content.decode()

    assert 'name="max_price" value="3.00"' in page
    assert "No price for this GPU right now." in page
