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
