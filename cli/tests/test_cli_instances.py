"""Instances from the command line, end to end: the API on a real port, a Celery worker and the
simulated market booting machines whose agents beat against the API."""

import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from billing import ledger
from instances.models import Instance
from instances.tests.factories import InstanceFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_create_wait_list_hibernate_wake_delete_from_the_command_line(logged_in, platform, dumont):
    created = dumont(
        "create", "--gpu", "RTX4090", "--region", "US-East", "--max-price", "2", "--wait", "--json"
    )

    assert created.exit_code == 0, created.stderr
    instance = json.loads(created.stdout)
    assert (instance["status"], instance["gpu"], instance["region"]) == (
        "running",
        "RTX 4090",
        "US-East",
    )
    instance_id = instance["id"]
    listed = dumont("list", "--json")
    assert [item["id"] for item in json.loads(listed.stdout)] == [instance_id]
    table = dumont("list")
    assert instance_id in table.stdout and "running" in table.stdout
    ssh = dumont("ssh", instance_id, "--print")
    assert ssh.stdout.strip() == instance["connection"]["ssh_command"]

    hibernated = dumont("hibernate", instance_id, "--wait")
    assert (hibernated.exit_code, hibernated.stdout) == (0, f"{instance_id}: hibernated\n")
    woken = dumont("wake", instance_id, "--wait")
    assert (woken.exit_code, woken.stdout) == (0, f"{instance_id}: running\n")

    refused = dumont("delete", instance_id, input="n\n")
    assert refused.exit_code != 0
    assert Instance.objects.get(pk=instance_id).status == "running"
    deleted = dumont("delete", instance_id, "--wait", input="y\n")
    assert deleted.exit_code == 0, deleted.stderr
    assert deleted.stdout.endswith(f"{instance_id}: deleted\n")

    events = json.loads(dumont("events", instance_id, "--json").stdout)
    assert [event["to_status"] for event in events] == [
        "pending",
        "provisioning",
        "running",
        "hibernating",
        "hibernated",
        "waking",
        "running",
        "deleting",
        "deleted",
    ]


def test_waking_a_running_instance_is_one_line_naming_the_transition(logged_in, dumont):
    instance = InstanceFactory(tenant=logged_in.tenant, status=Instance.Status.RUNNING)

    woken = dumont("wake", instance.id)

    assert woken.exit_code == 1
    assert woken.stderr.startswith("error: invalid_transition: ")
    assert woken.stderr.count("\n") == 1


def test_ssh_keys_can_be_named_by_name_or_id(logged_in, simulator, dumont):
    public_key = (
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    laptop = logged_in.client.post(
        "/api/ssh-keys", {"name": "laptop", "public_key": public_key}, format="json"
    ).json()

    created = dumont(
        "create", "--gpu", "RTX4090", "--max-price", "2", "--ssh-key", "laptop", "--json"
    )

    assert created.exit_code == 0, created.stderr
    assert json.loads(created.stdout)["ssh_key_ids"] == [laptop["id"]]


def test_no_capacity_shows_the_alternatives_on_one_line(logged_in, simulator, dumont):
    created = dumont("create", "--gpu", "H100", "--max-price", "0.05")

    assert created.exit_code == 1
    assert created.stderr.startswith("error: no_capacity: ")
    assert "Alternatives: 1 x H100 in " in created.stderr
    assert created.stderr.count("\n") == 1
    assert not Instance.objects.exists()


def test_too_little_credit_is_one_insufficient_credits_line(logged_in, simulator, dumont):
    ledger.post(logged_in.tenant, "adjustment", -78_990_000, idempotency_key="spent")

    created = dumont("create", "--gpu", "RTX4090", "--region", "US-East", "--max-price", "2")

    assert created.exit_code == 1
    assert created.stderr.startswith("error: insufficient_credits: ")
    assert "$0.01" in created.stderr
    assert not Instance.objects.exists()


def test_an_unknown_instance_is_a_not_found_line(logged_in, dumont):
    shown = dumont("show", "i-does-not-exist")

    assert shown.exit_code == 1
    assert shown.stderr.startswith("error: not_found: ")
    assert shown.stderr.count("\n") == 1
