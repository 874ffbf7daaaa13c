"""`dumont snapshot create|list|restore` and `dumont advisor` against the real API."""

import json
from pathlib import Path

import pytest

from conftest import wait_until
from instances.models import Instance

pytestmark = pytest.mark.django_db(transaction=True)


def test_snapshot_a_workspace_and_restore_it_on_another_gpu(logged_in, snapshot_platform, dumont):
    created = dumont("create", "--gpu", "RTX4090", "--region", "US-East", "--wait", "--json")
    instance = json.loads(created.stdout)
    machine = snapshot_platform.get(f"/v1/machines/{instance['provider_id']}")
    (Path(machine["folder"]) / "workspace" / "weights.txt").write_text("epoch 7")

    taken = dumont("snapshot", "create", instance["id"], "--name", "epoch-7")
    listed = json.loads(dumont("snapshot", "list", "--json").stdout)
    restored = dumont(
        "snapshot", "restore", listed[0]["id"], "--gpu", "A100", "--region", "EU-West"
    )

    assert taken.exit_code == 0, taken.stderr
    assert [(s["name"], s["status"]) for s in listed] == [("epoch-7", "completed")]
    assert restored.exit_code == 0, restored.stderr
    new_id = restored.stdout.split(" into ")[1].split(":")[0]
    wait_until(lambda: Instance.objects.get(pk=new_id).status == "running", timeout=90)

    def restored_file():
        provider_id = Instance.objects.get(pk=new_id).provider_id
        folder = Path(snapshot_platform.get(f"/v1/machines/{provider_id}")["folder"])
        target = folder / "workspace" / "weights.txt"
        return target.exists() and target.read_text()

    assert wait_until(restored_file, timeout=60) == "epoch 7"
    assert Instance.objects.get(pk=new_id).gpu == "A100"


@pytest.mark.django_db
def test_the_advisor_answers_from_the_rules_without_a_key(logged_in, market, dumont, settings):
    settings.ADVISOR_API_KEY = ""

    answer = dumont(
        "advisor", "--workload", "LoRA fine-tune", "--model-size", "7", "--budget", "50", "--json"
    )

    assert answer.exit_code == 0, answer.stderr
    advice = json.loads(answer.stdout)
    assert advice["source"] == "rules" and advice["gpu"] and advice["estimated_cost_usd"] <= 50
