"""GcpStandbyProvider (google-cloud-compute, REST) against a local fake of Compute Engine."""

import pytest
from google.auth.credentials import AnonymousCredentials

from instances.providers import get_standby_provider
from instances.providers.base import (
    MachineNotFound,
    MachineState,
    ProviderError,
    StandbySpec,
    TransientProviderError,
)
from instances.providers.gcp import GcpStandbyProvider, instance_name, standby_state
from instances.tests.fakes import FakeCompute, serve

ZONES = {
    "US-East": "us-east1-b",
    "US-West": "us-west1-b",
    "EU-West": "europe-west1-b",
    "Asia-Pacific": "asia-southeast1-b",
}
SPEC = StandbySpec(
    instance_id="i-test",
    region="EU-West",
    disk_gb=40,
    ssh_public_keys=("ssh-ed25519 AAAAC3Nza test@dumont",),
    env={"DUMONT_API_URL": "https://api.dumontcloud.com", "DUMONT_AGENT_TOKEN": "dia_secret"},
)


@pytest.fixture
def compute():
    fake = FakeCompute()
    with serve(fake) as url:
        fake.url = url
        yield fake


def _provider(compute, **options) -> GcpStandbyProvider:
    options = {
        "project": compute.project,
        "zones": ZONES,
        "price_micros_per_hour": 30_000,
        "api_endpoint": compute.url,
        "credentials": AnonymousCredentials(),
        "timeout_seconds": 2.0,
        "operation_timeout_seconds": 5.0,
        **options,
    }
    return GcpStandbyProvider(**options)


def _metadata(body: dict) -> dict[str, str]:
    return {item["key"]: item["value"] for item in body["metadata"]["items"]}


def test_create_inserts_a_spot_vm_that_stops_when_preempted(compute):
    machine = _provider(compute).create_standby(SPEC, idempotency_key="i-test-standby-1")

    (body,) = compute.inserted
    assert body["scheduling"]["provisioningModel"] == "SPOT"
    assert body["scheduling"]["instanceTerminationAction"] == "STOP"
    assert body["machineType"] == "zones/europe-west1-b/machineTypes/e2-medium"
    assert body["labels"]["dumont-key"] == "i-test-standby-1"
    assert body["labels"]["dumont-standby"] == "i-test"
    assert body["disks"][0]["initializeParams"]["diskSizeGb"] == "40"
    assert body["disks"][0]["autoDelete"] is True
    metadata = _metadata(body)
    assert "export DUMONT_AGENT_TOKEN=dia_secret" in metadata["startup-script"]
    assert "export DUMONT_API_URL=https://api.dumontcloud.com" in metadata["startup-script"]
    assert "dumont-agent" in metadata["startup-script"]
    assert metadata["ssh-keys"] == "dumont:ssh-ed25519 AAAAC3Nza test@dumont"
    assert machine.provider_id == f"europe-west1-b/{instance_name('i-test-standby-1')}"
    assert (machine.state, machine.region, machine.gpu, machine.gpu_count) == (
        MachineState.RUNNING,
        "EU-West",
        "CPU",
        0,
    )
    assert machine.price_micros_per_hour == 30_000
    assert machine.public_ip == "34.148.10.20"
    assert machine.idempotency_key == "i-test-standby-1"


def test_two_creates_with_one_key_insert_one_vm(compute):
    provider = _provider(compute)

    first = provider.create_standby(SPEC, idempotency_key="i-test-standby-1")
    second = provider.create_standby(SPEC, idempotency_key="i-test-standby-1")

    assert first.provider_id == second.provider_id
    assert len(compute.inserted) == 1
    assert len(compute.instances) == 1


def test_a_create_after_a_timed_out_insert_finds_the_first_vm(compute):
    compute.slow("POST", r"/compute/v1/projects/dumont-test/zones/[\w-]+/instances", 1.5)
    provider = _provider(compute, timeout_seconds=0.5)

    with pytest.raises(TransientProviderError):
        provider.create_standby(SPEC, idempotency_key="i-test-standby-1")
    machine = _provider(compute).create_standby(SPEC, idempotency_key="i-test-standby-1")

    assert len(compute.inserted) == 1
    assert machine.idempotency_key == "i-test-standby-1"


def test_an_insert_that_loses_a_race_takes_the_vm_of_the_winner(compute):
    name = instance_name("i-test-standby-1")
    _provider(compute).create_standby(SPEC, idempotency_key="i-test-standby-1")
    compute.fail("GET", rf".*/instances/{name}", 404)  # the lookup misses the winner's VM...

    machine = _provider(compute).create_standby(SPEC, idempotency_key="i-test-standby-1")

    assert machine.provider_id.endswith(name)  # ...and the insert's 409 finds it
    assert len(compute.inserted) == 1


def test_stop_start_and_destroy(compute):
    provider = _provider(compute)
    machine = provider.create_standby(SPEC, idempotency_key="i-test-standby-1")

    stopped = provider.stop(machine.provider_id)
    started = provider.start(machine.provider_id)
    provider.destroy(machine.provider_id)
    provider.destroy(machine.provider_id)

    assert stopped.state == MachineState.STOPPED
    assert started.state == MachineState.RUNNING
    assert compute.instances == {}
    with pytest.raises(MachineNotFound):
        provider.get(machine.provider_id)


def test_a_preempted_vm_is_interrupted(compute):
    provider = _provider(compute)
    machine = provider.create_standby(SPEC, idempotency_key="i-test-standby-1")

    compute.preempt(instance_name("i-test-standby-1"))

    assert provider.get(machine.provider_id).state == MachineState.INTERRUPTED


def test_a_vm_started_again_after_preemption_runs(compute):
    provider = _provider(compute)
    machine = provider.create_standby(SPEC, idempotency_key="i-test-standby-1")
    compute.preempt(instance_name("i-test-standby-1"))

    started = provider.start(machine.provider_id)

    assert started.state == MachineState.RUNNING


def test_a_vm_deleted_behind_our_back_is_not_found(compute):
    provider = _provider(compute)
    machine = provider.create_standby(SPEC, idempotency_key="i-test-standby-1")
    compute.instances.clear()

    with pytest.raises(MachineNotFound):
        provider.get(machine.provider_id)


@pytest.mark.parametrize(
    ("status", "intent", "state"),
    [
        ("PROVISIONING", "running", MachineState.STARTING),
        ("STAGING", "running", MachineState.STARTING),
        ("RUNNING", "running", MachineState.RUNNING),
        ("STOPPING", "stopped", MachineState.STOPPED),
        ("STOPPING", "running", MachineState.INTERRUPTED),
        ("TERMINATED", "stopped", MachineState.STOPPED),
        ("TERMINATED", "running", MachineState.INTERRUPTED),
        ("STOPPED", "running", MachineState.INTERRUPTED),
        ("SUSPENDED", "running", MachineState.STOPPED),
    ],
)
def test_gce_statuses_map_to_machine_states(status, intent, state):
    assert standby_state(status, {"dumont-intent": intent}) == state


def test_server_errors_are_transient(compute):
    compute.fail("POST", r".*/instances", 503)

    with pytest.raises(TransientProviderError):
        _provider(compute).create_standby(SPEC, idempotency_key="i-test-standby-1")

    assert compute.instances == {}


def test_an_exhausted_zone_is_transient_and_leaves_no_vm(compute):
    compute.operation_error = {
        "code": "ZONE_RESOURCE_POOL_EXHAUSTED",
        "message": "The zone does not have enough resources available.",
    }

    with pytest.raises(TransientProviderError, match="ZONE_RESOURCE_POOL_EXHAUSTED"):
        _provider(compute).create_standby(SPEC, idempotency_key="i-test-standby-1")

    assert compute.instances == {}


def test_a_refused_insert_is_a_provider_error_with_googles_message(compute):
    compute.fail("POST", r".*/instances", 403)

    with pytest.raises(ProviderError) as raised:
        _provider(compute).create_standby(SPEC, idempotency_key="i-test-standby-1")

    assert not isinstance(raised.value, TransientProviderError)


def test_an_operation_that_never_finishes_is_transient(compute):
    compute.operation_polls = 1_000

    with pytest.raises(TransientProviderError, match="still running"):
        _provider(compute, operation_timeout_seconds=0.5).create_standby(
            SPEC, idempotency_key="i-test-standby-1"
        )


def test_settings_choose_the_gcp_standby_provider(compute, settings):
    settings.STANDBY_PROVIDER = "gcp"
    settings.GCP_PROJECT = compute.project
    settings.GCP_API_ENDPOINT = compute.url

    provider = get_standby_provider()
    machine = provider.create_standby(SPEC, idempotency_key="i-test-standby-1")

    assert provider.name == "gcp"
    assert machine.region == "EU-West"
    assert machine.price_micros_per_hour == settings.STANDBY_PRICE_MICROS_PER_HOUR
