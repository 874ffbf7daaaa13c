"""The customer's support pages: list, open a ticket, conversation, reply, close."""

import pytest
from django.test import Client

from accounts.context import TenantContext
from support import services
from support.models import Ticket

pytestmark = pytest.mark.django_db


def _context(account) -> TenantContext:
    return TenantContext(membership=account.membership)


def _open(client, **fields):
    form = {"subject": "Slow disk", "priority": "high", "body": "Reads crawl.", **fields}
    return client.post("/support/new/", form)


def test_opening_a_ticket_leads_to_its_conversation_and_lists_it_with_its_due_time(browser):
    response = _open(browser)

    ticket = Ticket.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/support/{ticket.pk}/"
    page = browser.get(response["Location"]).content.decode()
    assert "Slow disk" in page and "Reads crawl." in page
    assert 'aria-current="page">Support' in page
    listing = browser.get("/support/").content.decode()
    assert "Slow disk" in listing
    assert f'datetime="{ticket.first_response_due_at.isoformat()}"' in listing


def test_a_ticket_without_subject_or_body_shows_field_errors(browser):
    response = _open(browser, subject="", body="  ", priority="whenever")

    page = response.content.decode()
    assert response.status_code == 400
    assert page.count('aria-invalid="true"') == 3
    assert "This field is required." in page
    assert not Ticket.objects.exists()


def test_a_reply_adds_to_the_conversation_and_close_ends_it(browser):
    _open(browser)
    ticket = Ticket.objects.get()

    replied = browser.post(f"/support/{ticket.pk}/", {"body": "Any news?"})
    closed = browser.post(f"/support/{ticket.pk}/close/")

    assert replied.status_code == closed.status_code == 302
    page = browser.get(f"/support/{ticket.pk}/").content.decode()
    assert "Any news?" in page
    assert "This ticket is closed." in page
    assert 'name="body"' not in page
    assert Ticket.objects.get().status == Ticket.Status.CLOSED


def test_an_empty_reply_is_a_field_error(browser):
    _open(browser)
    ticket = Ticket.objects.get()

    response = browser.post(f"/support/{ticket.pk}/", {"body": ""})

    assert response.status_code == 400
    assert "This field is required." in response.content.decode()
    assert ticket.messages.count() == 1


def test_another_tenant_gets_404_on_a_ticket_and_cannot_reply_or_close_it(two_tenants):
    a, b = two_tenants
    ticket = services.open_ticket(
        _context(a), subject="alpha-secret-subject", body="alpha-secret-body"
    )
    intruder = Client()
    intruder.force_login(b.user)

    responses = [
        intruder.get(f"/support/{ticket.pk}/"),
        intruder.post(f"/support/{ticket.pk}/", {"body": "beta"}),
        intruder.post(f"/support/{ticket.pk}/close/"),
    ]

    assert [response.status_code for response in responses] == [404, 404, 404]
    assert "alpha-secret-subject" not in intruder.get("/support/").content.decode()
    ticket.refresh_from_db()
    assert ticket.status == Ticket.Status.OPEN
    assert ticket.messages.count() == 1


def test_the_ticket_list_query_count_does_not_grow_with_tickets(
    owner, browser, django_assert_max_num_queries
):
    for number in range(30):
        services.open_ticket(_context(owner), subject=f"ticket {number}", body="body")

    with django_assert_max_num_queries(12):
        response = browser.get("/support/")

    assert response.status_code == 200
    assert "ticket 29" in response.content.decode()
