"""The credit ledger: append-only entries, balance = their sum, every write idempotent."""

from django.db import IntegrityError, transaction
from django.db.models import Sum

from accounts.models import Tenant
from billing.models import LedgerEntry


def balance_micros(tenant: Tenant | int) -> int:
    """The tenant's credit now: the sum of its ledger."""
    total = LedgerEntry.objects.for_tenant(tenant).aggregate(total=Sum("amount_micros"))["total"]
    return total or 0


def post(
    tenant: Tenant | int,
    kind: str,
    amount_micros: int,
    *,
    idempotency_key: str,
    reference: str = "",
    description: str = "",
    **payment,
) -> tuple[LedgerEntry, bool]:
    """Append an entry unless one with this key exists; returns (entry, created).

    Concurrent posts with one key are safe: the unique constraint decides and the loser gets the
    winner's entry. Entries of different keys never block each other (a debit is an insert, not
    an update of a balance row), so concurrent debits always sum exactly.
    """
    tenant_id = tenant if isinstance(tenant, int) else tenant.pk
    try:
        with transaction.atomic():
            entry = LedgerEntry.objects.create(
                tenant_id=tenant_id,
                kind=kind,
                amount_micros=amount_micros,
                idempotency_key=idempotency_key,
                reference=reference[:200],
                description=description[:300],
                **payment,
            )
        return entry, True
    except IntegrityError:
        existing = LedgerEntry.objects.filter(idempotency_key=idempotency_key).first()
        if existing is None:
            raise
        return existing, False
