"""Domain errors of support; dumont.errors turns them into JSON with their `code`."""

from dumont.exceptions import DumontError


class TicketClosed(DumontError):
    code = "ticket_closed"
    status_code = 409
    default_detail = "This ticket is closed; open a new one."
