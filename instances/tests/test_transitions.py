import threading

import pytest
from django.db import connection

from instances.exceptions import InvalidTransition
from instances.models import Instance, InstanceEvent
from instances.tests.factories import InstanceFactory
from instances.transitions import ALLOWED, transition

Status = Instance.Status
pytestmark = pytest.mark.django_db


def test_a_move_the_table_allows_saves_the_status_and_writes_an_event():
    instance = InstanceFactory(status=Status.PENDING)

    moved = transition(instance, Status.PROVISIONING, reason="offer found", actor="system")

    assert moved is True
    instance.refresh_from_db()
    assert instance.status == Status.PROVISIONING
    assert instance.status_reason == "offer found"
    event = InstanceEvent.objects.get(instance=instance)
    assert (event.from_status, event.to_status, event.reason, event.actor) == (
        "pending",
        "provisioning",
        "offer found",
        "system",
    )


def test_moving_to_the_current_status_is_a_no_op_without_an_event():
    instance = InstanceFactory(status=Status.RUNNING)

    moved = transition(instance, Status.RUNNING)

    assert moved is False
    assert not InstanceEvent.objects.filter(instance=instance).exists()


@pytest.mark.parametrize(
    ("start", "to"),
    [
        (Status.PENDING, Status.RUNNING),
        (Status.HIBERNATED, Status.RUNNING),
        (Status.RUNNING, Status.WAKING),
        (Status.DELETED, Status.RUNNING),
        (Status.DELETED, Status.ERROR),
        (Status.DELETING, Status.RUNNING),
    ],
)
def test_an_illegal_move_raises_and_changes_nothing(start, to):
    instance = InstanceFactory(status=start)

    with pytest.raises(InvalidTransition) as raised:
        transition(instance, to)

    assert raised.value.code == "invalid_transition"
    instance.refresh_from_db()
    assert instance.status == start
    assert not InstanceEvent.objects.filter(instance=instance).exists()


def test_every_live_status_can_fall_to_error_and_be_deleted_except_deleted():
    for status in Status:
        allowed = ALLOWED[status]
        if status == Status.DELETED:
            assert allowed == set()
            continue
        assert Status.DELETING in allowed or status == Status.DELETING
        assert Status.ERROR in allowed or status == Status.ERROR


def test_extra_fields_are_saved_with_the_status():
    instance = InstanceFactory(status=Status.DELETING, agent_token_hash="abc")

    transition(instance, Status.DELETED, agent_token_hash="")

    instance.refresh_from_db()
    assert instance.agent_token_hash == ""
    assert instance.deleted_at is not None


@pytest.mark.django_db(transaction=True)
def test_two_racing_moves_from_the_same_status_let_exactly_one_win():
    instance = InstanceFactory(status=Status.RUNNING)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def move(to_status):
        barrier.wait()
        try:
            transition(instance.pk, to_status)
            outcomes.append("moved")
        except InvalidTransition:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [
        threading.Thread(target=move, args=(Status.HIBERNATING,)),
        threading.Thread(target=move, args=(Status.FAILING_OVER,)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["moved", "refused"]
    assert InstanceEvent.objects.filter(instance=instance).count() == 1
