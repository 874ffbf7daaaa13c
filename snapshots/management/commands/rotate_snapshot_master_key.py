"""`manage.py rotate_snapshot_master_key`: re-wrap every tenant repository under a new key.

Run it after deploying SNAPSHOT_MASTER_KEY=<new> with SNAPSHOT_MASTER_KEY_PREVIOUS=<old> to every
process (OPERATIONS.md, "Rotating the snapshot master key"). For each repository still under the
previous key it re-wraps the repository's data keys (one small write of its config; no data is
re-encrypted), then sends the sync settings again to the tenant's running instances, whose
agents still hold the old tenant secret. Safe to run again: a repository already under the new
key is left alone.
"""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from instances.models import Instance
from snapshots import repositories, services
from snapshots.engine import RepositoryNotFound
from snapshots.engine.exceptions import WrongKey
from snapshots.models import SnapshotRepository


class Command(BaseCommand):
    help = "Re-wrap every snapshot repository under SNAPSHOT_MASTER_KEY (from ..._PREVIOUS)."

    def handle(self, *args, **options):
        if not settings.SNAPSHOT_MASTER_KEY_PREVIOUS:
            raise CommandError("set SNAPSHOT_MASTER_KEY_PREVIOUS to the key being replaced")
        if settings.SNAPSHOT_MASTER_KEY_PREVIOUS == settings.SNAPSHOT_MASTER_KEY:
            raise CommandError("SNAPSHOT_MASTER_KEY must be the new key, not the previous one")
        rewrapped = current = missing = 0
        failed: list[int] = []
        for tenant_id in SnapshotRepository.objects.order_by("pk").values_list(
            "tenant_id", flat=True
        ):
            try:
                # The row lock: the same lock repository creation takes, so nothing else
                # writes this repository's config meanwhile.
                with transaction.atomic():
                    SnapshotRepository.objects.select_for_update().get(tenant_id=tenant_id)
                    is_rewrapped = repositories.rewrap_repository(tenant_id)
            except RepositoryNotFound:
                missing += 1
                continue
            except WrongKey:
                failed.append(tenant_id)
                continue
            if not is_rewrapped:
                current += 1
                continue
            rewrapped += 1
            running = Instance.objects.for_tenant(tenant_id).filter(status=Instance.Status.RUNNING)
            for instance_id in running.values_list("pk", flat=True):
                services.start_sync(instance_id)  # the agent gets the new secret at hand-out
        self.stdout.write(
            f"re-wrapped {rewrapped}, already under the new key {current}, "
            f"no repository in the store {missing}, opened by neither key {len(failed)}"
        )
        if failed:
            raise CommandError(f"tenants whose repository neither key opens: {failed}")
