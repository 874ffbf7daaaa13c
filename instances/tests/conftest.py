"""A Celery worker and the API on a real port, for instance tests with real agents."""

import pytest

from conftest import worker_arguments


@pytest.fixture
def platform(simulator, live_server, settings, start_process, test_database_url):
    """The API on a real HTTP port (for agents) and a Celery worker process, both on the test
    database, with the simulator as provider."""
    from dumont.celery import app

    app.control.purge()  # tasks left in the test broker by earlier tests are not ours
    settings.DUMONT_PUBLIC_URL = live_server.url
    settings.AGENT_HEARTBEAT_SECONDS = 0.5
    start_process(
        *worker_arguments(),
        env={
            "DATABASE_URL": test_database_url,
            "SIM_PROVIDER_URL": simulator.url,
            "DUMONT_PUBLIC_URL": live_server.url,
            "AGENT_HEARTBEAT_SECONDS": "0.5",
        },
    )
    return simulator
