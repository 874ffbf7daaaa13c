"""Every change to a ticket goes through these functions: one transaction each, events after commit.

Customers (any member of the tenant) open tickets, reply and close them; support staff answer
from the Django admin through `staff_reply`, which is audited, e-mails the customer and pushes
`support.ticket_answered` to the tenant's websockets.
"""

from functools import partial

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.context import TenantContext
from accounts.mail import mail_owners, mail_people
from accounts.models import AuditLog, User
from accounts.services import record_audit
from billing.entitlements import entitlements_of
from dumont.live import push_after_commit
from support.exceptions import TicketClosed
from support.hours import first_response_due
from support.models import Ticket, TicketMessage

TICKET_ANSWERED = "support.ticket_answered"
TICKET_UPDATED = "support.ticket_updated"


def ticket_payload(ticket: Ticket) -> dict:
    """What live events say about a ticket (no message bodies)."""
    return {
        "id": ticket.pk,
        "subject": ticket.subject,
        "status": ticket.status,
        "updated_at": ticket.updated_at.isoformat() if ticket.updated_at else None,
    }


def _locked(ticket: Ticket) -> Ticket:
    return Ticket.objects.select_for_update().get(pk=ticket.pk)


def _add_message(ticket: Ticket, author: User | None, body: str, *, is_staff: bool):
    return TicketMessage.objects.create(
        tenant_id=ticket.tenant_id,
        ticket=ticket,
        author=author,
        author_email=author.email if author else "",
        body=body,
        is_staff=is_staff,
    )


@transaction.atomic
def open_ticket(
    context: TenantContext,
    *,
    subject: str,
    body: str,
    priority: str = Ticket.Priority.NORMAL,
) -> Ticket:
    """Open a ticket with its first message; its first answer is due per the tenant's plan."""
    now = timezone.now()
    ticket = Ticket.objects.create(
        tenant=context.tenant,
        opened_by=context.user,
        subject=subject,
        priority=priority,
        created_at=now,
        first_response_due_at=first_response_due(now, entitlements_of(context.tenant)),
    )
    _add_message(ticket, context.user, body, is_staff=False)
    push_after_commit(ticket.tenant_id, TICKET_UPDATED, ticket_payload(ticket))
    return ticket


@transaction.atomic
def reply(context: TenantContext, ticket: Ticket, body: str) -> TicketMessage:
    """The customer's reply; an answered ticket waits for support again."""
    ticket = _locked(ticket)
    if ticket.is_closed:
        raise TicketClosed()
    message = _add_message(ticket, context.user, body, is_staff=False)
    ticket.status = Ticket.Status.OPEN
    ticket.save(update_fields=["status", "updated_at"])
    push_after_commit(ticket.tenant_id, TICKET_UPDATED, ticket_payload(ticket))
    return message


def _mail_customer(ticket: Ticket, body: str) -> None:
    subject = _("[Dumont support] Re: %(subject)s") % {"subject": ticket.subject}
    link = f"{settings.DUMONT_PUBLIC_URL.rstrip('/')}/support/{ticket.pk}/"
    text = _("Support answered your ticket #%(id)s:\n\n%(body)s\n\nReply at %(link)s") % {
        "id": ticket.pk,
        "body": body,
        "link": link,
    }
    opener = ticket.opened_by
    if opener is not None and opener.is_active:
        mail_people([opener.email], subject, text)
    else:  # the person left: tell whoever runs the organisation
        mail_owners(ticket.tenant_id, subject, text)


@transaction.atomic
def staff_reply(ticket: Ticket, *, staff: User, body: str, ip: str | None) -> TicketMessage:
    """Support staff's answer: marks the ticket answered, records the first response time,
    audits, e-mails the customer and pushes a live event (both after commit)."""
    ticket = _locked(ticket)
    if ticket.is_closed:
        raise TicketClosed()
    message = _add_message(ticket, staff, body, is_staff=True)
    ticket.status = Ticket.Status.ANSWERED
    if ticket.first_responded_at is None:
        ticket.first_responded_at = message.created_at
    ticket.save(update_fields=["status", "first_responded_at", "updated_at"])
    record_audit(
        AuditLog.Action.TICKET_ANSWERED,
        tenant=ticket.tenant,
        actor=staff,
        ip=ip,
        target=f"ticket {ticket.pk}",
        message_id=message.pk,
    )
    transaction.on_commit(partial(_mail_customer, ticket, body))
    push_after_commit(ticket.tenant_id, TICKET_ANSWERED, ticket_payload(ticket))
    return message


def close(context: TenantContext, ticket: Ticket) -> Ticket:
    """Close the ticket (closing a closed one changes nothing)."""
    return _close(ticket)


def close_as_staff(ticket: Ticket) -> Ticket:
    """Support staff close a resolved ticket (Django admin action)."""
    return _close(ticket)


@transaction.atomic
def _close(ticket: Ticket) -> Ticket:
    ticket = _locked(ticket)
    if ticket.is_closed:
        return ticket
    ticket.status = Ticket.Status.CLOSED
    ticket.closed_at = timezone.now()
    ticket.save(update_fields=["status", "closed_at", "updated_at"])
    push_after_commit(ticket.tenant_id, TICKET_UPDATED, ticket_payload(ticket))
    return ticket
