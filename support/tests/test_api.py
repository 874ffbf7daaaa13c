"""/api/support/tickets: open, list, read with the conversation, reply, close; scoped per tenant."""

import pytest

from support.models import Ticket

pytestmark = pytest.mark.django_db

TICKETS = "/api/support/tickets"


def _create(account, **fields):
    body = {"subject": "Billing question", "body": "Why two charges?", **fields}
    return account.client.post(TICKETS, body, format="json")


def test_opening_a_ticket_returns_it_with_its_first_message_and_due_time(owner):
    response = _create(owner, priority="urgent")

    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "open"
    assert body["priority"] == "urgent"
    assert body["first_response_due_at"] is not None
    assert [message["body"] for message in body["messages"]] == ["Why two charges?"]
    assert body["messages"][0]["author_email"] == owner.user.email
    assert body["messages"][0]["is_staff"] is False


def test_the_list_has_the_tenants_tickets_and_filters_by_status(owner):
    first = _create(owner).json()["id"]
    second = _create(owner, subject="Second").json()["id"]
    owner.client.post(f"{TICKETS}/{first}/close")

    everything = owner.client.get(TICKETS).json()
    open_only = owner.client.get(TICKETS, {"status": "open"}).json()

    assert [row["id"] for row in everything["results"]] == [second, first]
    assert [row["id"] for row in open_only["results"]] == [second]
    assert "messages" not in everything["results"][0]


def test_a_reply_joins_the_conversation(owner):
    ticket = _create(owner).json()["id"]

    response = owner.client.post(f"{TICKETS}/{ticket}/messages", {"body": "More."}, format="json")

    assert response.status_code == 201
    detail = owner.client.get(f"{TICKETS}/{ticket}").json()
    assert [message["body"] for message in detail["messages"]] == ["Why two charges?", "More."]


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"body": "x"}, "subject", "required"),
        ({"subject": "x", "body": ""}, "body", "blank"),
        ({"subject": "x" * 201, "body": "x"}, "subject", "max_length"),
        ({"subject": "x", "body": "x", "priority": "whenever"}, "priority", "invalid_choice"),
    ],
)
def test_bad_input_is_a_400_with_a_code(owner, body, field, code):
    response = owner.client.post(TICKETS, body, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == code
    assert field in response.json()["errors"]
    assert not Ticket.objects.exists()


def test_an_empty_reply_is_a_400(owner):
    ticket = _create(owner).json()["id"]

    response = owner.client.post(f"{TICKETS}/{ticket}/messages", {"body": " "}, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "blank"


def test_a_closed_ticket_takes_no_reply(owner):
    ticket = _create(owner).json()["id"]
    owner.client.post(f"{TICKETS}/{ticket}/close")

    response = owner.client.post(f"{TICKETS}/{ticket}/messages", {"body": "Hi"}, format="json")

    assert response.status_code == 409
    assert response.json()["code"] == "ticket_closed"


def test_another_tenant_gets_404_on_a_ticket(two_tenants):
    a, b = two_tenants
    ticket = _create(a, subject="alpha-subject").json()["id"]

    detail = b.client.get(f"{TICKETS}/{ticket}")
    reply = b.client.post(f"{TICKETS}/{ticket}/messages", {"body": "beta"}, format="json")
    close = b.client.post(f"{TICKETS}/{ticket}/close")
    listing = b.client.get(TICKETS)

    assert [detail.status_code, reply.status_code, close.status_code] == [404, 404, 404]
    assert detail.json()["code"] == "not_found"
    assert listing.json()["count"] == 0
    assert Ticket.objects.get().messages.count() == 1


def test_the_schema_documents_the_support_routes(owner):
    schema = owner.client.get("/api/schema/", HTTP_ACCEPT="application/json").json()

    assert "/api/support/tickets" in schema["paths"]
    assert "post" in schema["paths"]["/api/support/tickets/{id}/messages"]
