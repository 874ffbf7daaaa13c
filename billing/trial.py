"""The 7-day Pro trial: $79 of credit, no card, one per person."""

from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from accounts.models import Tenant, User, normalize_email
from billing import ledger
from billing.models import LedgerEntry, Subscription, TrialClaim
from billing.plans import trial_plan


def start_trial(tenant: Tenant, owner: User) -> bool:
    """Grant the trial if this person never had one; False when they already did."""
    email = normalize_email(owner.email)
    plan = trial_plan()
    try:
        with transaction.atomic():
            TrialClaim.objects.create(email=email, tenant=tenant)
    except IntegrityError:
        return False
    Subscription.objects.create(
        tenant=tenant,
        plan=plan,
        status=Subscription.Status.TRIALING,
        trial_ends_at=timezone.now() + timedelta(days=settings.TRIAL_DAYS),
    )
    ledger.post(
        tenant,
        LedgerEntry.Kind.TRIAL_GRANT,
        settings.TRIAL_CREDIT_MICROS,
        idempotency_key=f"trial:{email}",
        description=f"{settings.TRIAL_DAYS}-day {plan.name} trial",
    )
    return True


def expire_trial(subscription: Subscription) -> int:
    """End a finished trial: unspent trial credit lapses (purchased credit stays)."""
    with transaction.atomic():
        subscription = Subscription.objects.select_for_update().get(pk=subscription.pk)
        if subscription.status != Subscription.Status.TRIALING:
            return 0
        subscription.status = Subscription.Status.EXPIRED
        subscription.save(update_fields=["status", "updated_at"])
        return lapse_unspent_trial_credit(
            subscription.tenant_id,
            idempotency_key=f"trial-expiry:{subscription.tenant_id}",
            description="unspent trial credit lapsed at the end of the trial",
        )


def revoke_trial(tenant_id: int, *, reason: str) -> int:
    """End a trial early (a second trial of one person): what is left of its credit lapses."""
    with transaction.atomic():
        subscription = Subscription.objects.select_for_update().filter(tenant_id=tenant_id).first()
        if subscription is not None and subscription.status == Subscription.Status.TRIALING:
            subscription.status = Subscription.Status.EXPIRED
            subscription.save(update_fields=["status", "updated_at"])
        return lapse_unspent_trial_credit(
            tenant_id, idempotency_key=f"trial-revoked:{tenant_id}", description=reason
        )


def lapse_unspent_trial_credit(tenant_id: int, *, idempotency_key: str, description: str) -> int:
    """Post a `trial_expiry` entry for the trial credit not spent yet; returns its size.

    Trial credit is spent first, so what is left of it is the grant minus every debit so far
    (an earlier lapse included, so a second call finds nothing), never more than the balance.
    """
    entries = LedgerEntry.objects.for_tenant(tenant_id)
    granted = entries.filter(kind=LedgerEntry.Kind.TRIAL_GRANT).aggregate(s=Sum("amount_micros"))
    used = entries.filter(amount_micros__lt=0).aggregate(s=Sum("amount_micros"))
    unspent = (granted["s"] or 0) + (used["s"] or 0)
    lapsing = max(0, min(unspent, ledger.balance_micros(tenant_id)))
    if lapsing:
        ledger.post(
            tenant_id,
            LedgerEntry.Kind.TRIAL_EXPIRY,
            -lapsing,
            idempotency_key=idempotency_key,
            description=description,
        )
    return lapsing
