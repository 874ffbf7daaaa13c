"""GET /metrics: protected, Prometheus text, task metrics from a real worker process and the
state the database holds (provisioning, failovers, sync lag, webhook deliveries)."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from accounts.tests.factories import UserFactory
from conftest import wait_until, worker_arguments
from instances.models import Failover, Instance, InstanceEvent
from instances.tests.factories import InstanceFactory
from webhooks.delivery import attempt_delivery
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.tests.factories import make_delivery, make_endpoint, receiver_url

METRICS = "/metrics"
TOKEN = "metrics-token-for-tests"
SUCCEEDED = ("dumont_webhook_deliveries_total", (("outcome", "succeeded"),))
FAILED = ("dumont_webhook_deliveries_total", (("outcome", "failed"),))
PENDING = ("dumont_webhook_deliveries_pending", ())


@pytest.fixture
def scrape(client, settings):
    settings.METRICS_TOKEN = TOKEN

    def scrape() -> dict[tuple[str, tuple], float]:
        response = client.get(METRICS, HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
        assert response.status_code == 200
        samples = {}
        for family in text_string_to_metric_families(response.content.decode()):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return samples

    return scrape


@pytest.mark.django_db
def test_metrics_without_credentials_is_401(client, settings):
    settings.METRICS_TOKEN = TOKEN

    response = client.get(METRICS)

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.django_db
def test_metrics_with_a_wrong_token_is_401(client, settings):
    settings.METRICS_TOKEN = TOKEN

    response = client.get(METRICS, HTTP_AUTHORIZATION="Bearer not-the-token")

    assert response.status_code == 401


@pytest.mark.django_db
def test_metrics_with_no_token_configured_refuses_any_bearer(client, settings):
    settings.METRICS_TOKEN = ""

    response = client.get(METRICS, HTTP_AUTHORIZATION="Bearer ")

    assert response.status_code == 401


@pytest.mark.django_db
def test_a_customer_signed_in_is_403_and_staff_see_the_metrics(client, settings):
    settings.METRICS_TOKEN = ""
    customer = UserFactory()
    staff = UserFactory(is_staff=True)

    client.force_login(customer)
    as_customer = client.get(METRICS)
    client.force_login(staff)
    as_staff = client.get(METRICS)

    assert as_customer.status_code == 403
    assert as_staff.status_code == 200
    assert b"dumont_instances" in as_staff.content


@pytest.mark.django_db
def test_request_metrics_of_django_prometheus_are_exported(scrape, anonymous):
    anonymous.get("/api/health/live")

    samples = scrape()

    assert any(name.startswith("django_http_requests") for name, _ in samples)
    assert any(name.startswith("django_db_execute") for name, _ in samples)


def _provisioned(seconds: float, to_status: str) -> Instance:
    instance = InstanceFactory(status=to_status)
    created_at = timezone.now() - timedelta(seconds=600)
    Instance.objects.filter(pk=instance.pk).update(created_at=created_at)
    InstanceEvent.objects.create(
        tenant=instance.tenant,
        instance=instance,
        from_status=Instance.Status.PROVISIONING,
        to_status=to_status,
        actor="system",
        created_at=created_at + timedelta(seconds=seconds),
    )
    return instance


@pytest.fixture
def endpoints(owner, httpserver, settings) -> tuple[WebhookEndpoint, WebhookEndpoint]:
    """An endpoint whose local receiver answers 200, and a disabled one (an attempt fails it)."""
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    httpserver.expect_request("/hook").respond_with_data("ok")
    receiving = make_endpoint(owner.tenant, receiver_url(httpserver))
    disabled = make_endpoint(owner.tenant, receiver_url(httpserver), is_active=False)
    return receiving, disabled


def _attempted(endpoint: WebhookEndpoint) -> WebhookDelivery:
    """A new delivery to `endpoint` and its first attempt, now (what the delivery task runs)."""
    delivery = make_delivery(endpoint)
    return attempt_delivery(endpoint.tenant_id, delivery.pk)


def _attempted_at(moment: datetime, *endpoints: WebhookEndpoint) -> None:
    """A first attempt to each endpoint at `moment`."""
    with time_machine.travel(moment, tick=False):
        for endpoint in endpoints:
            _attempted(endpoint)


def _scrapes_at(scrape, *moments: datetime) -> list[dict]:
    scrapes = []
    for moment in moments:
        with time_machine.travel(moment, tick=False):
            scrapes.append(scrape())
    return scrapes


@pytest.mark.django_db
def test_provisioning_outcomes_and_durations_come_from_the_events(scrape):
    _provisioned(8, Instance.Status.RUNNING)
    _provisioned(45, Instance.Status.RUNNING)
    _provisioned(30, Instance.Status.ERROR)

    samples = scrape()

    assert samples[("dumont_provisioning_outcomes_total", (("outcome", "succeeded"),))] == 2
    assert samples[("dumont_provisioning_outcomes_total", (("outcome", "failed"),))] == 1
    assert samples[("dumont_provisioning_duration_seconds_bucket", (("le", "10.0"),))] == 1
    assert samples[("dumont_provisioning_duration_seconds_bucket", (("le", "60.0"),))] == 2
    assert samples[("dumont_provisioning_duration_seconds_count", ())] == 2
    assert samples[("dumont_provisioning_duration_seconds_sum", ())] == pytest.approx(53)


@pytest.mark.django_db
def test_provisioning_counts_stay_exact_as_the_hours_pass(scrape):
    start = datetime(2026, 12, 1, 12, 5, tzinfo=UTC)
    with time_machine.travel(start, tick=False):
        _provisioned(8, Instance.Status.RUNNING)
        _provisioned(30, Instance.Status.ERROR)
        first = scrape()
    with time_machine.travel(start + timedelta(hours=1), tick=False):
        _provisioned(45, Instance.Status.RUNNING)
        an_hour_later = scrape()
    with time_machine.travel(start + timedelta(days=2), tick=False):
        two_days_later = scrape()

    succeeded = ("dumont_provisioning_outcomes_total", (("outcome", "succeeded"),))
    failed = ("dumont_provisioning_outcomes_total", (("outcome", "failed"),))
    durations = ("dumont_provisioning_duration_seconds_sum", ())
    assert (first[succeeded], first[failed], first[durations]) == (1, 1, pytest.approx(8))
    for samples in (an_hour_later, two_days_later):
        assert (samples[succeeded], samples[failed]) == (2, 1)
        assert samples[durations] == pytest.approx(53)
        assert samples[("dumont_provisioning_duration_seconds_bucket", (("le", "10.0"),))] == 1


@pytest.mark.django_db
def test_checkpointed_counts_are_still_exported_when_the_cache_is_down(scrape, settings, endpoints):
    _provisioned(8, Instance.Status.RUNNING)
    _attempted(endpoints[1])
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:9/0",  # nothing listens there
        }
    }

    samples = scrape()

    assert samples[("dumont_provisioning_outcomes_total", (("outcome", "succeeded"),))] == 1
    assert samples[("dumont_provisioning_duration_seconds_sum", ())] == pytest.approx(8)
    assert samples[FAILED] == 1


@pytest.mark.django_db
def test_a_scrape_runs_as_many_queries_after_a_long_history_as_after_a_short_one(scrape, endpoints):
    receiving, disabled = endpoints
    _provisioned(8, Instance.Status.RUNNING)
    _attempted(receiving)
    scrape()  # the first one also sums the history before the last hours, once
    with CaptureQueriesContext(connection) as short_history:
        scrape()
    for seconds in range(20, 80, 3):
        _provisioned(seconds, Instance.Status.RUNNING)
        _provisioned(seconds, Instance.Status.ERROR)
        _attempted(disabled)

    with CaptureQueriesContext(connection) as long_history:
        samples = scrape()

    assert samples[("dumont_provisioning_outcomes_total", (("outcome", "succeeded"),))] == 21
    assert (samples[SUCCEEDED], samples[FAILED]) == (1, 20)
    assert len(long_history) == len(short_history)


@pytest.mark.django_db
def test_failovers_and_their_rpo_and_rto_are_histograms(scrape):
    instance = InstanceFactory(status=Instance.Status.RUNNING)
    for rpo, rto_standby, rto_gpu in ((4.0, 3.0, 40.0), (25.0, 8.0, 90.0)):
        Failover.objects.create(
            tenant=instance.tenant,
            instance=instance,
            status=Failover.Status.COMPLETED,
            reason="interrupted",
            interrupted_at=timezone.now(),
            rpo_seconds=rpo,
            rto_standby_seconds=rto_standby,
            rto_gpu_seconds=rto_gpu,
        )

    samples = scrape()

    assert samples[("dumont_failovers_total", (("status", "completed"),))] == 2
    assert samples[("dumont_failover_rpo_seconds_bucket", (("le", "5.0"),))] == 1
    assert samples[("dumont_failover_rpo_seconds_bucket", (("le", "30.0"),))] == 2
    assert samples[("dumont_failover_rpo_seconds_sum", ())] == 29
    assert samples[("dumont_failover_rto_standby_seconds_bucket", (("le", "5.0"),))] == 1
    assert samples[("dumont_failover_rto_gpu_seconds_bucket", (("le", "60.0"),))] == 1
    assert samples[("dumont_failover_rto_gpu_seconds_count", ())] == 2


@pytest.mark.django_db
def test_sync_lag_counts_running_instances_only(scrape):
    InstanceFactory(status=Instance.Status.RUNNING, sync_lag_seconds=3.0)
    InstanceFactory(status=Instance.Status.RUNNING, sync_lag_seconds=70.0)
    InstanceFactory(status=Instance.Status.HIBERNATED, sync_lag_seconds=5000.0)

    samples = scrape()

    assert samples[("dumont_sync_lag_seconds_bucket", (("le", "5.0"),))] == 1
    assert samples[("dumont_sync_lag_seconds_count", ())] == 2
    assert samples[("dumont_sync_lag_max_seconds", ())] == 70.0
    assert samples[("dumont_instances", (("status", "running"),))] == 2


@pytest.mark.django_db
def test_webhook_deliveries_by_outcome(scrape, endpoints):
    receiving, disabled = endpoints
    _attempted(receiving)
    _attempted(disabled)
    make_delivery(receiving)  # not attempted yet

    samples = scrape()

    assert (samples[SUCCEEDED], samples[FAILED], samples[PENDING]) == (1, 1, 1)


@pytest.mark.django_db
def test_webhook_delivery_counts_stay_exact_as_the_hours_pass(scrape, endpoints):
    receiving, disabled = endpoints
    start = datetime(2026, 12, 1, 12, 5, tzinfo=UTC)
    _attempted_at(start, receiving, disabled)
    (first,) = _scrapes_at(scrape, start)
    on_the_hour = datetime(2026, 12, 1, 13, 0, tzinfo=UTC)  # a checkpoint's first instant
    _attempted_at(on_the_hour, receiving)
    _attempted_at(start + timedelta(hours=1), receiving)
    # Each hour's checkpoint is the last one plus an hour of deliveries; two days later, with no
    # checkpoint of the hour before, the whole history is counted again.
    later = _scrapes_at(
        scrape,
        start + timedelta(hours=1),
        start + timedelta(hours=2),
        start + timedelta(hours=3),
        start + timedelta(days=2),
    )

    assert (first[SUCCEEDED], first[FAILED]) == (1, 1)
    assert [(samples[SUCCEEDED], samples[FAILED]) for samples in later] == [(3, 1)] * 4


@pytest.mark.django_db
def test_webhook_delivery_counts_stay_exact_across_a_cache_flush(scrape, endpoints):
    receiving, disabled = endpoints
    start = datetime(2026, 12, 1, 12, 5, tzinfo=UTC)
    _attempted_at(start, receiving, disabled)
    _attempted_at(start + timedelta(hours=1), receiving)
    before = _scrapes_at(scrape, *(start + timedelta(hours=hours) for hours in (1, 2, 3)))

    cache.clear()
    after = _scrapes_at(scrape, start + timedelta(hours=3), start + timedelta(hours=4))

    assert [(samples[SUCCEEDED], samples[FAILED]) for samples in before + after] == [(2, 1)] * 5


@pytest.mark.django_db
def test_a_pending_webhook_delivery_is_in_the_gauge_until_it_ends_then_in_the_counter(
    scrape, endpoints, httpserver
):
    receiving, _ = endpoints
    httpserver.expect_oneshot_request("/hook").respond_with_data("busy", status=503)
    start = datetime(2026, 12, 1, 10, 5, tzinfo=UTC)
    with time_machine.travel(start, tick=False):
        delivery = _attempted(receiving)  # 503: retried in 30 s
    # At 12:05 the checkpoint (before 11:00) covers its first attempt, 10:05; still pending, it
    # is left out of it.
    waiting = _scrapes_at(scrape, start, start + timedelta(hours=2))
    with time_machine.travel(start + timedelta(hours=3), tick=False):
        attempt_delivery(delivery.tenant_id, delivery.pk)  # the retry, late; 200
    ended = _scrapes_at(scrape, *(start + timedelta(hours=hours) for hours in (3, 4, 5)))

    assert [(samples[PENDING], samples[SUCCEEDED]) for samples in waiting] == [(1, 0)] * 2
    assert [(samples[PENDING], samples[SUCCEEDED]) for samples in ended] == [(0, 1)] * 3


def test_task_runs_of_a_real_worker_reach_metrics_through_the_multiprocess_folder(
    scrape, settings, start_process, test_database_url, tmp_path, two_tenants
):
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    settings.PROMETHEUS_MULTIPROC_DIR = str(metrics_dir)
    start_process(
        *worker_arguments("dumont.tests.live_tasks"),
        env={"DATABASE_URL": test_database_url, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)},
    )
    from dumont.tests.live_tasks import push_from_worker

    push_from_worker.delay(two_tenants[0].tenant.pk, "metrics.test", {})
    key = (
        "dumont_celery_task_runs_total",
        (("state", "success"), ("task", "dumont.tests.push_from_worker")),
    )
    samples = wait_until(lambda: (s := scrape()).get(key) and s, timeout=60)

    assert samples[key] == 1
    duration_count = (
        "dumont_celery_task_duration_seconds_count",
        (("task", "dumont.tests.push_from_worker"),),
    )
    assert samples[duration_count] == 1
