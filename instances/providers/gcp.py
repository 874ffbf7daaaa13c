"""GcpStandbyProvider: CPU standby VMs as Compute Engine SPOT instances.

google-cloud-compute's `InstancesClient` over the REST transport (no gRPC channel to keep per
worker), and `ZoneOperationsClient.get` to follow each operation ourselves with a bounded wait
(GCP_OPERATION_TIMEOUT_SECONDS): past it the error is transient, and the step retried later
finds the VM by name.

- The VM: GCP_STANDBY_MACHINE_TYPE (e2-medium), SPOT provisioning with
  `instance_termination_action=STOP` (a preempted VM keeps its disk and can be started again),
  a boot disk of spec.disk_gb from GCP_STANDBY_IMAGE that is deleted with the VM, an external IP
  so the agent reaches the public API, in the zone GCP_ZONES gives for spec.region.
- Its boot: metadata `startup-script` exports the agent env and installs and starts the agent
  (`agent_boot_script`); GCE runs it at every boot. `ssh-keys` carries spec.ssh_public_keys.
- Idempotency: the VM name is derived from the key (`standby-<key slug>-<hash>`), so a create
  first looks the name up, and an insert racing another one gets 409 and waits for that VM.
  The key itself is in the metadata (`dumont-idempotency-key`) and, slugged, in the labels.
- provider_id is "<zone>/<name>".
- States: PROVISIONING, STAGING, REPAIRING → STARTING; RUNNING → RUNNING; SUSPENDING,
  SUSPENDED → STOPPED. A SPOT VM that GCE preempts goes STOPPING → TERMINATED exactly like one
  we stopped, so stop() and start() first record what we want in the label `dumont-intent`:
  STOPPING / TERMINATED (or STOPPED) with intent "stopped" is STOPPED, otherwise INTERRUPTED.
- Price: STANDBY_PRICE_MICROS_PER_HOUR, what billing charges for a standby (GCE does not
  return prices with the VM).

Errors: 404 → MachineNotFound; 429, 5xx, timeouts and connection errors → TransientProviderError
(the library's own retries are off, so the Celery task's backoff is the only one); an operation
that ends with ZONE_RESOURCE_POOL_EXHAUSTED or a quota error is transient too; any other API
error is a ProviderError with Google's message. Credentials: from the environment (ADC); an
`http://` endpoint (a local fake or emulator) uses anonymous credentials.
"""

import hashlib
import re
import time

import requests
from google.api_core import exceptions as google_errors
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials, Credentials
from google.cloud import compute_v1

from instances.providers import agent_boot_script
from instances.providers.base import (
    Machine,
    MachineNotFound,
    MachineState,
    ProviderError,
    StandbySpec,
    TransientProviderError,
)

INTENT_LABEL = "dumont-intent"
KEY_METADATA = "dumont-idempotency-key"
OPERATION_POLL_SECONDS = 1.0
TRANSIENT_OPERATION_ERRORS = {
    "ZONE_RESOURCE_POOL_EXHAUSTED",
    "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS",
    "QUOTA_EXCEEDED",
    "RESOURCE_NOT_READY",
}
TRANSIENT_API_ERRORS = (
    google_errors.TooManyRequests,
    google_errors.ServerError,
    google_errors.DeadlineExceeded,
    requests.exceptions.Timeout,
    requests.exceptions.ConnectionError,
)
STATES = {
    "PROVISIONING": MachineState.STARTING,
    "STAGING": MachineState.STARTING,
    "REPAIRING": MachineState.STARTING,
    "RUNNING": MachineState.RUNNING,
    "SUSPENDING": MachineState.STOPPED,
    "SUSPENDED": MachineState.STOPPED,
}


def instance_name(idempotency_key: str) -> str:
    """The VM name for a key: lowercase RFC 1035, unique by a hash of the exact key."""
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:10]
    slug = re.sub(r"[^a-z0-9]+", "-", idempotency_key.lower()).strip("-")[:40]
    return f"standby-{slug}-{digest}" if slug else f"standby-{digest}"


def label_value(text: str) -> str:
    """GCE label values: at most 63 of [a-z0-9_-]."""
    return re.sub(r"[^a-z0-9_-]+", "-", text.lower())[:63]


def standby_state(status: str, labels: dict[str, str]) -> MachineState:
    """A GCE status as a MachineState; see the module docstring for TERMINATED."""
    if status in STATES:
        return STATES[status]
    if status in ("STOPPING", "TERMINATED", "STOPPED"):
        is_asked = labels.get(INTENT_LABEL) == "stopped"
        return MachineState.STOPPED if is_asked else MachineState.INTERRUPTED
    return MachineState.STARTING


class GcpStandbyProvider:
    name = "gcp"

    def __init__(
        self,
        *,
        project: str,
        zones: dict[str, str],
        machine_type: str = "e2-medium",
        image: str = "projects/debian-cloud/global/images/family/debian-12",
        price_micros_per_hour: int,
        api_endpoint: str = "",
        credentials: Credentials | None = None,
        timeout_seconds: float = 30.0,
        operation_timeout_seconds: float = 120.0,
        agent_install_spec: str = "dumont-agent[nvml]",
    ):
        if not project:
            raise ProviderError("GCP_PROJECT is not set")
        if credentials is None and api_endpoint.startswith("http://"):
            credentials = AnonymousCredentials()
        options = ClientOptions(api_endpoint=api_endpoint) if api_endpoint else None
        self.instances = compute_v1.InstancesClient(
            transport="rest", credentials=credentials, client_options=options
        )
        self.operations = compute_v1.ZoneOperationsClient(
            transport="rest", credentials=credentials, client_options=options
        )
        self.project = project
        self.zones = dict(zones)
        self.regions_by_zone = {zone: region for region, zone in self.zones.items()}
        self.machine_type = machine_type
        self.image = image
        self.price_micros_per_hour = price_micros_per_hour
        self.timeout_seconds = timeout_seconds
        self.operation_timeout_seconds = operation_timeout_seconds
        self.agent_install_spec = agent_install_spec

    def _call(self, method, **kwargs):
        """One API call, library retries off, errors as ours."""
        try:
            return method(project=self.project, retry=None, timeout=self.timeout_seconds, **kwargs)
        except google_errors.NotFound as error:
            raise MachineNotFound(f"GCE: {error.message}") from error
        except TRANSIENT_API_ERRORS as error:
            raise TransientProviderError(f"GCE: {error}") from error
        except google_errors.GoogleAPICallError as error:
            raise ProviderError(f"GCE answered {error.code}: {error.message}") from error

    def _wait(self, operation: compute_v1.Operation, zone: str) -> None:
        """Poll the zone operation until DONE; raise its error; transient past the timeout."""
        deadline = time.monotonic() + self.operation_timeout_seconds
        while operation.status != compute_v1.Operation.Status.DONE:
            if time.monotonic() > deadline:
                raise TransientProviderError(
                    f"GCE operation {operation.name} still running after "
                    f"{self.operation_timeout_seconds:.0f}s"
                )
            time.sleep(min(OPERATION_POLL_SECONDS, self.operation_timeout_seconds / 10))
            operation = self._call(self.operations.get, zone=zone, operation=operation.name)
        errors = list(operation.error.errors) if "error" in operation else []
        if errors:
            message = "; ".join(f"{error.code}: {error.message}" for error in errors)
            if any(error.code in TRANSIENT_OPERATION_ERRORS for error in errors):
                raise TransientProviderError(f"GCE operation failed: {message}")
            raise ProviderError(f"GCE operation failed: {message}")

    def _locate(self, provider_id: str) -> tuple[str, str]:
        zone, _, name = provider_id.partition("/")
        if not name:
            raise MachineNotFound(f"not a GCE standby id: {provider_id!r}")
        return zone, name

    # --- StandbyProvider ----------------------------------------------------------------------

    def create_standby(self, spec: StandbySpec, *, idempotency_key: str) -> Machine:
        """Insert the SPOT VM named after the key (or find it) and wait until it exists."""
        zone = self.zones.get(spec.region)
        if zone is None:
            raise ProviderError(f"no GCP zone for region {spec.region!r} (GCP_ZONES)")
        name = instance_name(idempotency_key)
        try:
            return self.get(f"{zone}/{name}")
        except MachineNotFound:
            pass
        try:
            operation = self._call(
                self.instances.insert_unary,
                zone=zone,
                instance_resource=self._instance(spec, zone, name, idempotency_key),
            )
        except ProviderError as error:
            if isinstance(error.__cause__, google_errors.Conflict):
                return self.get(f"{zone}/{name}")  # inserted by a concurrent or earlier call
            raise
        self._wait(operation, zone)
        return self.get(f"{zone}/{name}")

    def _instance(
        self, spec: StandbySpec, zone: str, name: str, idempotency_key: str
    ) -> compute_v1.Instance:
        metadata = [
            compute_v1.Items(
                key="startup-script",
                value=agent_boot_script(self.agent_install_spec, env=spec.env),
            ),
            compute_v1.Items(key=KEY_METADATA, value=idempotency_key),
        ]
        if spec.ssh_public_keys:
            ssh_keys = "\n".join(f"dumont:{key}" for key in spec.ssh_public_keys)
            metadata.append(compute_v1.Items(key="ssh-keys", value=ssh_keys))
        return compute_v1.Instance(
            name=name,
            machine_type=f"zones/{zone}/machineTypes/{self.machine_type}",
            labels={
                "dumont-standby": label_value(spec.instance_id),
                "dumont-key": label_value(idempotency_key),
                INTENT_LABEL: "running",
            },
            metadata=compute_v1.Metadata(items=metadata),
            disks=[
                compute_v1.AttachedDisk(
                    boot=True,
                    auto_delete=True,
                    initialize_params=compute_v1.AttachedDiskInitializeParams(
                        source_image=self.image, disk_size_gb=spec.disk_gb
                    ),
                )
            ],
            network_interfaces=[
                compute_v1.NetworkInterface(
                    network="global/networks/default",
                    access_configs=[
                        compute_v1.AccessConfig(name="External NAT", type_="ONE_TO_ONE_NAT")
                    ],
                )
            ],
            scheduling=compute_v1.Scheduling(
                provisioning_model="SPOT",
                instance_termination_action="STOP",
                automatic_restart=False,  # SPOT VMs must not restart on their own
                on_host_maintenance="TERMINATE",
            ),
        )

    def get(self, provider_id: str) -> Machine:
        """The VM now; MachineNotFound once deleted."""
        zone, name = self._locate(provider_id)
        return self._machine(self._call(self.instances.get, zone=zone, instance=name), zone)

    def stop(self, provider_id: str) -> Machine:
        """Record the intent, stop the VM (the disk stays) and wait for it."""
        zone, name = self._locate(provider_id)
        self._set_intent(zone, name, "stopped")
        self._wait(self._call(self.instances.stop_unary, zone=zone, instance=name), zone)
        return self.get(provider_id)

    def start(self, provider_id: str) -> Machine:
        """Record the intent, start the VM and wait for GCE to accept it."""
        zone, name = self._locate(provider_id)
        self._set_intent(zone, name, "running")
        self._wait(self._call(self.instances.start_unary, zone=zone, instance=name), zone)
        return self.get(provider_id)

    def destroy(self, provider_id: str) -> None:
        """Delete the VM and its boot disk; a missing VM is already deleted."""
        zone, name = self._locate(provider_id)
        try:
            operation = self._call(self.instances.delete_unary, zone=zone, instance=name)
        except MachineNotFound:
            return
        self._wait(operation, zone)

    def _set_intent(self, zone: str, name: str, intent: str) -> None:
        instance = self._call(self.instances.get, zone=zone, instance=name)
        if instance.labels.get(INTENT_LABEL) == intent:
            return
        request = compute_v1.InstancesSetLabelsRequest(
            labels={**instance.labels, INTENT_LABEL: intent},
            label_fingerprint=instance.label_fingerprint,
        )
        operation = self._call(
            self.instances.set_labels_unary,
            zone=zone,
            instance=name,
            instances_set_labels_request_resource=request,
        )
        self._wait(operation, zone)

    def _machine(self, instance: compute_v1.Instance, zone: str) -> Machine:
        labels = dict(instance.labels)
        metadata = {item.key: item.value for item in instance.metadata.items}
        access = [
            config.nat_i_p
            for interface in instance.network_interfaces
            for config in interface.access_configs
            if config.nat_i_p
        ]
        public_ip = access[0] if access else ""
        return Machine(
            provider_id=f"{zone}/{instance.name}",
            state=standby_state(instance.status, labels),
            gpu="CPU",
            gpu_count=0,
            region=self.regions_by_zone.get(zone, ""),
            price_micros_per_hour=self.price_micros_per_hour,
            ssh_host=public_ip,
            ssh_port=22 if public_ip else 0,
            public_ip=public_ip,
            idempotency_key=metadata.get(KEY_METADATA, ""),
        )
