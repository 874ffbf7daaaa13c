"""The agent command channel: commands are queued for an agent, handed out in its heartbeat
replies, and reported back (progress, then a result). Instances only carries them; apps register
what a kind's progress and result mean (`register_command_hooks`; the hooks are listed in
dumont/wiring.py), and the secret arguments added when it is handed out.

Hooks run inside the heartbeat's transaction, like transition hooks: they update rows and queue
side effects with `transaction.on_commit`.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction

from instances.models import AgentCommand, Instance

ProgressHook = Callable[[AgentCommand, dict], None]
ResultHook = Callable[[AgentCommand, bool, str, dict], None]
# Arguments added when the command is handed out, never stored (credentials, secrets).
ArgumentsHook = Callable[[AgentCommand], dict]
SyncHook = Callable[[Instance, dict], None]


@dataclass(frozen=True)
class CommandHooks:
    on_progress: ProgressHook | None = None
    on_result: ResultHook | None = None
    secret_arguments: ArgumentsHook | None = None


_hooks: dict[str, list[CommandHooks]] = {}
_sync_hooks: list[SyncHook] = []


def register_command_hooks(kind: str, hooks: CommandHooks) -> None:
    """What a report of a `kind` command means to an app. Several apps may register for one
    kind (instances runs a restored machine, snapshots tracks the customer's restore and adds
    the repository's secrets): every hook runs, in the order the apps registered them."""
    registered = _hooks.setdefault(kind, [])
    if hooks not in registered:
        registered.append(hooks)


def register_sync_hook(hook: SyncHook) -> None:
    """Run `hook(instance, report)` for each continuous-sync report of an agent."""
    if hook not in _sync_hooks:
        _sync_hooks.append(hook)


def progress_hook(kind: str) -> ProgressHook | None:
    hooks = [hooks.on_progress for hooks in _hooks.get(kind, []) if hooks.on_progress]
    if not hooks:
        return None

    def on_progress(command: AgentCommand, report: dict) -> None:
        for hook in hooks:
            hook(command, report)

    return on_progress


def result_hook(kind: str) -> ResultHook | None:
    hooks = [hooks.on_result for hooks in _hooks.get(kind, []) if hooks.on_result]
    if not hooks:
        return None

    def on_result(command: AgentCommand, ok: bool, detail: str, result: dict) -> None:
        for hook in hooks:
            hook(command, ok, detail, result)

    return on_result


def arguments_for(command: AgentCommand) -> dict:
    """The command's stored arguments plus the secret ones its apps add at hand-out."""
    arguments = dict(command.args)
    for hooks in _hooks.get(command.kind, []):
        if hooks.secret_arguments:
            arguments.update(hooks.secret_arguments(command))
    return arguments


def sync_hooks() -> list[SyncHook]:
    return list(_sync_hooks)


# --- The channel ------------------------------------------------------------------------------


def queue_command(instance: Instance, kind: str, args: dict | None = None) -> AgentCommand:
    """Queue a command for the agent; it gets it in its next heartbeat response."""
    with transaction.atomic():
        command = AgentCommand.objects.create(
            tenant_id=instance.tenant_id, instance=instance, kind=kind, args=args or {}
        )
        Instance.objects.filter(pk=instance.pk).update(has_queued_commands=True)
    return command


def hand_out_commands(instance_id: str, now: datetime) -> list[dict]:
    """Mark the instance agent's queued commands sent and return them, secrets added."""
    with transaction.atomic():
        # The flag is cleared FIRST. queue_command sets it in the transaction that adds the
        # command, so this update waits for any such transaction, and the select below (a new
        # statement) then sees its command. Cleared after the select, it would overwrite the
        # flag of a command committed in between, which would then wait with no beat asking.
        Instance.objects.filter(pk=instance_id).update(has_queued_commands=False)
        queued = list(
            AgentCommand.objects.select_for_update(skip_locked=True).filter(
                instance_id=instance_id, standby=None, state=AgentCommand.State.QUEUED
            )
        )
        AgentCommand.objects.filter(pk__in=[c.pk for c in queued]).update(
            state=AgentCommand.State.SENT, sent_at=now
        )
    return [{"id": c.pk, "kind": c.kind, "args": arguments_for(c)} for c in queued]


def finish_commands(instance_id: str, results: list[dict], now: datetime, *, standby=None) -> None:
    """Record what an agent (the machine's, or its standby's) reports of its commands."""
    for result in results:
        with transaction.atomic():
            command = (
                AgentCommand.objects.select_for_update()
                .filter(
                    instance_id=instance_id,
                    standby=standby,
                    pk=result["id"],
                    state=AgentCommand.State.SENT,
                )
                .first()
            )
            if command is None:
                continue  # unknown, or already reported (a retried beat)
            detail = str(result.get("detail", ""))[:2000]
            command.state = (
                AgentCommand.State.SUCCEEDED if result["ok"] else AgentCommand.State.FAILED
            )
            command.detail, command.finished_at = detail, now
            command.save(update_fields=["state", "detail", "finished_at"])
            hook = result_hook(command.kind)
            if hook:
                hook(command, result["ok"], detail, result.get("result") or {})


def abandon_queued_commands(instance: Instance, reason: str, now: datetime) -> None:
    """The instance's machine is gone: what was queued for it and never handed out fails, with
    its hooks told (a snapshot asked of it fails with the reason). Left queued, it would go to
    the NEXT machine, where a sync meant for the old one could snapshot the new machine's
    still-empty workspace before its restore. Called in a transaction."""
    # Flag first, as in hand_out_commands: a command committed meanwhile is seen below, and
    # one a hook queues sets the flag again.
    Instance.objects.filter(pk=instance.pk).update(has_queued_commands=False)
    queued = AgentCommand.objects.select_for_update().filter(
        instance=instance, standby=None, state=AgentCommand.State.QUEUED
    )
    for command in queued:
        command.state, command.detail, command.finished_at = AgentCommand.State.FAILED, reason, now
        command.save(update_fields=["state", "detail", "finished_at"])
        hook = result_hook(command.kind)
        if hook:
            hook(command, False, reason, {})


def record_progress(instance_id: str, reports: list[dict]) -> None:
    """Progress of long commands (snapshot, restore) for the apps that queued them."""
    for report in reports:
        command = AgentCommand.objects.filter(
            instance_id=instance_id, standby=None, pk=report["id"], state=AgentCommand.State.SENT
        ).first()
        hook = command and progress_hook(command.kind)
        if hook:
            with transaction.atomic():
                hook(command, report)
