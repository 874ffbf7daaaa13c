"""Send instance steps, the Celery tasks `instances.tasks.<step>`, by name.

The modules that change state send steps, and instances/tasks.py calls those modules: looking
the task up in Celery's registry by its name keeps the imports one way (tasks → moves, steps,
recovery → tasks_queue). InstancesConfig.ready imports instances.tasks, so every process (web,
worker, beat) has them registered.
"""

from celery import current_app
from django.db import transaction


def _task(step: str):
    return current_app.tasks[f"instances.tasks.{step}"]


def after_commit(step: str, argument: str) -> None:
    """Send task `instances.tasks.<step>` with one id once the caller's transaction commits."""
    task = _task(step)
    transaction.on_commit(lambda: task.delay(argument))


def send(step: str, argument: str, **keywords: str) -> None:
    """Send task `instances.tasks.<step>` now."""
    _task(step).delay(argument, **keywords)
