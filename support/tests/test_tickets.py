"""Opening a ticket sets its first-answer due time by plan; staff answer from the admin."""

import asyncio
from datetime import UTC, datetime

import pytest
import time_machine
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core import mail
from django.urls import reverse

from accounts.models import AuditLog
from billing.models import Subscription
from dumont.live import tenant_group
from support import services
from support.models import Ticket

pytestmark = pytest.mark.django_db

# Friday 27 November 2026, 17:00 in São Paulo (UTC-3): one business hour left that day.
FRIDAY_5_PM_BRT = datetime(2026, 11, 27, 20, 0, tzinfo=UTC)
TUESDAY_10_AM_BRT = datetime(2026, 11, 24, 13, 0, tzinfo=UTC)
SATURDAY_3_AM_BRT = datetime(2026, 11, 28, 6, 0, tzinfo=UTC)


def _open(account, **fields) -> Ticket:
    body = {"subject": "GPU lost", "body": "My instance vanished.", **fields}
    response = account.client.post("/api/support/tickets", body, format="json")
    assert response.status_code == 201, response.content
    return Ticket.objects.get(pk=response.json()["id"])


def _change_page(ticket: Ticket) -> str:
    return reverse("admin:support_ticket_change", args=[ticket.pk])


def _answer(staff, ticket: Ticket, text: str):
    """Submit the ticket's admin page with an answer (and the read-only conversation inline)."""
    message_ids = list(ticket.messages.values_list("pk", flat=True))
    form = {
        "priority": ticket.priority,
        "staff_answer": text,
        "messages-TOTAL_FORMS": len(message_ids),
        "messages-INITIAL_FORMS": len(message_ids),
        "messages-MIN_NUM_FORMS": 0,
        "messages-MAX_NUM_FORMS": 1000,
    }
    for index, pk in enumerate(message_ids):
        form[f"messages-{index}-id"] = pk
        form[f"messages-{index}-ticket"] = ticket.pk
    return staff.post(_change_page(ticket), form)


@time_machine.travel(FRIDAY_5_PM_BRT, tick=False)
def test_a_pro_ticket_opened_friday_evening_is_due_monday_in_business_hours(owner):
    ticket = _open(owner)  # the trial is Pro: 4 business hours

    # One hour on Friday (17-18h), three on Monday from 9h: Monday 12:00 BRT.
    assert ticket.first_response_due_at == datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
    assert ticket.status == Ticket.Status.OPEN
    assert ticket.messages.get().body == "My instance vanished."


@time_machine.travel(TUESDAY_10_AM_BRT, tick=False)
def test_a_starter_ticket_is_due_within_24_business_hours(owner, on_plan):
    on_plan(owner.tenant, "starter")

    ticket = _open(owner)

    # 8 hours on Tuesday, 9 on Wednesday, 7 on Thursday: Thursday 16:00 BRT.
    assert ticket.first_response_due_at == datetime(2026, 11, 26, 19, 0, tzinfo=UTC)


@time_machine.travel(SATURDAY_3_AM_BRT, tick=False)
def test_an_enterprise_ticket_is_due_within_an_hour_round_the_clock(owner, on_plan):
    on_plan(owner.tenant, "enterprise")

    ticket = _open(owner)

    assert ticket.first_response_due_at == datetime(2026, 11, 28, 7, 0, tzinfo=UTC)


def test_without_a_plan_a_ticket_is_answered_on_a_best_effort_basis(owner):
    Subscription.objects.filter(tenant=owner.tenant).update(status=Subscription.Status.EXPIRED)

    ticket = _open(owner)

    assert ticket.first_response_due_at is None
    assert not ticket.is_overdue


def test_a_staff_answer_in_the_admin_marks_the_ticket_answered_and_mails_the_customer(
    owner, staff, browser, django_capture_on_commit_callbacks
):
    ticket = _open(owner, subject="Cannot SSH")
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(tenant_group(owner.tenant.pk), channel)

    with django_capture_on_commit_callbacks(execute=True):
        response = _answer(staff, ticket, "Your instance's IP changed; use the DNS name.")

    assert response.status_code == 302
    ticket.refresh_from_db()
    assert ticket.status == Ticket.Status.ANSWERED
    assert ticket.first_responded_at is not None
    answer = ticket.messages.get(is_staff=True)
    assert answer.author_email == "help@dumont.cloud"
    (sent,) = mail.outbox
    assert sent.to == [owner.user.email]
    assert "Cannot SSH" in sent.subject
    assert "use the DNS name" in sent.body
    assert f"/support/{ticket.pk}/" in sent.body
    audit = AuditLog.objects.get(action=AuditLog.Action.TICKET_ANSWERED)
    assert (audit.tenant, audit.actor_email) == (owner.tenant, "help@dumont.cloud")
    event = async_to_sync(asyncio.wait_for)(layer.receive(channel), 5)
    assert event["event"] == services.TICKET_ANSWERED
    assert event["data"]["id"] == ticket.pk
    assert event["data"]["status"] == "answered"
    page = browser.get(f"/support/{ticket.pk}/").content.decode()
    assert "use the DNS name" in page
    assert "Dumont support" in page


def test_the_first_response_time_is_kept_when_staff_answer_again(owner, staff):
    ticket = _open(owner)
    _answer(staff, ticket, "First.")
    first = Ticket.objects.get(pk=ticket.pk).first_responded_at

    _answer(staff, ticket, "Second.")

    assert Ticket.objects.get(pk=ticket.pk).first_responded_at == first
    assert ticket.messages.filter(is_staff=True).count() == 2


def test_a_closed_ticket_cannot_be_answered_in_the_admin(owner, staff):
    ticket = _open(owner)
    owner.client.post(f"/api/support/tickets/{ticket.pk}/close")

    response = _answer(staff, ticket, "Too late.")

    assert response.status_code == 200  # the form again, with its error
    assert "This ticket is closed" in response.content.decode()
    assert not ticket.messages.filter(is_staff=True).exists()
    assert not mail.outbox


def test_a_customer_reply_puts_an_answered_ticket_back_in_the_queue(owner, staff):
    ticket = _open(owner)
    _answer(staff, ticket, "Try again?")

    response = owner.client.post(
        f"/api/support/tickets/{ticket.pk}/messages", {"body": "Still broken."}, format="json"
    )

    assert response.status_code == 201
    assert Ticket.objects.get(pk=ticket.pk).status == Ticket.Status.OPEN


@time_machine.travel(FRIDAY_5_PM_BRT)
def test_the_admin_overdue_filter_lists_only_open_tickets_past_their_due_time(
    owner, staff, on_plan
):
    on_plan(owner.tenant, "enterprise")  # due within the hour
    late = _open(owner, subject="late-ticket")
    answered = _open(owner, subject="answered-ticket")
    _answer(staff, answered, "Done.")
    with time_machine.travel(datetime(2026, 11, 27, 21, 0, tzinfo=UTC)):
        _open(owner, subject="recent-ticket")

    with time_machine.travel(datetime(2026, 11, 27, 21, 45, tzinfo=UTC)):
        page = staff.get(reverse("admin:support_ticket_changelist"), {"overdue": "yes"})

    assert page.status_code == 200
    assert [ticket.pk for ticket in page.context["cl"].result_list] == [late.pk]


def test_the_ticket_admin_page_shows_the_conversation_and_an_answer_field(owner, staff):
    ticket = _open(owner, subject="Quota question")

    page = staff.get(_change_page(ticket)).content.decode()

    assert "My instance vanished." in page
    assert 'name="staff_answer"' in page
    assert staff.get(reverse("admin:support_ticket_add")).status_code == 403


def test_staff_close_tickets_from_the_admin_list(owner, staff):
    first, second = _open(owner), _open(owner)

    response = staff.post(
        reverse("admin:support_ticket_changelist"),
        {"action": "close_tickets", "_selected_action": [first.pk, second.pk]},
    )

    assert response.status_code == 302
    assert set(Ticket.objects.values_list("status", flat=True)) == {Ticket.Status.CLOSED}
    assert all(ticket.closed_at for ticket in Ticket.objects.all())
