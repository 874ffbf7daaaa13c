"""SimProvider: the GpuProvider of the simulated market (`python -m simulator`), over HTTP."""

import httpx

from dumont.tls import tls_context
from instances.providers.base import (
    Machine,
    MachineNotFound,
    MachineSpec,
    MachineState,
    Offer,
    OfferUnavailable,
    ProviderError,
    StandbySpec,
    TransientProviderError,
)


class SimProvider:
    name = "sim"

    def __init__(self, base_url: str, api_key: str = "", timeout_seconds: float = 10.0):
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(
            base_url=base_url, headers=headers, timeout=timeout_seconds, verify=tls_context()
        )

    def _call(self, method: str, path: str, **kwargs) -> httpx.Response:
        try:
            response = self.client.request(method, path, **kwargs)
        except httpx.TimeoutException as error:
            raise TransientProviderError(f"simulator timed out: {error}") from error
        except httpx.TransportError as error:
            raise TransientProviderError(f"simulator unreachable: {error}") from error
        if response.status_code == 429 or response.status_code >= 500:
            retry_after = response.headers.get("Retry-After")
            raise TransientProviderError(
                f"simulator answered {response.status_code}",
                retry_after_seconds=float(retry_after) if retry_after else None,
            )
        if response.status_code == 404:
            raise MachineNotFound(path)
        if response.status_code == 409:
            raise OfferUnavailable(response.json().get("detail", "offer unavailable"))
        if response.status_code >= 400:
            raise ProviderError(f"simulator answered {response.status_code}: {response.text}")
        return response

    def search_offers(
        self,
        *,
        gpu: str | None,
        region: str | None,
        gpu_count: int | None,
        max_price_micros: int | None,
    ) -> list[Offer]:
        """Offers now, cheapest first."""
        filters = {
            "gpu": gpu,
            "region": region,
            "gpu_count": gpu_count,
            "max_price_micros": max_price_micros,
        }
        params = {key: value for key, value in filters.items() if value is not None}
        offers = self._call("GET", "/v1/offers", params=params).json()["offers"]
        return [Offer(provider=self.name, **offer) for offer in offers]

    def create(self, offer: Offer, spec: MachineSpec, *, idempotency_key: str) -> Machine:
        """PUT by idempotency key: a repeated call returns the machine the first one made."""
        body = {
            "offer_id": offer.offer_id,
            "spec": {
                "instance_id": spec.instance_id,
                "image": spec.image,
                "disk_gb": spec.disk_gb,
                "ssh_public_keys": list(spec.ssh_public_keys),
                "env": spec.env,
            },
        }
        return _machine(self._call("PUT", f"/v1/machines/{idempotency_key}", json=body).json())

    def create_standby(self, spec: StandbySpec, *, idempotency_key: str) -> Machine:
        """A CPU machine of the simulator in the spec's region (offer `standby-<region>`)."""
        body = {
            "offer_id": f"standby-{spec.region}",
            "spec": {
                "instance_id": spec.instance_id,
                "image": "dumont/standby",
                "disk_gb": spec.disk_gb,
                "ssh_public_keys": list(spec.ssh_public_keys),
                "env": spec.env,
            },
        }
        return _machine(self._call("PUT", f"/v1/machines/{idempotency_key}", json=body).json())

    def get(self, provider_id: str) -> Machine:
        return _machine(self._call("GET", f"/v1/machines/{provider_id}").json())

    def list_machines(self) -> list[Machine]:
        return [_machine(m) for m in self._call("GET", "/v1/machines").json()["machines"]]

    def stop(self, provider_id: str) -> Machine:
        return _machine(self._call("POST", f"/v1/machines/{provider_id}/stop").json())

    def start(self, provider_id: str) -> Machine:
        return _machine(self._call("POST", f"/v1/machines/{provider_id}/start").json())

    def destroy(self, provider_id: str) -> None:
        self._call("DELETE", f"/v1/machines/{provider_id}")

    def interrupt(self, provider_id: str) -> Machine:
        """Take the machine back exactly as the simulated market does (for demos and tests)."""
        return _machine(self._call("POST", f"/v1/machines/{provider_id}/interrupt").json())

    def set_load(self, provider_id: str, percent: float) -> Machine:
        """The GPU utilisation the machine's agent will report."""
        body = {"gpu_utilization_percent": percent}
        return _machine(self._call("PUT", f"/v1/machines/{provider_id}/load", json=body).json())


def _machine(data: dict) -> Machine:
    return Machine(
        provider_id=data["id"],
        state=MachineState(data["state"]),
        gpu=data["gpu"],
        gpu_count=data["gpu_count"],
        region=data["region"],
        price_micros_per_hour=data["price_micros_per_hour"],
        ssh_host=data.get("ssh_host", ""),
        ssh_port=data.get("ssh_port", 0),
        public_ip=data.get("public_ip", ""),
        gpu_utilization_percent=data.get("gpu_utilization_percent"),
        idempotency_key=data.get("idempotency_key", ""),
        offer_id=data.get("offer_id", ""),
    )
