"""Fixtures shared by every app's tests. Tests run against the real Postgres and Redis."""

import functools
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from rest_framework.test import APIClient

from accounts.models import Membership, Tenant, User
from accounts.tests.factories import make_account


def pytest_configure(config):
    from django.conf import settings

    engine = settings.DATABASES["default"]["ENGINE"]
    if "postgresql" not in engine:
        raise pytest.UsageError(
            "The tests run against PostgreSQL: use `make test`, or set DATABASE_URL "
            "(and REDIS_URL) to real servers."
        )


@pytest.fixture(autouse=True)
def _fast_password_hashing(request, settings):
    # bcrypt at cost 12 takes ~0.25 s per hash; tests that are about hashing opt back in.
    if request.node.get_closest_marker("real_password_hashing") is None:
        settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _empty_cache():
    """Throttle counters and liveness marks live in Redis: each test starts without them."""
    cache.clear()
    yield
    cache.clear()


@dataclass
class Account:
    """A user acting for one tenant, with an API client that sends their token."""

    user: User
    tenant: Tenant
    membership: Membership
    token: str
    client: APIClient


def _account(role: str = Membership.Role.OWNER, tenant: Tenant | None = None) -> Account:
    user, tenant, membership, token = make_account(role=role, tenant=tenant)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return Account(user, tenant, membership, token, client)


@pytest.fixture
def account_factory(db):
    """Call with role= and tenant= to get more accounts."""
    return _account


@pytest.fixture
def owner(account_factory) -> Account:
    return account_factory()


@pytest.fixture
def two_tenants(account_factory) -> tuple[Account, Account]:
    """Owners of two different organisations: A and B."""
    return account_factory(), account_factory()


@pytest.fixture
def anonymous() -> APIClient:
    return APIClient()


@pytest.fixture
def test_database_url(transactional_db) -> str:
    """DATABASE_URL of the test database, for processes the test starts (worker, beat)."""
    parameters = connection.settings_dict
    return (
        f"postgres://{parameters['USER']}@{parameters['HOST'] or '127.0.0.1'}:"
        f"{parameters['PORT'] or 5432}/{parameters['NAME']}"
    )


@pytest.fixture
def start_process():
    """Start a real process of ours (celery worker, beat, ...); all are stopped after the test."""
    processes: list[subprocess.Popen] = []

    def start(
        *arguments: str, env: dict[str, str] | None = None, output: Path | None = None
    ) -> subprocess.Popen:
        """`output`: a file that receives the process's stdout and stderr (default: dropped)."""
        sink = open(output, "ab") if output is not None else subprocess.DEVNULL  # noqa: SIM115
        process = subprocess.Popen(
            [sys.executable, *arguments],
            cwd=settings.BASE_DIR,
            env={**os.environ, **(env or {})},
            stdout=sink,
            stderr=subprocess.STDOUT if output is not None else subprocess.DEVNULL,
            start_new_session=True,
        )
        if output is not None:
            sink.close()  # the child has its own copy
        processes.append(process)
        return process

    yield start
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def celery_arguments(*extra: str) -> list[str]:
    return ["-m", "celery", "-A", "dumont", *extra, "--loglevel", "WARNING"]


def worker_arguments(*includes: str) -> list[str]:
    """A light worker process: one slot, no cluster chatter, extra task modules included."""
    include = ["--include", ",".join(includes)] if includes else []
    return celery_arguments(
        "worker", "--pool", "solo", "--without-mingle", "--without-gossip", *include
    )


# --- The simulated GPU market (`python -m simulator`) ------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class Simulator:
    url: str

    def get(self, path: str) -> dict:
        return httpx.get(f"{self.url}{path}", timeout=5).json()

    def post(self, path: str, body: dict | None = None) -> httpx.Response:
        return httpx.post(f"{self.url}{path}", json=body or {}, timeout=5)

    def put(self, path: str, body: dict) -> httpx.Response:
        return httpx.put(f"{self.url}{path}", json=body, timeout=5)

    def machines(self) -> list[dict]:
        return self.get("/v1/machines")["machines"]


def wait_until(condition, timeout: float = 30.0, every: float = 0.1):
    """Poll `condition` until it returns something truthy; fail the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {condition}")


@pytest.fixture
def simulator(start_process, tmp_path, settings) -> Simulator:
    """The simulated market on a free port, booting machines in 0.3 s, without random faults."""
    port = free_port()
    start_process(
        "-m",
        "simulator",
        "--home",
        str(tmp_path / "sim-home"),
        "--port",
        str(port),
        "--provision-delay",
        "0.3",
        "--hazard-scale",
        "0",
    )
    simulator = Simulator(f"http://127.0.0.1:{port}")

    def answers() -> bool:
        try:
            return httpx.get(f"{simulator.url}/v1/offers", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(answers, timeout=30)
    settings.GPU_PROVIDER = "sim"
    settings.SIM_PROVIDER_URL = simulator.url
    return simulator


@functools.cache
def api_schema_document() -> dict:
    """The OpenAPI document /api/schema/ serves, generated once per run."""
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.renderers import OpenApiJsonRenderer

    document = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(OpenApiJsonRenderer().render(document, renderer_context={}))


@pytest.fixture
def api_schema(db):
    """Schemathesis over that document, calling Django in process in the test's transaction
    (as Django's test client does). Ask for it after fixtures that use the test client."""
    import schemathesis
    from django.core.signals import request_finished, request_started
    from django.core.wsgi import get_wsgi_application
    from django.db import close_old_connections

    # Django closes the connection at the end of each request; inside the test's transaction
    # that would lose everything, so the test client unhooks it the same way.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    loaded = schemathesis.openapi.from_dict(api_schema_document())
    loaded.app = get_wsgi_application()
    yield loaded
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def schema_case(api_schema, method: str, path: str, **kwargs):
    """The schemathesis case for a concrete path: /api/instances/abc → {"id": "abc"}."""
    operation = api_schema.find_operation_by_path(method, path)
    assert operation is not None, f"{method} {path} is not in the schema"
    template, actual = operation.path.split("/"), path.split("/")
    parameters = {
        name[1:-1]: value for name, value in zip(template, actual, strict=True) if name[:1] == "{"
    }
    return operation.Case(path_parameters=parameters or None, **kwargs)
