"""The workspace model checker, bounded and seeded: random interleavings of what users do
(writes of small and large files and of trees of a thousand files, overwrites, deletes,
renames, syncs, snapshots, restores, hibernation with and without a program writing through it,
wakes, interruptions, a second interruption during recovery, deletion) on the simulated market
with real agents, every invariant of snapshots/tests/workspace_model.py checked after each step.

WORKSPACE_CHECK_SEED and WORKSPACE_CHECK_STEPS choose another run; `bench/workspace_soak.py` is
the long one.
"""

import os
from pathlib import Path

import httpx
import pytest

from instances.reconcile import reconcile_all
from snapshots.tests.workspace_model import Platform, WorkspaceChecker

pytestmark = pytest.mark.django_db(transaction=True)

DEFAULT_SEED, DEFAULT_STEPS = 20261207, 30
SEED = int(os.environ.get("WORKSPACE_CHECK_SEED", DEFAULT_SEED))
STEPS = int(os.environ.get("WORKSPACE_CHECK_STEPS", DEFAULT_STEPS))


@pytest.mark.timeout(900)  # about a minute on a quiet machine; several under a loaded CI
def test_no_acknowledged_write_is_lost_whatever_the_order_of_events(
    owner, snapshot_platform, live_server, capsys
):
    api = httpx.Client(
        base_url=live_server.url, headers={"Authorization": f"Bearer {owner.token}"}, timeout=30
    )

    def call(method: str, path: str, body: dict | None) -> tuple[int, dict]:
        answer = api.request(method, path, json=body)
        return answer.status_code, answer.json() if answer.content else {}

    def workspace_of(instance: dict) -> Path:
        machine = snapshot_platform.get(f"/v1/machines/{instance['provider_id']}")
        return Path(machine["folder"]) / "workspace"

    def take_machine(machine_id: str) -> None:
        snapshot_platform.post(f"/v1/machines/{machine_id}/interrupt")

    platform = Platform(call, workspace_of, take_machine, reconcile=reconcile_all)
    with capsys.disabled():
        print(f"\nworkspace model checker: seed {SEED}, {STEPS} steps")
    checker = WorkspaceChecker(platform, SEED, say=lambda line: print(line))

    report = checker.run(STEPS)

    with capsys.disabled():
        kinds = ", ".join(f"{name} {count}" for name, count in sorted(report.operations.items()))
        print(
            f"workspace model checker: seed {SEED}, {report.steps} steps ({kinds}), "
            f"{len(report.interleavings)} distinct pairs of operations, 0 violations"
        )
    assert report.steps == STEPS
    if (SEED, STEPS) == (DEFAULT_SEED, DEFAULT_STEPS):
        assert set(report.operations) == {name for name, _weight in checker.OPERATIONS}
