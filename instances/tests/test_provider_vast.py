"""VastProvider against a local fake of Vast.ai's REST API (instances/tests/fakes.py)."""

import threading
import time
from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.utils import timezone

from dumont.celery import app
from instances import moves, steps, tasks
from instances.models import Instance
from instances.providers import get_provider
from instances.providers.base import (
    MachineNotFound,
    MachineSpec,
    MachineState,
    OfferUnavailable,
    TransientProviderError,
)
from instances.providers.vast import VastProvider, machine_state
from instances.reconcile import reconcile_all
from instances.tests.factories import InstanceFactory
from instances.tests.fakes import FakeVast, serve

Status = Instance.Status
SPEC = MachineSpec(
    instance_id="i-test",
    image="pytorch/pytorch:latest",
    disk_gb=50,
    ssh_public_keys=("ssh-ed25519 AAAAC3Nza test@dumont",),
    env={"DUMONT_API_URL": "https://api.dumontcloud.com", "DUMONT_AGENT_TOKEN": "dia_secret"},
)


@pytest.fixture
def vast():
    fake = FakeVast()
    with serve(fake) as url:
        fake.url = f"{url}/api/v0"
        yield fake


def _provider(vast, **options) -> VastProvider:
    options = {"timeout_seconds": 2.0, "retry_max_sleep_seconds": 2.0, **options}
    return VastProvider(vast.url, vast.api_key, **options)


def _rtx_4090_offer(vast, offer_id=101, geolocation="Oregon, US", dph_total=0.45):
    return vast.add_offer(offer_id, "RTX 4090", geolocation, dph_total)


# --- Search -------------------------------------------------------------------------------------


def test_search_maps_vast_names_and_locations_to_the_catalog(vast):
    vast.add_offer(101, "RTX 4090", "Oregon, US", 0.45)
    vast.add_offer(102, "RTX 4090", "Texas, US", 0.40)
    vast.add_offer(103, "H100 SXM", "France, FR", 2.251)
    vast.add_offer(104, "RTX 4090", "Japan, JP", 0.39)

    offers = _provider(vast).search_offers(
        gpu=None, region=None, gpu_count=None, max_price_micros=None
    )

    assert [(o.offer_id, o.gpu, o.region, o.price_micros_per_hour) for o in offers] == [
        ("104", "RTX 4090", "Asia-Pacific", 390_000),
        ("102", "RTX 4090", "US-East", 400_000),
        ("101", "RTX 4090", "US-West", 450_000),
        ("103", "H100", "EU-West", 2_251_000),
    ]
    assert {o.provider for o in offers} == {"vast"}


def test_search_filters_by_gpu_region_and_maximum_price(vast):
    vast.add_offer(101, "RTX 4090", "Oregon, US", 0.45)
    vast.add_offer(102, "RTX 4090", "Texas, US", 0.40)
    vast.add_offer(103, "RTX 4090", "California, US", 0.95)
    vast.add_offer(104, "RTX 3090", "Oregon, US", 0.20)

    offers = _provider(vast).search_offers(
        gpu="RTX 4090", region="US-West", gpu_count=1, max_price_micros=500_000
    )

    assert [o.offer_id for o in offers] == ["101"]


def test_search_prices_the_whole_machine(vast):
    vast.add_offer(201, "A100 SXM4", "Quebec, CA", 4.8, num_gpus=4)

    (offer,) = _provider(vast).search_offers(
        gpu="A100", region=None, gpu_count=4, max_price_micros=None
    )

    assert (offer.gpu, offer.gpu_count, offer.price_micros_per_hour) == ("A100", 4, 4_800_000)
    assert offer.region == "US-East"


def test_search_skips_gpus_and_locations_we_do_not_sell(vast):
    vast.add_offer(301, "GTX 1070", "Oregon, US", 0.05)
    vast.add_offer(302, "RTX 4090", "Atlantis", 0.10)

    offers = _provider(vast).search_offers(
        gpu=None, region=None, gpu_count=None, max_price_micros=None
    )

    assert offers == []


# --- Create, idempotency ----------------------------------------------------------------------


def _offer(vast, **kwargs):
    _rtx_4090_offer(vast, **kwargs)
    (offer,) = _provider(vast).search_offers(
        gpu="RTX 4090", region=None, gpu_count=None, max_price_micros=None
    )
    return offer


def test_create_rents_the_offer_with_image_env_agent_and_key(vast):
    offer = _offer(vast)

    machine = _provider(vast).create(offer, SPEC, idempotency_key="i-test-1")

    (body,) = vast.rent_bodies
    assert body["image"] == "pytorch/pytorch:latest"
    assert body["disk"] == 50
    assert body["label"] == "dumont:i-test-1"
    assert body["env"] == (
        "-e DUMONT_API_URL=https://api.dumontcloud.com -e DUMONT_AGENT_TOKEN=dia_secret"
    )
    assert "pip install" in body["onstart"] and "dumont-agent" in body["onstart"]
    assert "ssh-ed25519 AAAAC3Nza test@dumont" in body["onstart"]
    assert body["price"] == 0.45  # interruptible: a bid at the price shown
    assert machine.state == MachineState.STARTING
    assert (machine.gpu, machine.region, machine.price_micros_per_hour) == (
        "RTX 4090",
        "US-West",
        450_000,
    )
    assert machine.idempotency_key == "i-test-1"
    assert machine.ssh_host.endswith(".vast.ai") and machine.ssh_port > 0


def test_an_on_demand_create_sends_no_bid(vast):
    offer = _offer(vast)

    _provider(vast, is_interruptible=False).create(offer, SPEC, idempotency_key="i-test-1")

    assert "price" not in vast.rent_bodies[0]


def test_two_creates_with_one_key_rent_one_machine(vast):
    offer = _offer(vast)
    _rtx_4090_offer(vast, offer_id=102)
    provider = _provider(vast)

    first = provider.create(offer, SPEC, idempotency_key="i-test-1")
    second = provider.create(offer, SPEC, idempotency_key="i-test-1")

    assert first.provider_id == second.provider_id
    assert len(vast.instances) == 1


def test_a_create_after_a_timed_out_create_finds_the_first_machine(vast):
    offer = _offer(vast)
    vast.slow("PUT", r"/api/v0/asks/\d+/", sleep_seconds=1.5)
    provider = _provider(vast, timeout_seconds=0.5)

    with pytest.raises(TransientProviderError):
        provider.create(offer, SPEC, idempotency_key="i-test-1")
    machine = provider.create(offer, SPEC, idempotency_key="i-test-1")

    assert vast.calls("PUT", r"/api/v0/asks/\d+/") == 1  # a rent is never sent blind twice
    assert [i["id"] for i in vast.instances.values()] == [int(machine.provider_id)]


def test_a_create_on_a_taken_offer_is_offer_unavailable(vast):
    offer = _offer(vast)
    vast.offers[101]["rented"] = True

    with pytest.raises(OfferUnavailable):
        _provider(vast).create(offer, SPEC, idempotency_key="i-test-1")


# --- Get, list, stop, start, destroy, states -------------------------------------------------


def _machine_id(vast, **kwargs) -> str:
    return (
        _provider(vast).create(_offer(vast, **kwargs), SPEC, idempotency_key="i-test-1").provider_id
    )


def test_a_booted_machine_is_running_with_its_utilisation(vast):
    machine_id = _machine_id(vast)
    vast.boot(machine_id)
    vast.set_container(machine_id, gpu_util=87.5)

    machine = _provider(vast).get(machine_id)

    assert machine.state == MachineState.RUNNING
    assert machine.gpu_utilization_percent == 87.5


def test_an_outbid_machine_is_interrupted(vast):
    machine_id = _machine_id(vast)
    vast.boot(machine_id)
    vast.outbid(machine_id)

    assert _provider(vast).get(machine_id).state == MachineState.INTERRUPTED


def test_stop_and_start_change_the_state_we_asked_for(vast):
    machine_id = _machine_id(vast)
    vast.boot(machine_id)
    provider = _provider(vast)

    stopped = provider.stop(machine_id)
    stopped_again = provider.stop(machine_id)
    started = provider.start(machine_id)

    assert stopped.state == stopped_again.state == MachineState.STOPPED
    assert started.state == MachineState.STARTING
    assert vast.instances[int(machine_id)]["intended_status"] == "running"


def test_list_shows_only_the_machines_dumont_labelled(vast):
    machine_id = _machine_id(vast)
    vast.instances[1] = {**vast.instances[int(machine_id)], "id": 1, "label": "someone's box"}

    machines = _provider(vast).list_machines()

    assert [(m.provider_id, m.idempotency_key) for m in machines] == [(machine_id, "i-test-1")]


def test_destroy_removes_the_machine_and_a_missing_one_is_fine(vast):
    machine_id = _machine_id(vast)
    provider = _provider(vast)

    provider.destroy(machine_id)
    provider.destroy(machine_id)

    assert vast.instances == {}
    with pytest.raises(MachineNotFound):
        provider.get(machine_id)


def test_a_machine_vanishing_mid_provision_is_not_found(vast):
    machine_id = _machine_id(vast)
    vast.vanish(machine_id)

    with pytest.raises(MachineNotFound):
        _provider(vast).get(machine_id)


@pytest.mark.parametrize(
    ("intended", "contract", "container", "state"),
    [
        ("running", "running", None, MachineState.STARTING),
        ("running", "running", "created", MachineState.STARTING),
        ("running", "running", "loading", MachineState.STARTING),
        ("running", "running", "rebooting", MachineState.STARTING),
        ("running", "running", "running", MachineState.RUNNING),
        ("running", "running", "unknown", MachineState.RUNNING),
        ("running", "running", "exited", MachineState.INTERRUPTED),
        ("running", "running", "offline", MachineState.INTERRUPTED),
        ("running", "stopped", "stopped", MachineState.INTERRUPTED),
        ("stopped", "stopped", "stopped", MachineState.STOPPED),
        ("stopped", "running", "running", MachineState.STOPPED),
        ("frozen", "running", "frozen", MachineState.STOPPED),
    ],
)
def test_vast_statuses_map_to_machine_states(intended, contract, container, state):
    data = {"intended_status": intended, "cur_state": contract, "actual_status": container}

    assert machine_state(data) == state


# --- Faults -------------------------------------------------------------------------------------


def test_server_errors_are_retried_a_bounded_number_of_times(vast):
    machine_id = _machine_id(vast)
    vast.fail("GET", rf"/api/v0/instances/{machine_id}/", 503, times=2)
    vast.requests.clear()

    machine = _provider(vast, max_retries=2).get(machine_id)

    assert machine.provider_id == machine_id
    assert vast.calls("GET", rf"/api/v0/instances/{machine_id}/") == 3


def test_server_errors_past_the_retries_are_transient(vast):
    machine_id = _machine_id(vast)
    vast.fail("GET", rf"/api/v0/instances/{machine_id}/", 500, times=3)
    vast.requests.clear()

    with pytest.raises(TransientProviderError):
        _provider(vast, max_retries=2).get(machine_id)

    assert vast.calls("GET", rf"/api/v0/instances/{machine_id}/") == 3


def test_a_429_is_retried_after_its_retry_after(vast):
    vast.fail("POST", r"/api/v0/bundles/", 429, **{"Retry-After": "1"})
    _rtx_4090_offer(vast)
    started = time.monotonic()

    offers = _provider(vast).search_offers(
        gpu=None, region=None, gpu_count=None, max_price_micros=None
    )

    assert len(offers) == 1
    assert time.monotonic() - started >= 1.0


def test_a_long_retry_after_goes_up_to_the_task(vast):
    vast.fail("POST", r"/api/v0/bundles/", 429, **{"Retry-After": "90"})

    with pytest.raises(TransientProviderError) as raised:
        _provider(vast).search_offers(gpu=None, region=None, gpu_count=None, max_price_micros=None)

    assert raised.value.retry_after_seconds == 90
    assert vast.calls("POST", r"/api/v0/bundles/") == 1


def test_a_timeout_is_transient(vast):
    vast.slow("POST", r"/api/v0/bundles/", sleep_seconds=1.5)

    with pytest.raises(TransientProviderError):
        _provider(vast, timeout_seconds=0.5, max_retries=0).search_offers(
            gpu=None, region=None, gpu_count=None, max_price_micros=None
        )


def test_a_rent_is_not_sent_again_after_a_server_error(vast):
    offer = _offer(vast)
    vast.fail("PUT", r"/api/v0/asks/\d+/", 502)

    with pytest.raises(TransientProviderError):
        _provider(vast, max_retries=2).create(offer, SPEC, idempotency_key="i-test-1")

    assert vast.calls("PUT", r"/api/v0/asks/\d+/") == 1


def test_a_refused_key_is_a_provider_error_with_the_api_message(vast):
    provider = VastProvider(vast.url, "wrong-key")

    with pytest.raises(Exception, match="Invalid user key") as raised:
        provider.list_machines()

    assert not isinstance(raised.value, TransientProviderError)


# --- Through the instance services --------------------------------------------------------------


@pytest.fixture
def vast_market(vast, settings):
    """GPU_PROVIDER=vast against the fake, and Celery tasks run in this process."""
    settings.GPU_PROVIDER = "vast"
    settings.VAST_API_URL = vast.url
    settings.VAST_API_KEY = vast.api_key
    settings.VAST_TIMEOUT_SECONDS = 0.5
    settings.VAST_RETRY_MAX_SLEEP_SECONDS = 0.5
    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    yield vast
    app.conf.task_always_eager = False
    app.conf.task_eager_propagates = False


def _pending_instance() -> Instance:
    return InstanceFactory(status=Status.PENDING, gpu="RTX 4090", max_price_micros=600_000)


@pytest.mark.django_db
def test_settings_choose_the_vast_provider(vast_market):
    assert get_provider().name == "vast"


@pytest.mark.django_db
def test_provisioning_rents_one_machine_and_records_it(vast_market):
    _rtx_4090_offer(vast_market)
    instance = _pending_instance()

    steps.provision(instance.pk)
    steps.provision(instance.pk)

    instance.refresh_from_db()
    (machine,) = vast_market.machines_labelled(f"dumont:{instance.provision_key}")
    assert instance.status == Status.PROVISIONING
    assert (instance.provider, instance.provider_id) == ("vast", str(machine["id"]))
    assert (instance.region, instance.price_micros) == ("US-West", 450_000)
    assert "DUMONT_AGENT_TOKEN=dia_" in vast_market.rent_bodies[0]["env"]


@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicate_provision_steps_rent_one_machine(vast_market):
    for offer_id in (101, 102, 103):
        _rtx_4090_offer(vast_market, offer_id=offer_id, dph_total=0.40 + offer_id / 10_000)
    instance = _pending_instance()
    barrier = threading.Barrier(3)
    errors: list[Exception] = []

    def provision():
        barrier.wait()
        try:
            steps.provision(instance.pk)
        except Exception as error:  # the test reports any crash of a duplicate
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=provision) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    instance.refresh_from_db()
    assert errors == []
    assert len(vast_market.instances) == 1
    assert instance.provider_id == str(next(iter(vast_market.instances)))


@pytest.mark.django_db
def test_a_provision_retried_after_a_lost_answer_takes_the_same_machine(vast_market):
    _rtx_4090_offer(vast_market)
    _rtx_4090_offer(vast_market, offer_id=102, dph_total=0.5)  # what the retry's search finds
    vast_market.slow("PUT", r"/api/v0/asks/\d+/", sleep_seconds=1.0)
    instance = _pending_instance()

    with pytest.raises(TransientProviderError):
        steps.provision(instance.pk)  # the task would retry with backoff
    steps.provision(instance.pk)

    instance.refresh_from_db()
    assert len(vast_market.instances) == 1
    assert instance.provider_id == str(next(iter(vast_market.instances)))


@pytest.mark.django_db
def test_a_machine_rented_by_a_provision_that_then_gave_up_is_destroyed(vast_market):
    _rtx_4090_offer(vast_market)
    vast_market.slow("PUT", r"/api/v0/asks/\d+/", sleep_seconds=1.0)
    instance = _pending_instance()
    with pytest.raises(TransientProviderError):
        steps.provision(instance.pk)  # rented, but the answer was lost

    tasks.provision(instance.pk)  # the retry finds no offer left: error
    report = reconcile_all()

    instance.refresh_from_db()
    assert instance.status == Status.ERROR
    assert len(report.orphans_destroyed) == 1
    assert vast_market.instances == {}


@pytest.mark.django_db
def test_an_offer_taken_before_the_rent_is_passed_over_for_the_next(vast_market):
    _rtx_4090_offer(vast_market)
    _rtx_4090_offer(vast_market, offer_id=102, dph_total=0.5)
    vast_market.fail("PUT", r"/api/v0/asks/101/", 410)  # someone rents 101 first
    instance = _pending_instance()

    tasks.provision(instance.pk)

    instance.refresh_from_db()
    assert instance.status == Status.PROVISIONING
    assert instance.offer_id == "102"
    assert len(vast_market.instances) == 1


@pytest.mark.django_db
def test_when_every_offer_is_taken_before_the_rent_the_instance_is_in_error(vast_market):
    _rtx_4090_offer(vast_market)
    vast_market.fail("PUT", r"/api/v0/asks/\d+/", 410)
    instance = _pending_instance()

    tasks.provision(instance.pk)

    instance.refresh_from_db()
    assert instance.status == Status.ERROR
    assert "no offer under the maximum price" in instance.events.get(to_status=Status.ERROR).reason
    assert vast_market.instances == {}


@pytest.mark.django_db
def test_no_offer_under_the_maximum_price_puts_the_instance_in_error(vast_market):
    _rtx_4090_offer(vast_market, dph_total=0.95)
    instance = _pending_instance()

    tasks.provision(instance.pk)

    instance.refresh_from_db()
    assert instance.status == Status.ERROR
    assert "no offer under the maximum price" in instance.events.get(to_status=Status.ERROR).reason
    assert vast_market.instances == {}


@pytest.mark.django_db
def test_a_stuck_provision_given_up_and_retried_leaves_one_machine(
    vast_market, django_capture_on_commit_callbacks
):
    _rtx_4090_offer(vast_market)
    _rtx_4090_offer(vast_market, offer_id=102, dph_total=0.5)
    instance = _pending_instance()
    steps.provision(instance.pk)
    first_machine = Instance.objects.get(pk=instance.pk).provider_id

    with time_machine.travel(timezone.now() + timedelta(hours=1)):
        report = reconcile_all()  # the machine never booted: give up
    with django_capture_on_commit_callbacks(execute=True):
        moves.retry_provision(Instance.objects.get(pk=instance.pk), actor="support")

    instance.refresh_from_db()
    assert report.failed == [instance.pk]
    assert instance.provision_key.endswith("-2")
    assert list(vast_market.instances) == [int(instance.provider_id)]
    assert instance.provider_id != first_machine


@pytest.mark.django_db
def test_reconcile_fails_over_a_running_instance_whose_machine_was_outbid(vast_market):
    machine_id = _machine_id(vast_market)
    vast_market.boot(machine_id)
    vast_market.outbid(machine_id)
    instance = InstanceFactory(
        status=Status.RUNNING, provider="vast", provider_id=machine_id, provision_key="i-test-1"
    )

    report = reconcile_all()

    instance.refresh_from_db()
    assert report.failed_over == [instance.pk]
    assert instance.failovers.get().failed_provider_id == machine_id
    assert "interrupted" in instance.events.get(to_status=Status.FAILING_OVER).reason


@pytest.mark.django_db
def test_reconcile_adopts_a_machine_whose_provision_died_before_saving(vast_market):
    _rtx_4090_offer(vast_market)
    _rtx_4090_offer(vast_market, offer_id=102, dph_total=0.5)  # provision searches again first
    instance = _pending_instance()
    steps.provision(instance.pk)
    machine_id = Instance.objects.get(pk=instance.pk).provider_id
    Instance.objects.filter(pk=instance.pk).update(provider_id="")  # the worker died here

    report = reconcile_all()

    assert report.adopted == [machine_id]
    adopted = Instance.objects.get(pk=instance.pk)
    assert adopted.provider_id == machine_id
    assert adopted.offer_id == "101"  # the host a failover will avoid: not the 102 searched last
    assert len(vast_market.instances) == 1


@pytest.mark.django_db
def test_reconcile_destroys_our_orphans_and_leaves_other_machines_alone(vast_market):
    orphan = _machine_id(vast_market)
    vast_market.instances[1] = {**vast_market.instances[int(orphan)], "id": 1, "label": None}

    report = reconcile_all()

    assert report.orphans_destroyed == [orphan]
    assert list(vast_market.instances) == [1]
