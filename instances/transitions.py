"""The one write path of instance status (DESIGN.md, "Instance state machine")."""

from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.utils import timezone

from instances import notify
from instances.exceptions import InvalidTransition
from instances.models import Instance, InstanceEvent

Status = Instance.Status

# Everything but deleted may fall to error (a person or reconcile acts from there).
_LIVE = {status for status in Status if status not in (Status.DELETED,)}
_DELETABLE = _LIVE - {Status.DELETING}

ALLOWED: dict[str, set[str]] = {
    Status.PENDING: {Status.PROVISIONING},
    Status.PROVISIONING: {Status.RUNNING, Status.PENDING},  # pending: retry after a lost offer
    Status.RUNNING: {Status.HIBERNATING, Status.FAILING_OVER},
    Status.HIBERNATING: {Status.HIBERNATED},
    Status.HIBERNATED: {Status.WAKING},
    Status.WAKING: {Status.RUNNING},
    # recovering straight from failing_over: a plan without a standby (or a standby that failed)
    Status.FAILING_OVER: {Status.ON_STANDBY, Status.RECOVERING},
    Status.ON_STANDBY: {Status.RECOVERING},
    Status.RECOVERING: {Status.RUNNING},
    Status.DELETING: {Status.DELETED},
    Status.DELETED: set(),
    # From error, reconcile or a person retries: provisioning again, back to a stopped machine,
    # or on to deletion.
    Status.ERROR: {Status.PENDING, Status.HIBERNATED},
}
for _status in _DELETABLE:
    ALLOWED[_status] = ALLOWED[_status] | {Status.DELETING}
for _status in _LIVE - {Status.ERROR}:
    ALLOWED[_status] = ALLOWED[_status] | {Status.ERROR}

# Statuses a worker is expected to leave soon; reconcile watches how long they last.
TRANSITIONAL = frozenset(
    {
        Status.PENDING,
        Status.PROVISIONING,
        Status.HIBERNATING,
        Status.WAKING,
        Status.FAILING_OVER,
        Status.RECOVERING,
        Status.DELETING,
    }
)

# Called with (instance, event) for every transition, INSIDE its transaction: billing's usage
# intervals open and close atomically with the status (a crash after commit cannot leave a
# running instance unmetered). Hooks must not call outside services; queue that on_commit.
TransitionHook = Callable[[Instance, InstanceEvent], None]
_hooks: list[TransitionHook] = []


def register_transition_hook(hook: TransitionHook) -> None:
    """Run `hook(instance, event)` in the transaction of every transition."""
    if hook not in _hooks:
        _hooks.append(hook)


def is_allowed(from_status: str, to_status: str) -> bool:
    return to_status in ALLOWED.get(from_status, set())


def transition(
    instance: Instance | str,
    to_status: str,
    *,
    reason: str = "",
    actor: str = "system",
    expected_from: set[str] | None = None,
    **fields: Any,
) -> bool:
    """Move an instance to `to_status`, with its event row and after-commit side effects.

    Returns False when the instance is already there (a retried task is harmless). Raises
    InvalidTransition for a move the table does not allow, or when `expected_from` is given and
    the instance is somewhere else. `fields` are saved with the status in the same write.
    """
    instance_id = instance if isinstance(instance, str) else instance.pk
    with transaction.atomic():
        locked = Instance.objects.select_for_update().get(pk=instance_id)
        from_status = locked.status
        if from_status == to_status:
            return False
        if expected_from is not None and from_status not in expected_from:
            raise InvalidTransition(from_status, to_status)
        if not is_allowed(from_status, to_status):
            raise InvalidTransition(from_status, to_status)
        now = timezone.now()
        locked.status = to_status
        locked.status_reason = reason[:300]
        locked.status_changed_at = now
        if to_status == Status.RUNNING:
            locked.running_since = now
        elif to_status == Status.DELETED:
            locked.deleted_at = now
        for name, value in fields.items():
            setattr(locked, name, value)
        locked.save(
            update_fields=[
                "status",
                "status_reason",
                "status_changed_at",
                "running_since",
                "deleted_at",
                *fields,
            ]
        )
        _record(locked, from_status, reason=reason, actor=actor, at=now)
    if not isinstance(instance, str):
        instance.refresh_from_db()
    return True


def record_creation(instance: Instance, *, actor: str) -> InstanceEvent:
    """The first event of a new instance (inside the transaction that inserted it)."""
    return _record(instance, "", reason="created", actor=actor, at=instance.status_changed_at)


def _record(instance: Instance, from_status: str, *, reason: str, actor: str, at) -> InstanceEvent:
    event = InstanceEvent.objects.create(
        tenant_id=instance.tenant_id,
        instance=instance,
        from_status=from_status,
        to_status=instance.status,
        reason=reason[:300],
        actor=actor[:254],
        created_at=at,
    )
    notify.transition_recorded(instance, event)
    for hook in _hooks:
        hook(instance, event)
    return event
