"""Queue instance steps after the current transaction commits (services → tasks, no cycle)."""

from django.db import transaction


def after_commit(step: str, argument: str) -> None:
    """Send task `instances.tasks.<step>` with one id once the caller's transaction commits."""
    from instances import tasks

    task = getattr(tasks, step)
    transaction.on_commit(lambda: task.delay(argument))


def send(step: str, argument: str, **keywords: str) -> None:
    """Send task `instances.tasks.<step>` now."""
    from instances import tasks

    getattr(tasks, step).delay(argument, **keywords)
