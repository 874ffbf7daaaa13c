"""Billing: balance, usage per day, the ledger, credits through Stripe Checkout, the plan and
the monthly budget. Each action calls the billing service the API's view calls
(billing/api/views.py); Stripe is reached only through them."""

from datetime import timedelta
from decimal import Decimal

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Sum
from django.db.models.functions import TruncDate
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from billing import alerts, entitlements, ledger, payments, subscriptions
from billing.models import Budget, LedgerEntry, Plan, Subscription
from billing.money import micros_to_usd, usd_text, usd_to_micros
from dumont.exceptions import DumontError
from portal.billing.forms import BudgetForm, SubscribeForm, TopUpForm
from portal.views import PortalPage

LEDGER_PAGE_SIZE = 20
USAGE_DAYS = 30
USAGE_KINDS = alerts.USAGE_KINDS  # what /api/billing/usage and the budget count as usage
Kind = LedgerEntry.Kind
KIND_LABELS = {
    Kind.TRIAL_GRANT: gettext_lazy("Trial credit"),
    Kind.TRIAL_EXPIRY: gettext_lazy("Trial credit expired"),
    Kind.PURCHASE: gettext_lazy("Credit purchase"),
    Kind.SUBSCRIPTION_CREDIT: gettext_lazy("Plan credit"),
    Kind.USAGE_GPU: gettext_lazy("GPU usage"),
    Kind.USAGE_STANDBY: gettext_lazy("CPU standby usage"),
    Kind.USAGE_STORAGE: gettext_lazy("Snapshot storage"),
    Kind.REFUND: gettext_lazy("Refund"),
    Kind.ADMIN_GRANT: gettext_lazy("Credit from Dumont"),
    Kind.ADJUSTMENT: gettext_lazy("Adjustment"),
}


# The billing services' refusals, in the reader's language (their `code`, as the API's JSON has).
REFUSALS = {
    "invalid_amount": gettext_lazy("That amount cannot be paid online: check the limits shown."),
    "payment_provider_error": gettext_lazy(
        "The payment provider did not accept the request; try again in a moment."
    ),
    "unknown_plan": gettext_lazy("That plan cannot be bought online: choose Starter or Pro."),
    "already_subscribed": gettext_lazy(
        "This organisation already pays for a plan: change or cancel it in Stripe's portal."
    ),
    "no_paid_subscription": gettext_lazy("This organisation has no paid plan to cancel."),
    "no_stripe_customer": gettext_lazy(
        "No payment has been started yet, so there is no billing portal to open."
    ),
}


def kind_label(kind: str) -> str:
    return str(KIND_LABELS.get(kind, kind))


def usage_by_day(tenant, today, days: int = USAGE_DAYS) -> dict:
    """Usage charged per day (UTC) and kind over the last `days` days, for a stacked chart:
    the rows /api/billing/usage sums, grouped by day instead of by instance."""
    first = today - timedelta(days=days - 1)
    rows = (
        LedgerEntry.objects.for_tenant(tenant)
        .filter(kind__in=USAGE_KINDS, created_at__date__gte=first)
        .annotate(day=TruncDate("created_at"))
        .values("day", "kind")
        .annotate(total=Sum("amount_micros"))
    )
    totals = {(row["day"], row["kind"]): -row["total"] for row in rows}
    dates = [first + timedelta(days=offset) for offset in range(days)]
    return {
        "days": [day.isoformat() for day in dates],
        "series": [
            {
                "kind": kind,
                "label": kind_label(kind),
                "usd": [float(micros_to_usd(totals.get((day, kind), 0))) for day in dates],
            }
            for kind in USAGE_KINDS
        ],
        "total_usd": usd_text(sum(totals.values())),
    }


def _ledger_rows(entries) -> list[dict]:
    return [
        {
            "created_at": entry.created_at,
            "kind": kind_label(entry.kind),
            "description": entry.description,
            "reference": entry.reference,
            "amount_usd": usd_text(entry.amount_micros),
            "is_credit": entry.amount_micros > 0,
            "paid": (
                f"{Decimal(entry.amount_minor) / 100:.2f} {entry.currency}"
                if entry.amount_minor and entry.currency != "USD"
                else ""
            ),
        }
        for entry in entries
    ]


def _plans() -> list[dict]:
    return [
        {
            "plan": plan,
            "price": f"{Decimal(plan.price_minor) / 100:.2f}",
            "included_credit_usd": usd_text(plan.included_credit_micros),
            "is_subscribable": plan.code in subscriptions.SUBSCRIBABLE_PLANS
            and plan.price_minor > 0,
        }
        for plan in sorted(Plan.objects.filter(is_public=True), key=_plan_order)
    ]


def _plan_order(plan: Plan) -> tuple[int, str]:
    """The plans sold online first, in their order (starter, pro), then any other."""
    order = subscriptions.SUBSCRIBABLE_PLANS
    return (order.index(plan.code) if plan.code in order else len(order), plan.code)


def _budget_form_initial(budget: Budget) -> dict:
    limit = budget.monthly_limit_micros
    return {
        "monthly_limit_usd": micros_to_usd(limit) if limit else None,
        "thresholds_percent": ", ".join(str(value) for value in budget.thresholds_percent),
        "low_balance_usd": micros_to_usd(budget.low_balance_micros),
    }


class BillingPage(PortalPage):
    template_name = "portal/billing/billing.html"
    nav = "billing"

    def get(self, request, *args, **kwargs):
        for flag, outcome, text in (
            ("checkout", "success", _("Payment received: the credit shows once Stripe confirms.")),
            ("checkout", "cancel", _("Checkout cancelled: nothing was charged.")),
            ("subscription", "success", _("Plan paid: it turns active once Stripe confirms.")),
            ("subscription", "cancel", _("Plan checkout cancelled: nothing was charged.")),
        ):
            if request.GET.get(flag) == outcome:
                level = messages.SUCCESS if outcome == "success" else messages.INFO
                messages.add_message(request, level, text)
        return super().get(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        tenant = self.tenant_context.tenant
        now = timezone.now()
        subscription = Subscription.objects.for_tenant(tenant).select_related("plan").first()
        budget, _created = Budget.objects.get_or_create(tenant=tenant)
        entries = LedgerEntry.objects.for_tenant(tenant).order_by("-created_at", "-id")
        ledger_page = Paginator(entries, LEDGER_PAGE_SIZE).get_page(self.request.GET.get("page"))
        context.update(
            balance_usd=usd_text(ledger.balance_micros(tenant)),
            usage=usage_by_day(tenant, now.date()),
            ledger_page=ledger_page,
            ledger_rows=_ledger_rows(ledger_page.object_list),
            subscription=subscription,
            entitlements=entitlements.of_subscription(subscription),
            plans=_plans(),
            budget=budget,
            month_spent_usd=usd_text(alerts.month_spend_micros(tenant.pk, now)),
            is_admin=self.tenant_context.is_admin,
        )
        context.setdefault("topup_form", TopUpForm())
        context.setdefault("budget_form", BudgetForm(initial=_budget_form_initial(budget)))
        return context


class BillingAction(BillingPage):
    """A POST from the billing page: acts, then redirects; invalid input re-renders the page
    with the form's errors; a refusal of the billing service becomes a message."""

    http_method_names = ["post"]
    needs_admin = True

    def post(self, request, *args, **kwargs):
        if self.needs_admin and not self.tenant_context.is_admin:
            raise PermissionDenied(_("Only owners and admins manage the plan and the budget."))
        try:
            return self.act(request)
        except DumontError as error:
            messages.error(request, REFUSALS.get(error.code, error.detail))
            return redirect("portal:billing")

    def act(self, request):
        raise NotImplementedError

    def page_url(self, query: str) -> str:
        return self.request.build_absolute_uri(f"{reverse('portal:billing')}?{query}")


class TopUpView(BillingAction):
    needs_admin = False  # like POST /api/billing/checkout: any member may add credit

    def act(self, request):
        form = TopUpForm(request.POST)
        if not form.is_valid():
            return self.render_to_response(self.get_context_data(topup_form=form))
        session = payments.start_checkout(
            self.tenant_context.tenant,
            usd_to_micros(form.cleaned_data["amount_usd"]),
            form.cleaned_data["method"],
            success_url=self.page_url("checkout=success"),
            cancel_url=self.page_url("checkout=cancel"),
        )
        return redirect(session.url)


class SubscribeView(BillingAction):
    def act(self, request):
        form = SubscribeForm(request.POST)
        if not form.is_valid():
            messages.error(request, _("Choose one of the plans shown."))
            return redirect("portal:billing")
        session = subscriptions.start_subscription_checkout(
            self.tenant_context.tenant,
            form.cleaned_data["plan"],
            buyer=self.tenant_context.user,
            success_url=self.page_url("subscription=success"),
            cancel_url=self.page_url("subscription=cancel"),
        )
        return redirect(session.url)


class StripePortalView(BillingAction):
    def act(self, request):
        return redirect(
            subscriptions.portal_url(self.tenant_context.tenant, self.page_url("portal=back"))
        )


class CancelPlanView(BillingAction):
    def act(self, request):
        subscription = subscriptions.cancel_at_period_end(self.tenant_context.tenant)
        messages.success(
            request,
            _("Your plan will not renew: it stays active until %(end)s.")
            % {"end": _date_text(subscription.current_period_end)},
        )
        return redirect("portal:billing")


def _date_text(moment) -> str:
    return moment.strftime("%Y-%m-%d") if moment else _("the end of the paid period")


class BudgetUpdateView(BillingAction):
    def act(self, request):
        form = BudgetForm(request.POST)
        if not form.is_valid():
            return self.render_to_response(self.get_context_data(budget_form=form))
        data = form.cleaned_data
        budget, _created = Budget.objects.get_or_create(tenant=self.tenant_context.tenant)
        limit = data["monthly_limit_usd"]
        budget.monthly_limit_micros = usd_to_micros(limit) if limit is not None else None
        budget.thresholds_percent = data["thresholds_percent"]
        budget.low_balance_micros = usd_to_micros(data["low_balance_usd"])
        budget.save()
        messages.success(request, _("Budget saved."))
        return redirect("portal:billing")
