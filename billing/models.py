"""Plans, subscriptions, the append-only credit ledger, trials and usage intervals.

Money is integer micro-USD (`_micros`) everywhere; see billing/money.py for the edges.
"""

from django.db import models
from django.utils.translation import gettext_lazy as _

from accounts.models import Tenant, TenantOwnedQuerySet


class Plan(models.Model):
    """What a tenant subscribes to (the seeds: Starter, Pro, Enterprise). Editable in the admin."""

    code = models.SlugField(max_length=30, unique=True)
    name = models.CharField(max_length=60)
    # The list price in the plan's currency, in minor units (cents / centavos).
    price_minor = models.PositiveIntegerField(default=0)
    currency = models.CharField(max_length=3, default="USD")
    included_gpu_hours = models.PositiveIntegerField(default=0)
    # Credit added to the ledger for every paid invoice of this plan (Starter: its 100 GPU-hours
    # at INCLUDED_GPU_HOUR rate, see the 0006 migration); 0 for plans that include no usage.
    included_credit_micros = models.BigIntegerField(default=0)
    has_standby = models.BooleanField(default=False)
    has_auto_hibernate = models.BooleanField(default=False)
    max_instances = models.PositiveIntegerField(null=True, blank=True)  # None: no limit
    regions = models.JSONField(default=list, blank=True)  # empty: every region
    support_response_hours = models.PositiveIntegerField(null=True, blank=True)
    # Support's hours count round the clock (Enterprise, 24/7), not only business hours.
    has_round_the_clock_support = models.BooleanField(default=False)
    is_public = models.BooleanField(default=True)
    stripe_price_id = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["price_minor", "code"]

    def __str__(self) -> str:
        return self.name


class Subscription(models.Model):
    class Status(models.TextChoices):
        TRIALING = "trialing", _("Trial")
        ACTIVE = "active", _("Active")
        PAST_DUE = "past_due", _("Past due")
        CANCELED = "canceled", _("Canceled")
        EXPIRED = "expired", _("Expired")  # a trial that ended without a paid plan
        INCOMPLETE = "incomplete", _("Incomplete")  # a checkout opened, not paid yet

    # The statuses in which the plan's entitlements apply.
    ENTITLED = (Status.TRIALING, Status.ACTIVE, Status.PAST_DUE)

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="subscription")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=12, choices=Status.choices)
    trial_ends_at = models.DateTimeField(null=True, blank=True)
    current_period_start = models.DateTimeField(null=True, blank=True)
    current_period_end = models.DateTimeField(null=True, blank=True)
    cancel_at_period_end = models.BooleanField(default=False)
    stripe_customer_id = models.CharField(max_length=100, blank=True, db_index=True)
    stripe_subscription_id = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantOwnedQuerySet.as_manager()

    def __str__(self) -> str:
        return f"{self.tenant} on {self.plan} ({self.status})"

    @property
    def is_paid(self) -> bool:
        """A Stripe subscription in good standing (or being retried) backs this plan."""
        return bool(self.stripe_subscription_id) and self.status in (
            self.Status.ACTIVE,
            self.Status.PAST_DUE,
        )


class LedgerEntry(models.Model):
    """One movement of credit. Append-only: a correction is a new entry, never an edit."""

    class Kind(models.TextChoices):
        TRIAL_GRANT = "trial_grant"
        TRIAL_EXPIRY = "trial_expiry"
        PURCHASE = "purchase"
        SUBSCRIPTION_CREDIT = "subscription_credit"
        USAGE_GPU = "usage_gpu"
        USAGE_STANDBY = "usage_standby"
        USAGE_STORAGE = "usage_storage"
        REFUND = "refund"
        ADMIN_GRANT = "admin_grant"
        ADJUSTMENT = "adjustment"

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="ledger_entries")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    amount_micros = models.BigIntegerField()  # credit > 0, debit < 0
    # What it is idempotent on: a Stripe event id, a usage interval and its end, "trial:<email>".
    idempotency_key = models.CharField(max_length=200)
    # The payment as made, for purchases in another currency (PIX and boleto pay in BRL).
    currency = models.CharField(max_length=3, default="USD")
    amount_minor = models.BigIntegerField(null=True, blank=True)
    fx_rate = models.DecimalField(max_digits=18, decimal_places=8, null=True, blank=True)
    reference = models.CharField(max_length=200, blank=True)  # instance id, Stripe object id...
    description = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = TenantOwnedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["idempotency_key"], name="ledger_idempotency_key"),
            models.CheckConstraint(condition=~models.Q(amount_micros=0), name="ledger_not_zero"),
        ]
        indexes = [models.Index(fields=["tenant", "-created_at"], name="ledger_tenant_time")]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount_micros:+d} µUSD for {self.tenant_id}"


class TrialClaim(models.Model):
    """One trial per person: the normalised e-mail of whoever started one."""

    email = models.CharField(max_length=254, unique=True)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.email


class UsageInterval(models.Model):
    """A stretch of billable time: a GPU while its instance runs, a standby while it serves.

    Opened and closed by instance transitions (instances registers the hook). The metering task
    posts `price x elapsed` into the ledger; `posted_micros` is what is already posted, so the
    next post is the exact difference, however often or late the task runs.
    """

    class Kind(models.TextChoices):
        GPU = "gpu"
        STANDBY = "standby"

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="usage_intervals")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    # Billing never imports instances: the instance is named by id, not a foreign key.
    subject_id = models.CharField(max_length=40)
    description = models.CharField(max_length=200, blank=True)
    price_micros_per_hour = models.BigIntegerField()
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    posted_until = models.DateTimeField()
    posted_micros = models.BigIntegerField(default=0)

    objects = TenantOwnedQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            # One open interval per subject and kind: a repeated "open" is a no-op.
            models.UniqueConstraint(
                fields=["subject_id", "kind"],
                condition=models.Q(ended_at__isnull=True),
                name="usage_one_open_interval",
            ),
        ]
        indexes = [
            models.Index(
                fields=["posted_until"],
                name="usage_open_to_post",
                condition=models.Q(ended_at__isnull=True),
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.subject_id} from {self.started_at:%Y-%m-%d %H:%M:%S}"


def default_thresholds() -> list[int]:
    return [50, 80, 100]


class Budget(models.Model):
    """A tenant's monthly budget and low-balance alert (e-mail to owners + webhooks)."""

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="budget")
    monthly_limit_micros = models.BigIntegerField(null=True, blank=True)  # None: no budget
    thresholds_percent = models.JSONField(default=default_thresholds)
    low_balance_micros = models.BigIntegerField(default=5_000_000)
    # Set when the low-balance alert fired; cleared when the balance is back above the line, so
    # the alert fires once per crossing.
    is_low_balance_alerted = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantOwnedQuerySet.as_manager()

    def __str__(self) -> str:
        return f"budget of {self.tenant}"


class BudgetAlert(models.Model):
    """A threshold alert that fired: at most one per tenant, month and threshold."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    month = models.CharField(max_length=7)  # "2026-11"
    threshold_percent = models.PositiveSmallIntegerField()
    spent_micros = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantOwnedQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "month", "threshold_percent"], name="budget_alert_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.tenant_id} {self.month} {self.threshold_percent}%"


class CheckoutSession(models.Model):
    """A Stripe Checkout Session: a credit top-up (card in USD; PIX and boleto in BRL) or the
    first payment of a plan's subscription (mode `subscription`, card)."""

    class Mode(models.TextChoices):
        PAYMENT = "payment"
        SUBSCRIPTION = "subscription"

    class Method(models.TextChoices):
        CARD = "card"
        PIX = "pix"
        BOLETO = "boleto"

    class Status(models.TextChoices):
        OPEN = "open"
        AWAITING_PAYMENT = "awaiting_payment"  # a boleto issued, not paid yet
        PAID = "paid"
        FAILED = "failed"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    stripe_session_id = models.CharField(max_length=200, unique=True)
    mode = models.CharField(max_length=12, choices=Mode.choices, default=Mode.PAYMENT)
    plan = models.ForeignKey(
        Plan, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    method = models.CharField(max_length=10, choices=Method.choices)
    credit_micros = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    amount_minor = models.BigIntegerField()
    fx_rate = models.DecimalField(max_digits=18, decimal_places=8, null=True, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.OPEN)
    url = models.URLField(max_length=1000)
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    objects = TenantOwnedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.method} top-up {self.stripe_session_id} ({self.status})"


class StripeEvent(models.Model):
    """Every Stripe event handled, by id: a replayed event is recognised and ignored."""

    event_id = models.CharField(max_length=200, unique=True)
    type = models.CharField(max_length=100)
    received_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.event_id} {self.type}"


class StorageMeter(models.Model):
    """A tenant's stored bytes (after dedup) and their integral over time, for storage billing.

    `byte_microseconds` is the integral of stored bytes up to `changed_at`; from then on the
    tenant stores `stored_bytes`. The amount due at T is the whole integral to T x price, floored
    once, so posting is exact and idempotent the way usage intervals are (billing/storage.py).
    The integral outgrows a bigint (1 TB for a year is ~3e25 byte-µs), hence a wide decimal.
    """

    tenant = models.OneToOneField(Tenant, on_delete=models.PROTECT, related_name="storage_meter")
    stored_bytes = models.BigIntegerField(default=0)
    changed_at = models.DateTimeField()
    byte_microseconds = models.DecimalField(max_digits=50, decimal_places=0, default=0)
    price_micros_per_gb_month = models.BigIntegerField()
    posted_until = models.DateTimeField()
    posted_micros = models.BigIntegerField(default=0)

    objects = TenantOwnedQuerySet.as_manager()

    def __str__(self) -> str:
        return f"{self.stored_bytes} bytes stored by {self.tenant_id}"


class Invoice(models.Model):
    """A Stripe invoice of a tenant's subscription, as the webhook last saw it."""

    class Status(models.TextChoices):
        DRAFT = "draft"
        OPEN = "open"
        PAID = "paid"
        UNCOLLECTIBLE = "uncollectible"
        VOID = "void"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    stripe_invoice_id = models.CharField(max_length=200, unique=True)
    stripe_subscription_id = models.CharField(max_length=200, blank=True)
    number = models.CharField(max_length=100, blank=True)
    status = models.CharField(max_length=15, choices=Status.choices)
    currency = models.CharField(max_length=3)
    amount_due_minor = models.BigIntegerField(default=0)
    amount_paid_minor = models.BigIntegerField(default=0)
    period_start = models.DateTimeField(null=True, blank=True)
    period_end = models.DateTimeField(null=True, blank=True)
    hosted_invoice_url = models.URLField(max_length=1000, blank=True)
    invoice_pdf_url = models.URLField(max_length=1000, blank=True)
    issued_at = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantOwnedQuerySet.as_manager()

    class Meta:
        ordering = ["-issued_at", "-id"]
        indexes = [models.Index(fields=["tenant", "-issued_at"], name="invoice_tenant_time")]

    def __str__(self) -> str:
        return f"invoice {self.number or self.stripe_invoice_id} ({self.status})"


class CardTrialClaim(models.Model):
    """One trial per person, by card too: the first trial tenant that paid with this card.

    `fingerprint` is Stripe's `card.fingerprint`: the same card number gives the same value in
    one Stripe account, whatever the customer.
    """

    fingerprint = models.CharField(max_length=100, unique=True)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"card {self.fingerprint} for {self.tenant_id}"
