"""E-mail to the people who run an organisation (alerts, billing notices)."""

from django.core.mail import send_mail

from accounts.models import Membership


def owner_emails(tenant_id: int) -> list[str]:
    return list(
        Membership.objects.filter(tenant_id=tenant_id, role=Membership.Role.OWNER).values_list(
            "user__email", flat=True
        )
    )


def mail_owners(tenant_id: int, subject: str, body: str) -> None:
    """Send one message to the tenant's owners; a mail server outage never fails the caller."""
    mail_people(owner_emails(tenant_id), subject, body)


def mail_people(emails: list[str], subject: str, body: str) -> None:
    """Send one message to these addresses; a mail server outage never fails the caller."""
    send_mail(subject, body, None, emails, fail_silently=True)
