"""VastProvider: the GpuProvider of the Vast.ai marketplace, over its REST API.

Why httpx and not the `vastai` package: `vastai` is the CLI (its SDK wraps the CLI commands),
prints its results, reads the key from a file in $HOME and retries 429s on its own with sleeps
we cannot bound. A provider needs typed errors (Transient / OfferUnavailable / MachineNotFound),
explicit timeouts, bounded retries the Celery task can take over, and a configurable base URL
(VAST_API_URL) that tests point at a local fake. The API is five endpoints, so we call them:

- `POST /bundles/` searches offers with a JSON query of `{field: {op: value}}` filters
  (`gpu_name`, `num_gpus`, `dph_total`, `rentable`, `verified`, `rented`, `geolocation`) plus
  `type` ("on-demand" or "bid"), `order` and `limit`; it answers `{"offers": [...]}`.
- `PUT /asks/{offer_id}/` rents an offer: `image`, `disk` (GB), `label`, `env` (Docker flags,
  "-e KEY=VALUE ..."), `onstart`, `runtype`, and `price` (the bid, $/h, interruptible only); it
  answers `{"success": true, "new_contract": <instance id>}`, or 404/410 `no_such_ask` when
  the offer is gone and 400 `invalid_price` when the bid is under the machine's minimum.
- `GET /instances/` → `{"instances": [...]}`; `GET /instances/{id}/` → `{"instances": {...}}`.
- `PUT /instances/{id}/` with `{"state": "stopped" | "running"}`; `DELETE /instances/{id}/`.

Idempotency: Vast has no idempotency key, so the key goes in the instance `label`
(`dumont:<key>`), and create looks for a machine with that label before renting. A create whose
answer was lost (a timeout, a 5xx) is therefore found by the next attempt instead of renting
twice; two workers racing on one key are serialised by a short Redis lock. Only machines with a
`dumont:` label are listed, so reconcile never touches anything else in the account.

States: Vast reports three fields. `intended_status` is what we last asked for (running /
stopped / frozen), `cur_state` is the contract (does the machine still hold our GPUs), and
`actual_status` is the container (null or "created" or "loading" while booting, then
"running", "stopped", "exited", "rebooting", "unknown" without a recent host heartbeat,
"offline" when the host left). The rule (`machine_state`):

- intended stopped or frozen → STOPPED (we asked; the disk stays);
- intended running and the container is running (or "unknown" while the contract still runs:
  a missed host heartbeat, our agent's own heartbeat decides) → RUNNING;
- intended running, the contract running, the container booting → STARTING;
- intended running but the contract stopped, the container stopped / exited or the host
  offline → INTERRUPTED: the machine stopped without being asked, i.e. outbid (interruptible
  contracts are paused when a higher bid takes the GPUs), reclaimed or lost by its host.
  A `start()` waiting for its GPUs reads like this too; `start()` itself returns STARTING.

Errors: 429, 5xx, timeouts and connection errors are TransientProviderError. Reads, stop,
start and destroy are retried here at most VAST_MAX_RETRIES times, sleeping Retry-After (or a
short backoff) but never more than VAST_RETRY_MAX_SLEEP_SECONDS; past that the error goes up
with `retry_after_seconds` and the Celery task backs off. The rent itself is only retried on a
429 (refused, so nothing was rented); after a 5xx or a timeout the next attempt finds the
machine by label. 404 is MachineNotFound (OfferUnavailable for a rent, like 410 and
`invalid_price`), other 4xx a ProviderError with the API's message.
"""

import contextlib
import logging
import shlex
import time
from decimal import ROUND_HALF_UP, Decimal
from email.utils import parsedate_to_datetime

import httpx
from django.core.cache import cache
from django.utils import timezone

from dumont.tls import tls_context
from instances.providers import agent_boot_script
from instances.providers.base import (
    Machine,
    MachineNotFound,
    MachineSpec,
    MachineState,
    Offer,
    OfferUnavailable,
    ProviderError,
    TransientProviderError,
)
from spot.catalog import CONTINENT_REGIONS, Gpu, gpus

logger = logging.getLogger(__name__)

LABEL_PREFIX = "dumont:"
CREATE_LOCK_SECONDS = 60

# Vast's `gpu_name` values (as the search returns them) for each catalog GPU, keyed by
# Gpu.vast_name: the SkyPilot catalog spells them without spaces and suffixes (its fetcher strips
# "PCIE", "SXM4", "NVL", "Ti"), so the two directions need this table.
VAST_GPU_NAMES: dict[str, tuple[str, ...]] = {
    "RTX3060": ("RTX 3060",),
    "RTX3070": ("RTX 3070",),
    "RTX3080": ("RTX 3080",),
    "RTX3090": ("RTX 3090",),
    "RTX4060": ("RTX 4060 Ti",),
    "RTX4070": ("RTX 4070 Ti",),
    "RTX4090": ("RTX 4090",),
    "RTX5090": ("RTX 5090",),
    "RTXA6000": ("RTX A6000",),
    "RTX6000-Ada": ("RTX 6000Ada",),
    "RTXPRO6000S": ("RTX PRO 6000 S",),
    "A40": ("A40",),
    "L40S": ("L40S",),
    "A100": ("A100 PCIE", "A100 SXM4", "A100X"),
    "H100": ("H100 PCIE", "H100 SXM", "H100 NVL"),
    "H200": ("H200", "H200 NVL"),
    "B200": ("B200",),
    "V100": ("Tesla V100",),
}

# Vast's `geolocation` is "<state or city>, <country code>" ("Texas, US"), with a continent code
# appended when searched with `georegion` ("Texas, US, NA"). Countries where Vast hosts are.
COUNTRY_CONTINENTS: dict[str, str] = {
    **dict.fromkeys(("US", "CA", "MX"), "NA"),
    **dict.fromkeys(
        (
            "GB", "IE", "FR", "DE", "NL", "BE", "LU", "ES", "PT", "IT", "CH", "AT", "SE", "NO",
            "DK", "FI", "IS", "PL", "CZ", "SK", "HU", "RO", "BG", "HR", "SI", "RS", "GR", "EE",
            "LV", "LT", "UA", "MD", "CY", "MT",
        ),
        "EU",
    ),
    **dict.fromkeys(
        ("JP", "KR", "CN", "HK", "TW", "SG", "MY", "TH", "VN", "ID", "PH", "IN", "IL", "AE"),
        "AS",
    ),
    **dict.fromkeys(("AU", "NZ"), "OC"),
}  # fmt: skip
COUNTRY_NAMES = {"UNITED STATES": "US", "CANADA": "CA", "UNITED KINGDOM": "GB"}
# North America is two regions: the Pacific and Mountain states and provinces are US-West.
WEST_STATES = {
    "WASHINGTON", "OREGON", "CALIFORNIA", "NEVADA", "IDAHO", "MONTANA", "WYOMING", "UTAH",
    "COLORADO", "ARIZONA", "NEW MEXICO", "ALASKA", "HAWAII", "BRITISH COLUMBIA", "ALBERTA",
    "YUKON",
}  # fmt: skip


def _by_vast_gpu_name() -> dict[str, Gpu]:
    by_vast_name = {gpu.vast_name: gpu for gpu in gpus()}
    return {
        name: by_vast_name[vast_name]
        for vast_name, names in VAST_GPU_NAMES.items()
        if vast_name in by_vast_name
        for name in names
    }


def catalog_gpu(vast_gpu_name: str) -> Gpu | None:
    """Our catalog GPU for a Vast `gpu_name` ("RTX 4090" → RTX 4090); None if we do not rent it."""
    return _by_vast_gpu_name().get(vast_gpu_name)


def region_of(geolocation: str | None) -> str | None:
    """Our region for a Vast geolocation ("Oregon, US" → US-West); None if unknown."""
    parts = [part.strip().upper() for part in (geolocation or "").split(",") if part.strip()]
    if not parts:
        return None
    if len(parts) >= 3 and parts[-1] in CONTINENT_REGIONS:
        continent, country = parts[-1], parts[-2]
    else:
        country = COUNTRY_NAMES.get(parts[-1], parts[-1])
        continent = COUNTRY_CONTINENTS.get(country, "")
    regions = CONTINENT_REGIONS.get(continent)
    if not regions:
        return None
    if len(regions) == 1:
        return regions[0]
    state = parts[0] if len(parts) > 1 else ""
    return "US-West" if state in WEST_STATES else "US-East"


def countries_of(region: str) -> list[str]:
    """The country codes whose hosts can be in `region` (the search's geolocation filter)."""
    continents = {code for code, regions in CONTINENT_REGIONS.items() if region in regions}
    return sorted(country for country, code in COUNTRY_CONTINENTS.items() if code in continents)


def usd_to_micros(value: float | int | None) -> int:
    """Vast's dollars (floats in JSON) as integer micro-USD, rounded half up."""
    if value is None:
        return 0
    return int((Decimal(str(value)) * 1_000_000).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def micros_to_usd(micros: int) -> float:
    """Integer micro-USD as the float dollars Vast's API takes (six decimals, exact)."""
    return float(Decimal(micros) / 1_000_000)


def docker_env(env: dict[str, str]) -> str:
    """spec.env as the Docker flags Vast's `env` field takes: -e KEY=VALUE, shell-quoted."""
    return " ".join(f"-e {shlex.quote(f'{key}={value}')}" for key, value in env.items())


def machine_state(data: dict) -> MachineState:
    """The rule of the module docstring, from intended_status, cur_state and actual_status."""
    intended = data.get("intended_status") or "running"
    contract = data.get("cur_state") or "running"
    container = data.get("actual_status")
    if intended in ("stopped", "frozen"):
        return MachineState.STOPPED
    if container in ("stopped", "exited", "offline") or contract == "stopped":
        return MachineState.INTERRUPTED
    if container == "running" or (container == "unknown" and contract == "running"):
        return MachineState.RUNNING
    return MachineState.STARTING  # null, "created", "loading", "rebooting"


def _retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - timezone.now()).total_seconds())
    except (TypeError, ValueError):
        return None


def _api_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500]
    if isinstance(body, dict):
        for key in ("msg", "detail", "error"):
            if body.get(key):
                return str(body[key])
    return response.text[:500]


class VastProvider:
    name = "vast"

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        is_interruptible: bool = True,
        timeout_seconds: float = 30.0,
        max_retries: int = 2,
        retry_max_sleep_seconds: float = 5.0,
        search_limit: int = 64,
        agent_install_spec: str = "dumont-agent[nvml]",
    ):
        headers = {"Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self.client = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers=headers,
            timeout=timeout_seconds,
            verify=tls_context(),
        )
        self.is_interruptible = is_interruptible
        self.max_retries = max_retries
        self.retry_max_sleep_seconds = retry_max_sleep_seconds
        self.search_limit = search_limit
        self.agent_install_spec = agent_install_spec

    # --- HTTP -----------------------------------------------------------------------------------

    def _call(self, method: str, path: str, *, is_safe_to_repeat: bool = True, **kwargs):
        """One API call with bounded quick retries; see the module docstring for the rules."""
        attempt = 0
        while True:
            try:
                response = self.client.request(method, path, **kwargs)
            except httpx.TimeoutException as error:
                failure = TransientProviderError(f"Vast.ai timed out on {method} {path}: {error}")
                retry_after = None
                is_repeatable = is_safe_to_repeat
            except httpx.TransportError as error:
                failure = TransientProviderError(f"Vast.ai unreachable on {method} {path}: {error}")
                retry_after = None
                is_repeatable = is_safe_to_repeat
            else:
                status = response.status_code
                if status < 400:
                    return response
                if status != 429 and status < 500:
                    message = _api_message(response)
                    if status == 404:
                        raise MachineNotFound(f"Vast.ai: {message}")
                    if status == 410:  # only a rent answers 410: the offer is no longer there
                        raise OfferUnavailable(f"Vast.ai: {message}")
                    raise ProviderError(f"Vast.ai answered {status} on {method} {path}: {message}")
                retry_after = _retry_after_seconds(response)
                failure = TransientProviderError(
                    f"Vast.ai answered {status} on {method} {path}: {_api_message(response)}",
                    retry_after_seconds=retry_after,
                )
                # A 429 was refused before doing anything, so even a rent may be sent again.
                is_repeatable = is_safe_to_repeat or status == 429
            wait_seconds = retry_after if retry_after is not None else 0.25 * 2**attempt
            if (
                not is_repeatable
                or attempt >= self.max_retries
                or wait_seconds > self.retry_max_sleep_seconds
            ):
                raise failure
            attempt += 1
            logger.info("vast: %s; retry %d in %.2fs", failure, attempt, wait_seconds)
            time.sleep(wait_seconds)

    # --- GpuProvider ----------------------------------------------------------------------------

    def search_offers(
        self,
        *,
        gpu: str | None,
        region: str | None,
        gpu_count: int | None,
        max_price_micros: int | None,
    ) -> list[Offer]:
        """Rentable verified offers, cheapest first, priced for the whole machine per hour."""
        query: dict = {
            "rentable": {"eq": True},
            "verified": {"eq": True},
            "rented": {"eq": False},
            "type": "bid" if self.is_interruptible else "on-demand",
            "order": [["dph_total", "asc"]],
            "limit": self.search_limit,
        }
        if gpu is not None:
            wanted = next((g for g in gpus() if g.name == gpu), None)
            names = VAST_GPU_NAMES.get(wanted.vast_name, ()) if wanted else ()
            if not names:
                return []
            query["gpu_name"] = {"in": list(names)}
        if gpu_count is not None:
            query["num_gpus"] = {"eq": gpu_count}
        if max_price_micros is not None:
            query["dph_total"] = {"lte": micros_to_usd(max_price_micros)}
        if region is not None:
            query["geolocation"] = {"in": countries_of(region)}
        offers = []
        for data in self._call("POST", "/bundles/", json=query).json().get("offers") or []:
            offer = self._offer(data)
            if offer is None:
                continue
            if (region is not None and offer.region != region) or (
                max_price_micros is not None and offer.price_micros_per_hour > max_price_micros
            ):
                continue
            offers.append(offer)
        return sorted(offers, key=lambda offer: offer.price_micros_per_hour)

    def _offer(self, data: dict) -> Offer | None:
        gpu = catalog_gpu(data.get("gpu_name", ""))
        region = region_of(data.get("geolocation"))
        if gpu is None or region is None or data.get("dph_total") is None:
            return None  # a GPU we do not sell, or a host we cannot place in a region
        return Offer(
            provider=self.name,
            offer_id=str(data["id"]),
            gpu=gpu.name,
            gpu_count=int(data.get("num_gpus") or 1),
            region=region,
            price_micros_per_hour=usd_to_micros(data["dph_total"]),
            available=1 if data.get("rentable", True) and not data.get("rented") else 0,
        )

    def create(self, offer: Offer, spec: MachineSpec, *, idempotency_key: str) -> Machine:
        """Rent the offer, labelled with the key; a machine with that label is returned instead."""
        existing = self._find_by_key(idempotency_key)
        if existing is not None:
            return existing
        lock = f"providers:vast:create:{idempotency_key}"
        deadline = time.monotonic() + CREATE_LOCK_SECONDS
        while not cache.add(lock, "1", timeout=CREATE_LOCK_SECONDS):
            # Another worker is renting for this key: wait for it, then take its machine.
            if time.monotonic() > deadline:
                raise TransientProviderError("another create for this key is in flight")
            time.sleep(0.2)
        try:
            existing = self._find_by_key(idempotency_key)
            if existing is not None:
                return existing
            return self._rent(offer, spec, idempotency_key)
        finally:
            cache.delete(lock)

    def _rent(self, offer: Offer, spec: MachineSpec, idempotency_key: str) -> Machine:
        body: dict = {
            "client_id": "me",
            "image": spec.image,
            "disk": spec.disk_gb,
            "label": LABEL_PREFIX + idempotency_key,
            "env": docker_env(spec.env),
            "onstart": agent_boot_script(self.agent_install_spec, spec.ssh_public_keys),
            "runtype": "ssh",
        }
        if self.is_interruptible:
            # The bid is the price the offer was shown (and checked against the customer's
            # maximum) at: at least the machine's minimum bid, which dph_total includes.
            body["price"] = micros_to_usd(offer.price_micros_per_hour)
        path = f"/asks/{offer.offer_id}/"
        try:
            response = self._call("PUT", path, json=body, is_safe_to_repeat=False)
        except (MachineNotFound, OfferUnavailable) as error:
            raise OfferUnavailable(f"offer {offer.offer_id} is gone: {error}") from error
        except ProviderError as error:
            if "invalid_price" in str(error) or "no_such_ask" in str(error):
                raise OfferUnavailable(f"offer {offer.offer_id}: {error}") from error
            raise
        answer = response.json()
        if not answer.get("success", True) or not answer.get("new_contract"):
            if answer.get("error") in ("no_such_ask", "invalid_price"):
                raise OfferUnavailable(f"offer {offer.offer_id}: {answer.get('msg', '')}")
            raise ProviderError(f"Vast.ai did not rent offer {offer.offer_id}: {answer}")
        provider_id = str(answer["new_contract"])
        try:
            return self.get(provider_id)
        except MachineNotFound:
            # Just rented: the instance list can lag the rent by a moment.
            return Machine(
                provider_id=provider_id,
                state=MachineState.STARTING,
                gpu=offer.gpu,
                gpu_count=offer.gpu_count,
                region=offer.region,
                price_micros_per_hour=offer.price_micros_per_hour,
                idempotency_key=idempotency_key,
            )

    def _find_by_key(self, idempotency_key: str) -> Machine | None:
        return next((m for m in self.list_machines() if m.idempotency_key == idempotency_key), None)

    def get(self, provider_id: str) -> Machine:
        """The machine now; MachineNotFound once destroyed."""
        data = self._call("GET", f"/instances/{provider_id}/").json().get("instances")
        if isinstance(data, list):
            data = data[0] if data else None
        if not data:
            raise MachineNotFound(f"Vast.ai has no instance {provider_id}")
        return self._machine(data)

    def list_machines(self) -> list[Machine]:
        """The account's machines that Dumont labelled (the others are not ours to reconcile)."""
        response = self._call("GET", "/instances/", params={"owner": "me"})
        return [
            self._machine(data)
            for data in response.json().get("instances") or []
            if str(data.get("label") or "").startswith(LABEL_PREFIX)
        ]

    def stop(self, provider_id: str) -> Machine:
        """Stop the container and release the GPUs; the disk stays (and is billed)."""
        self._call("PUT", f"/instances/{provider_id}/", json={"state": "stopped"})
        return self.get(provider_id)

    def start(self, provider_id: str) -> Machine:
        """Ask for the GPUs back; the machine boots when the host has them free."""
        self._call("PUT", f"/instances/{provider_id}/", json={"state": "running"})
        machine = self.get(provider_id)
        if machine.state == MachineState.INTERRUPTED:
            # Not yet rescheduled: we have just asked, so it is starting, not lost.
            return Machine(**{**machine.__dict__, "state": MachineState.STARTING})
        return machine

    def destroy(self, provider_id: str) -> None:
        """Destroy the instance and its disk; an unknown instance is already destroyed."""
        with contextlib.suppress(MachineNotFound):
            self._call("DELETE", f"/instances/{provider_id}/")

    def _machine(self, data: dict) -> Machine:
        gpu = catalog_gpu(data.get("gpu_name") or "")
        label = str(data.get("label") or "")
        key = label.removeprefix(LABEL_PREFIX) if label.startswith(LABEL_PREFIX) else ""
        utilization = data.get("gpu_util")
        return Machine(
            provider_id=str(data["id"]),
            state=machine_state(data),
            gpu=gpu.name if gpu else str(data.get("gpu_name") or ""),
            gpu_count=int(data.get("num_gpus") or 0),
            region=region_of(data.get("geolocation")) or "",
            price_micros_per_hour=usd_to_micros(data.get("dph_total")),
            ssh_host=str(data.get("ssh_host") or ""),
            ssh_port=int(data.get("ssh_port") or 0),
            public_ip=str(data.get("public_ipaddr") or "").strip(),
            gpu_utilization_percent=float(utilization) if utilization is not None else None,
            idempotency_key=key,
            offer_id=str(data.get("ask_contract_id") or ""),
        )
