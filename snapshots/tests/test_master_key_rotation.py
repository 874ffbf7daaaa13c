"""Rotating SNAPSHOT_MASTER_KEY: `manage.py rotate_snapshot_master_key` re-wraps each tenant's
repository under the new key; its snapshots restore with the new key only, and running agents
get their new tenant secret."""

import pytest
from django.core.management import CommandError, call_command

from instances.models import AgentCommand, Instance
from instances.tests.factories import InstanceFactory
from snapshots import repositories
from snapshots.engine import Repository
from snapshots.engine.exceptions import WrongKey
from snapshots.services import SYNC_COMMAND

pytestmark = pytest.mark.django_db


@pytest.fixture
def store(tmp_path, settings):
    settings.SNAPSHOT_STORE_URL = str(tmp_path / "store")
    settings.SNAPSHOT_MASTER_KEY = "the-old-master-key"
    settings.SNAPSHOT_MASTER_KEY_PREVIOUS = ""
    return tmp_path


def _back_up_a_file(tenant_id: int, folder) -> str:
    repositories.ensure_repository(tenant_id)
    (folder / "workspace").mkdir()
    (folder / "workspace" / "model.txt").write_text("weights")
    return repositories.open_repository(tenant_id).backup(folder / "workspace").id


def _rotate(settings, stdout=None):
    settings.SNAPSHOT_MASTER_KEY = "the-new-master-key"
    settings.SNAPSHOT_MASTER_KEY_PREVIOUS = "the-old-master-key"
    call_command("rotate_snapshot_master_key", stdout=stdout)


def test_after_rotation_snapshots_restore_with_the_new_key_and_not_the_old(
    store, settings, owner, capsys
):
    snapshot_id = _back_up_a_file(owner.tenant.pk, store)

    _rotate(settings)
    settings.SNAPSHOT_MASTER_KEY_PREVIOUS = ""  # the rotation is over
    repositories.open_repository(owner.tenant.pk).restore(snapshot_id, store / "restored")

    assert (store / "restored" / "model.txt").read_text() == "weights"
    location = repositories._store(repositories.access_for(owner.tenant.pk))
    with pytest.raises(WrongKey):
        Repository.open(location, repositories.secret_for(owner.tenant.pk, "the-old-master-key"))
    assert "re-wrapped 1" in capsys.readouterr().out


def test_during_rotation_a_repository_not_yet_rewrapped_still_opens(store, settings, owner):
    snapshot_id = _back_up_a_file(owner.tenant.pk, store)

    settings.SNAPSHOT_MASTER_KEY = "the-new-master-key"
    settings.SNAPSHOT_MASTER_KEY_PREVIOUS = "the-old-master-key"
    repository = repositories.open_repository(owner.tenant.pk)

    assert snapshot_id in repository.snapshot_ids()


def test_running_the_rotation_again_changes_nothing(store, settings, owner, capsys):
    _back_up_a_file(owner.tenant.pk, store)
    _rotate(settings)
    capsys.readouterr()

    call_command("rotate_snapshot_master_key")

    assert "re-wrapped 0, already under the new key 1" in capsys.readouterr().out


def test_running_instances_of_a_rotated_tenant_get_their_sync_settings_again(
    store, settings, owner
):
    _back_up_a_file(owner.tenant.pk, store)
    running = InstanceFactory(tenant=owner.tenant, status=Instance.Status.RUNNING)
    hibernated = InstanceFactory(tenant=owner.tenant, status=Instance.Status.HIBERNATED)

    _rotate(settings)

    assert AgentCommand.objects.filter(instance=running, kind=SYNC_COMMAND).count() == 1
    assert not AgentCommand.objects.filter(instance=hibernated).exists()


def test_rotation_refuses_to_run_without_the_previous_key(store, settings):
    settings.SNAPSHOT_MASTER_KEY_PREVIOUS = ""

    with pytest.raises(CommandError, match="SNAPSHOT_MASTER_KEY_PREVIOUS"):
        call_command("rotate_snapshot_master_key")
