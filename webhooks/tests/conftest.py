"""Fixtures of the webhook tests: a real local receiver, and tasks run in the test process."""

import pytest

from dumont.celery import app


@pytest.fixture(scope="session")
def httpserver_listen_address():
    """pytest-httpserver's receiver listens on 127.0.0.1 (a random port), never a public address."""
    return ("127.0.0.1", 0)


@pytest.fixture
def allow_loopback(settings):
    """What development does: WEBHOOK_ALLOWED_HOSTS lets deliveries reach the local receiver."""
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]


@pytest.fixture
def tasks_run_here():
    """Celery's eager mode: `.delay()` runs the real task in this process, errors raised.

    The test that starts a real worker process does not use it.
    """
    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager = False
    app.conf.task_eager_propagates = False
