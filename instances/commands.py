"""Agent commands that take a while (snapshot, restore): apps above instances register what
their progress and results mean; instances only hands them out and collects the reports.

Hooks run inside the heartbeat's transaction, like transition hooks: they update rows and queue
side effects with `transaction.on_commit`.
"""

from collections.abc import Callable
from dataclasses import dataclass

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


_hooks: dict[str, CommandHooks] = {}
_sync_hooks: list[SyncHook] = []


def register_command_hooks(kind: str, hooks: CommandHooks) -> None:
    """What a report of a `kind` command means to the app that queued it. Hooks of one kind
    from several apps combine (instances handles a restore's result, snapshots its secrets)."""
    current = _hooks.get(kind, CommandHooks())
    _hooks[kind] = CommandHooks(
        on_progress=hooks.on_progress or current.on_progress,
        on_result=hooks.on_result or current.on_result,
        secret_arguments=hooks.secret_arguments or current.secret_arguments,
    )


def register_sync_hook(hook: SyncHook) -> None:
    """Run `hook(instance, report)` for each continuous-sync report of an agent."""
    if hook not in _sync_hooks:
        _sync_hooks.append(hook)


def progress_hook(kind: str) -> ProgressHook | None:
    return _hooks.get(kind, CommandHooks()).on_progress


def result_hook(kind: str) -> ResultHook | None:
    return _hooks.get(kind, CommandHooks()).on_result


def arguments_for(command: AgentCommand) -> dict:
    """The command's stored arguments plus the secret ones its app adds at hand-out."""
    hook = _hooks.get(command.kind, CommandHooks()).secret_arguments
    return {**command.args, **(hook(command) if hook else {})}


def sync_hooks() -> list[SyncHook]:
    return list(_sync_hooks)
