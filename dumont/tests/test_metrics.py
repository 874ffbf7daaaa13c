"""GET /metrics: protected, Prometheus text, task metrics from a real worker process and the
state the database holds (provisioning, failovers, sync lag, webhook deliveries)."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from accounts.tests.factories import UserFactory
from conftest import wait_until, worker_arguments
from instances.models import Failover, Instance, InstanceEvent
from instances.tests.factories import InstanceFactory
from webhooks.models import WebhookDelivery
from webhooks.services import emit
from webhooks.tests.factories import make_endpoint

METRICS = "/metrics"
TOKEN = "metrics-token-for-tests"


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
def test_provisioning_counts_are_still_exported_when_the_cache_is_down(scrape, settings):
    _provisioned(8, Instance.Status.RUNNING)
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:9/0",  # nothing listens there
        }
    }

    samples = scrape()

    assert samples[("dumont_provisioning_outcomes_total", (("outcome", "succeeded"),))] == 1
    assert samples[("dumont_provisioning_duration_seconds_sum", ())] == pytest.approx(8)


@pytest.mark.django_db
def test_a_scrape_runs_as_many_queries_after_a_long_history_as_after_a_short_one(scrape):
    _provisioned(8, Instance.Status.RUNNING)
    scrape()  # the first one also sums the history before the last hours, once
    with CaptureQueriesContext(connection) as short_history:
        scrape()
    for seconds in range(20, 80, 3):
        _provisioned(seconds, Instance.Status.RUNNING)
        _provisioned(seconds, Instance.Status.ERROR)

    with CaptureQueriesContext(connection) as long_history:
        samples = scrape()

    assert samples[("dumont_provisioning_outcomes_total", (("outcome", "succeeded"),))] == 21
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
def test_webhook_deliveries_by_outcome(scrape, owner):
    make_endpoint(owner.tenant, events=["instance.running"])
    deliveries = [emit(owner.tenant, "instance.running", {"n": n})[0] for n in range(3)]
    first, second = deliveries[0], deliveries[1]  # the third stays pending
    WebhookDelivery.objects.filter(pk=first.pk).update(
        status=WebhookDelivery.Status.SUCCEEDED,
        delivered_at=timezone.now(),
        last_attempt_at=timezone.now(),
        next_attempt_at=None,
    )
    WebhookDelivery.objects.filter(pk=second.pk).update(
        status=WebhookDelivery.Status.FAILED, last_attempt_at=timezone.now(), next_attempt_at=None
    )

    samples = scrape()

    assert samples[("dumont_webhook_deliveries_total", (("outcome", "succeeded"),))] == 1
    assert samples[("dumont_webhook_deliveries_total", (("outcome", "failed"),))] == 1
    assert samples[("dumont_webhook_deliveries_pending", ())] == 1


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
