"""Schemathesis over the whole /api/schema/, in process, as a real tenant.

Every operation gets generated valid and invalid requests (bounded, so the run stays within a
few minutes on two cores); then a state machine follows the links between operations (create →
read → change → delete) with the ids the API really returned. Each answer must:
- never be a 5xx;
- conform to the schema: a documented status code, content type and body;
- for a detail route that answered tenant A with its object, answer tenant B with a 404.
"""

import subprocess
import sys
import tempfile
from typing import Any

import httpx
import pytest
from django.conf import settings as django_settings
from django.urls import reverse
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.tests.factories import make_account
from conftest import api_schema_document, free_port, schema_case, wait_until
from dumont.health import record_beat_liveness, record_worker_liveness
from dumont.tests.test_tenant_isolation import ROUTES, Case, api_routes
from instances.models import Instance, Standby
from instances.tests.factories import InstanceFactory, StandbyFactory

MAX_EXAMPLES = 12
STATEFUL_MAX_EXAMPLES = 20
FUZZ_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,  # the same requests on every run: a finding reproduces
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def outside_services():
    """The simulated GPU market and the fake Stripe, once for the module (local processes)."""
    market_port, stripe_port = free_port(), free_port()
    processes = [
        subprocess.Popen(
            [sys.executable, *arguments],
            cwd=django_settings.BASE_DIR,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for arguments in (
            [
                "-m",
                "simulator",
                "--port",
                str(market_port),
                "--hazard-scale",
                "0",
                "--home",
                tempfile.mkdtemp(prefix="fuzz-sim-"),
            ],
            [
                "-m",
                "simulator.payments",
                "--port",
                str(stripe_port),
                "--webhook-url",
                "http://127.0.0.1:9/unused",
                "--webhook-secret",
                "whsec_fuzz",
            ],
        )
    ]
    urls = (f"http://127.0.0.1:{market_port}", f"http://127.0.0.1:{stripe_port}")
    wait_until(lambda: all(_answers(url) for url in urls), timeout=30)
    yield urls
    for process in processes:
        process.terminate()
        process.wait(timeout=15)


def _answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=1)
    except httpx.HTTPError:
        return False
    return True


@pytest.fixture
def tenants(db, outside_services, settings) -> tuple[str, str]:
    """API tokens of owners of two organisations: A (the fuzzed one) and B (the intruder)."""
    settings.GPU_PROVIDER = "sim"
    settings.SIM_PROVIDER_URL, settings.STRIPE_API_BASE = outside_services
    record_worker_liveness()  # /api/health: as if a worker and beat were running
    record_beat_liveness()
    return make_account()[3], make_account()[3]


def _other_tenant_gets_404(intruder_token: str):
    """A check: a detail route that showed A its object shows B nothing (404)."""

    def other_tenant_gets_404(ctx, response, case) -> bool | None:
        if not case.path_parameters or case.method.upper() != "GET":
            return None
        if response.status_code != 200 or case.path.startswith("/api/spot/"):
            return None  # market data (by GPU name) is shared by every tenant
        replay = case.call(headers=_bearer(intruder_token))
        assert replay.status_code == 404, (
            f"Tenant B got {replay.status_code} for tenant A's {case.formatted_path}"
        )
        return True

    return other_tenant_gets_404


def _operations() -> list[tuple[str, str, GenerationMode]]:
    """(METHOD, path, mode) of every operation the schema documents, read at collection; the
    negative mode only where there is an input to get wrong."""
    cases = []
    for path, operations in api_schema_document()["paths"].items():
        for method, operation in operations.items():
            cases.append((method.upper(), path, GenerationMode.POSITIVE))
            if operation.get("parameters") or operation.get("requestBody"):
                cases.append((method.upper(), path, GenerationMode.NEGATIVE))
    return cases


@pytest.mark.timeout(300)
@pytest.mark.parametrize(("method", "path", "mode"), _operations())
def test_every_operation_answers_within_its_schema(api_schema, tenants, method, path, mode):
    owner_token, intruder_token = tenants
    operation = api_schema[path][method]
    check = _other_tenant_gets_404(intruder_token)

    @FUZZ_SETTINGS
    @given(case=operation.as_strategy(generation_mode=mode))
    def call(case):
        case.call_and_validate(
            headers=_bearer(owner_token),
            additional_checks=[check],
            # Business rules the schema cannot say (a known GPU name, an unused e-mail, a
            # parseable SSH key, a time in the future) refuse some schema-valid requests with
            # a documented 400; the other checks still hold for them.
            excluded_checks=[positive_data_acceptance],
        )

    call()


# Market data ("shared") needs query parameters and a market: the spot tests read it.
READ_ROUTES = [
    route
    for route in api_routes()
    if "get" in route.methods
    and ROUTES.get(route.name, Case("public")).kind not in ("public", "shared")
]


@pytest.fixture
def owners_read(two_tenants, route) -> tuple[str, str]:
    """(token, URL): what the isolation walk makes for `route`, as tenant A; made before the
    in-process app unhooks the test client's connection handling."""
    owner = two_tenants[0]
    case = ROUTES[route.name]
    made = case.make(owner)
    url = reverse(route.name, kwargs=made.kwargs if case.kind in ("detail", "shared") else {})
    return owner.token, url


@pytest.mark.parametrize("route", READ_ROUTES, ids=lambda route: route.name)
def test_every_read_of_real_data_answers_within_its_schema(route, owners_read, api_schema):
    """The fuzzed tenant has few rows of each kind: here every GET route reads what the tenant
    isolation walk makes (an instance with its events, a ledger, an invoice, a delivery...)."""
    token, url = owners_read
    case = schema_case(api_schema, "GET", url)

    response = case.call_and_validate(
        headers=_bearer(token),
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )

    assert response.status_code == 200, (url, response.text[:300])


def test_instances_with_a_standby_answer_within_their_schema(api_schema):
    """What the fuzzed tenant's instances never show (no worker runs here): a standby, an empty
    requested region, a first event. The schema called `standby` a string and allowed neither
    empty value until this test."""
    _user, tenant, _membership, token = make_account()
    for instance_status, standby_status in (
        (Instance.Status.RUNNING, Standby.Status.FOLLOWING),
        (Instance.Status.ON_STANDBY, Standby.Status.SERVING),
    ):
        instance = InstanceFactory(tenant=tenant, status=instance_status)
        StandbyFactory(instance=instance, status=standby_status)
        instance.events.create(
            tenant=tenant,
            from_status="",
            to_status=Instance.Status.PENDING,
            created_at=instance.status_changed_at,
        )
        detail = schema_case(api_schema, "GET", f"/api/instances/{instance.pk}")
        response = detail.call_and_validate(headers=_bearer(token))
        assert response.json()["standby"]["status"] == standby_status
        events = schema_case(api_schema, "GET", f"/api/instances/{instance.pk}/events")
        first = events.call_and_validate(headers=_bearer(token)).json()["results"][0]
        assert (first["from_status"], first["to_status"]) == ("", "pending")

    listing = schema_case(api_schema, "GET", "/api/instances")
    assert len(listing.call_and_validate(headers=_bearer(token)).json()["results"]) == 2


@pytest.mark.timeout(900)
def test_linked_operations_answer_within_their_schema(api_schema, tenants):
    owner_token, intruder_token = tenants
    check = _other_tenant_gets_404(intruder_token)

    class Machine(api_schema.as_state_machine()):
        def get_call_kwargs(self, case) -> dict[str, Any]:
            return {"headers": _bearer(owner_token)}

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(
                response,
                additional_checks=[check],
                # The machine sends A's valid token itself, beside a made-up portal cookie
                # that ignored_auth takes for the credentials under test; the stateless test
                # checks the 401s for missing and wrong credentials.
                excluded_checks=[ignored_auth, positive_data_acceptance],
                transport_kwargs=kwargs,
            )

    Machine.run(
        settings=settings(
            FUZZ_SETTINGS,
            max_examples=STATEFUL_MAX_EXAMPLES,
            stateful_step_count=8,
        )
    )
