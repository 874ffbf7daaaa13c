"""Budget thresholds and low balance: e-mail to the owners and webhooks, once per crossing."""

from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from accounts.mail import mail_owners
from billing import ledger
from billing.models import Budget, BudgetAlert, LedgerEntry
from billing.money import usd_text
from webhooks.services import emit

USAGE_KINDS = [
    LedgerEntry.Kind.USAGE_GPU,
    LedgerEntry.Kind.USAGE_STANDBY,
    LedgerEntry.Kind.USAGE_STORAGE,
]


def month_spend_micros(tenant_id: int, now: datetime) -> int:
    """Usage charged since the first of this month (UTC), as a positive amount."""
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    total = (
        LedgerEntry.objects.for_tenant(tenant_id)
        .filter(kind__in=USAGE_KINDS, created_at__gte=start)
        .aggregate(total=Sum("amount_micros"))["total"]
    )
    return -(total or 0)


def check_tenant(tenant_id: int, now: datetime | None = None) -> list[str]:
    """Fire the alerts this tenant has newly crossed; returns their names."""
    now = now or timezone.now()
    budget, _ = Budget.objects.get_or_create(tenant_id=tenant_id)
    fired = []
    balance = ledger.balance_micros(tenant_id)
    with transaction.atomic():
        locked = Budget.objects.select_for_update().get(pk=budget.pk)
        is_low = balance < locked.low_balance_micros
        if is_low and not locked.is_low_balance_alerted:
            emit(
                tenant_id,
                "balance.low",
                {
                    "balance_micros": balance,
                    "balance_usd": usd_text(balance),
                    "low_balance_micros": locked.low_balance_micros,
                },
            )
            transaction.on_commit(
                lambda: mail_owners(
                    tenant_id,
                    "Dumont Cloud: your balance is low",
                    f"Your balance is ${usd_text(balance)}. Add credits to keep instances running.",
                )
            )
            fired.append("balance.low")
        if is_low != locked.is_low_balance_alerted:
            locked.is_low_balance_alerted = is_low
            locked.save(update_fields=["is_low_balance_alerted", "updated_at"])
    if budget.monthly_limit_micros:
        fired += _budget_thresholds(budget, now)
    return fired


def _budget_thresholds(budget: Budget, now: datetime) -> list[str]:
    spent = month_spend_micros(budget.tenant_id, now)
    percent_spent = spent * 100 // budget.monthly_limit_micros
    fired = []
    for threshold in sorted(budget.thresholds_percent):
        if percent_spent < threshold:
            break
        try:
            with transaction.atomic():
                BudgetAlert.objects.create(
                    tenant_id=budget.tenant_id,
                    month=f"{now:%Y-%m}",
                    threshold_percent=threshold,
                    spent_micros=spent,
                )
                data = {
                    "month": f"{now:%Y-%m}",
                    "threshold_percent": threshold,
                    "spent_micros": spent,
                    "spent_usd": usd_text(spent),
                    "monthly_limit_usd": usd_text(budget.monthly_limit_micros),
                }
                emit(budget.tenant_id, "budget.threshold", data)
        except IntegrityError:
            continue  # this month's alert for this threshold already fired
        mail_owners(
            budget.tenant_id,
            f"Dumont Cloud: {threshold}% of your monthly budget used",
            f"You have used ${usd_text(spent)} of your ${usd_text(budget.monthly_limit_micros)} "
            f"budget for {now:%B %Y}.",
        )
        fired.append(f"budget.{threshold}")
    return fired
