"""A task module that test worker processes include (`celery worker --include ...`)."""

from celery import shared_task

from dumont.live import push_to_tenant


@shared_task(name="dumont.tests.push_from_worker")
def push_from_worker(tenant_id: int, event: str, data: dict) -> None:
    push_to_tenant(tenant_id, event, data)
