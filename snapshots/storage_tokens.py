"""Machine storage tokens (`dst_...`): what a GPU machine or a standby shows the storage gateway.

A token is `dst_<payload>.<signature>`: the payload is base64url JSON of the tenant, the machine
(`instance` or `standby` and its id), the first 16 hex digits of that machine's agent-token hash,
and the issue and expiry times (STORAGE_TOKEN_SECONDS); the signature is HMAC-SHA256 of the
payload under STORAGE_TOKEN_KEY. Nothing is stored: the gateway checks the signature and the
expiry, then, with one primary-key query, that the machine is still live with that agent token,
as its heartbeat would be. So a machine the market took back, replaced by a new provisioning
attempt or deleted loses access at its next request, not when its token runs out; and a token
copied off a machine opens only its own tenant's repository, for an hour at most.
"""

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass

from django.conf import settings

from instances.agent_tokens import AGENT_TOKEN_PREFIX, STANDBY_TOKEN_PREFIX, hash_agent_token
from instances.models import AgentCommand, Instance, Standby
from snapshots import repositories
from snapshots.exceptions import InvalidStorageToken

STORAGE_TOKEN_PREFIX = "dst_"
INSTANCE = "instance"
STANDBY = "standby"
# Enough of the agent-token hash to tell one provisioning attempt's machine from the next.
_HASH_DIGITS = 16
_LIVE_STANDBY = (Standby.Status.CREATING, Standby.Status.FOLLOWING, Standby.Status.SERVING)


@dataclass(frozen=True)
class Machine:
    """A machine whose agent reads and writes its tenant's repository."""

    kind: str  # INSTANCE or STANDBY
    id: str
    agent_token_hash: str


@dataclass(frozen=True)
class Grant:
    """What a valid token allows: its tenant's repository, while its machine is live."""

    tenant_id: int
    machine_kind: str
    machine_id: str
    agent_token_hash_prefix: str
    expires_at: int  # unix seconds


def _sign(payload: str) -> str:
    key = settings.STORAGE_TOKEN_KEY.encode()
    digest = hmac.new(key, f"storage:{payload}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def issue(tenant_id: int, machine: Machine, *, now: float | None = None) -> tuple[str, int]:
    """A token for `machine`'s access to `tenant_id`'s repository: (token, lifetime seconds)."""
    issued_at = int(now if now is not None else time.time())
    lifetime = settings.STORAGE_TOKEN_SECONDS
    document = {
        "t": tenant_id,
        "k": machine.kind,
        "m": machine.id,
        "h": machine.agent_token_hash[:_HASH_DIGITS],
        "iat": issued_at,
        "exp": issued_at + lifetime,
    }
    payload = base64.urlsafe_b64encode(json.dumps(document, separators=(",", ":")).encode())
    payload_text = payload.rstrip(b"=").decode()
    return f"{STORAGE_TOKEN_PREFIX}{payload_text}.{_sign(payload_text)}", lifetime


def verify(token: str, *, now: float | None = None) -> Grant:
    """The grant of a genuine, unexpired token; InvalidStorageToken otherwise."""
    if not token.startswith(STORAGE_TOKEN_PREFIX) or token.count(".") != 1:
        raise InvalidStorageToken()
    payload, signature = token[len(STORAGE_TOKEN_PREFIX) :].split(".")
    if not hmac.compare_digest(signature.encode(errors="replace"), _sign(payload).encode()):
        raise InvalidStorageToken()
    try:
        document = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        grant = Grant(
            tenant_id=int(document["t"]),
            machine_kind=str(document["k"]),
            machine_id=str(document["m"]),
            agent_token_hash_prefix=str(document["h"]),
            expires_at=int(document["exp"]),
        )
    except (ValueError, KeyError, TypeError):
        raise InvalidStorageToken() from None  # signed by us, so only an older format
    if grant.expires_at <= (now if now is not None else time.time()):
        raise InvalidStorageToken("This storage token has expired: ask for a new one.")
    return grant


def is_live(grant: Grant) -> bool:
    """Whether the grant's machine still runs with the agent token it was issued to (one
    query on a primary key): the rule its heartbeat is accepted by."""
    if grant.machine_kind == INSTANCE:
        rows = Instance.objects.filter(pk=grant.machine_id, tenant_id=grant.tenant_id).exclude(
            status=Instance.Status.DELETED
        )
    elif grant.machine_kind == STANDBY and grant.machine_id.isdigit():
        rows = Standby.objects.filter(
            pk=int(grant.machine_id), tenant_id=grant.tenant_id, status__in=_LIVE_STANDBY
        )
    else:
        return False
    token_hash = rows.values_list("agent_token_hash", flat=True).first()
    return bool(token_hash) and token_hash[:_HASH_DIGITS] == grant.agent_token_hash_prefix


def machine_of_agent(agent_token: str) -> tuple[int, Machine] | None:
    """(tenant id, machine) of a live machine's agent token (`dia_` or `dsb_`), else None."""
    token_hash = hash_agent_token(agent_token)
    if agent_token.startswith(AGENT_TOKEN_PREFIX):
        row = (
            Instance.objects.filter(agent_token_hash=token_hash)
            .exclude(status=Instance.Status.DELETED)
            .values_list("tenant_id", "pk")
            .first()
        )
        kind = INSTANCE
    elif agent_token.startswith(STANDBY_TOKEN_PREFIX):
        row = (
            Standby.objects.filter(agent_token_hash=token_hash, status__in=_LIVE_STANDBY)
            .values_list("tenant_id", "pk")
            .first()
        )
        kind = STANDBY
    else:
        return None
    if row is None:
        return None
    return row[0], Machine(kind, str(row[1]), token_hash)


def machine_of_command(command: AgentCommand) -> Machine:
    """The machine a command is handed to: its instance's, or its standby's."""
    if command.standby_id is not None:
        standby = Standby.objects.only("agent_token_hash").get(pk=command.standby_id)
        return Machine(STANDBY, str(standby.pk), standby.agent_token_hash)
    instance = Instance.objects.only("agent_token_hash").get(pk=command.instance_id)
    return Machine(INSTANCE, instance.pk, instance.agent_token_hash)


def gateway_url() -> str:
    return settings.STORAGE_GATEWAY_URL or (f"{settings.DUMONT_PUBLIC_URL.rstrip('/')}/storage/v1/")


def machine_access(tenant_id: int, machine: Machine) -> dict:
    """What an agent needs to open its tenant's repository: the gateway, a fresh token, and
    the repository secret its engine encrypts with. No store path, no platform keys."""
    token, lifetime = issue(tenant_id, machine)
    return {
        "repository": gateway_url(),
        "storage_token": token,
        "storage_token_seconds": lifetime,
        "secret": repositories.secret_for(tenant_id),
    }
