"""One trial per person, by card as well as by e-mail.

When a tenant that had a trial pays by card, the card's Stripe fingerprint is recorded for it.
If the card is already recorded for another trial tenant, this tenant's trial is the same
person's second one: what is left of its trial credit lapses at once (a `trial_expiry` entry,
idempotent per tenant) and its owners are told. What it paid for stays. The first tenant to pay
with a card keeps its trial.
"""

from django.db import IntegrityError, transaction

from accounts.mail import mail_owners
from billing import trial
from billing.models import CardTrialClaim, TrialClaim
from billing.money import usd_text
from billing.stripe_api import call_stripe


def check_card(tenant_id: int, fingerprint: str) -> int:
    """Record a trial tenant's card; returns the trial credit revoked (0 when none)."""
    if not fingerprint or not TrialClaim.objects.filter(tenant_id=tenant_id).exists():
        return 0
    try:
        with transaction.atomic():
            CardTrialClaim.objects.create(fingerprint=fingerprint, tenant_id=tenant_id)
        return 0
    except IntegrityError:
        pass
    if CardTrialClaim.objects.filter(fingerprint=fingerprint, tenant_id=tenant_id).exists():
        return 0
    revoked = trial.revoke_trial(
        tenant_id, reason="trial revoked: this card already had a trial in another organisation"
    )
    if revoked:
        transaction.on_commit(
            lambda: mail_owners(
                tenant_id,
                "Dumont Cloud: trial credit removed",
                "The card you paid with was already used for a free trial in another "
                f"organisation. One trial per person: the ${usd_text(revoked)} left of this "
                "organisation's trial credit was removed. What you paid for is unchanged.",
            )
        )
    return revoked


def card_fingerprint(payment_method: dict | str | None) -> str:
    """`card.fingerprint` of an expanded PaymentMethod ('' for other methods or ids)."""
    if not isinstance(payment_method, dict):
        return ""
    return (payment_method.get("card") or {}).get("fingerprint") or ""


def check_card_of_payment_intent(tenant_id: int, payment_intent_id: str) -> int:
    """check_card with the card that paid this PaymentIntent."""
    intent = call_stripe(
        "read the payment",
        lambda client: client.v1.payment_intents.retrieve(
            payment_intent_id, params={"expand": ["payment_method"]}
        ),
    ).to_dict()
    return check_card(tenant_id, card_fingerprint(intent.get("payment_method")))
