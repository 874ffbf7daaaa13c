import csv
import io

from django.conf import settings
from django.db.models import Sum
from django.db.models.functions import TruncDate
from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.tenancy import TenantScopedViewSet
from billing import alerts, ledger, payments, subscriptions
from billing.api import serializers
from billing.exceptions import (
    AlreadySubscribed,
    NoPaidSubscription,
    NoStripeCustomer,
    PaymentProviderError,
)
from billing.models import Budget, Invoice, LedgerEntry, Plan, Subscription
from billing.money import usd_text, usd_to_micros
from dumont.schema import errors

USAGE_KINDS = [
    LedgerEntry.Kind.USAGE_GPU,
    LedgerEntry.Kind.USAGE_STANDBY,
    LedgerEntry.Kind.USAGE_STORAGE,
]


class BalanceView(APIView):
    """The tenant's credit: the sum of its ledger."""

    @extend_schema(responses={200: serializers.BalanceSerializer}, tags=["billing"])
    def get(self, request):
        micros = ledger.balance_micros(request.auth.tenant)
        return Response(
            {
                "balance_micro_usd": micros,
                "balance_usd": usd_text(micros),
                "currency": "USD",
            }
        )


@extend_schema(tags=["billing"])
class LedgerViewSet(mixins.ListModelMixin, TenantScopedViewSet):
    """Every movement of credit, newest first; `?kind=` filters."""

    queryset = LedgerEntry.objects.all()
    serializer_class = serializers.LedgerEntrySerializer
    filterset_fields = ["kind"]

    @extend_schema(
        responses={(200, "text/csv"): OpenApiTypes.STR},
        summary="The whole ledger as CSV",
    )
    @action(detail=False, methods=["get"], url_path="csv")
    def export(self, request):
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(
            [
                "created_at",
                "kind",
                "amount_usd",
                "amount_micros",
                "currency",
                "amount_minor",
                "fx_rate",
                "reference",
                "description",
            ]
        )
        for entry in self.filter_queryset(self.get_queryset()).order_by("created_at", "id"):
            writer.writerow(
                [
                    entry.created_at.isoformat(),
                    entry.kind,
                    usd_text(entry.amount_micros),
                    entry.amount_micros,
                    entry.currency,
                    entry.amount_minor or "",
                    entry.fx_rate or "",
                    entry.reference,
                    entry.description,
                ]
            )
        response = HttpResponse(buffer.getvalue(), content_type="text/csv")
        response["Content-Disposition"] = 'attachment; filename="dumont-ledger.csv"'
        return response


class UsageView(APIView):
    """Usage charged per instance and day (UTC)."""

    @extend_schema(
        responses={200: serializers.UsageDaySerializer(many=True)},
        parameters=[OpenApiParameter("instance", str, description="only this instance id")],
        tags=["billing"],
    )
    def get(self, request):
        entries = LedgerEntry.objects.for_tenant(request.auth.tenant).filter(kind__in=USAGE_KINDS)
        if instance := request.query_params.get("instance"):
            entries = entries.filter(reference=instance)
        rows = (
            entries.annotate(day=TruncDate("created_at"))
            .values("day", "reference", "kind")
            .annotate(total=Sum("amount_micros"))
            .order_by("-day", "reference")
        )
        return Response(
            [
                {
                    "day": row["day"],
                    "subject_id": row["reference"],
                    "kind": row["kind"],
                    "amount_micros": -row["total"],
                    "amount_usd": usd_text(-row["total"]),
                }
                for row in rows
            ]
        )


class PlansView(APIView):
    """The public plans."""

    permission_classes = [AllowAny]
    authentication_classes: list = []

    @extend_schema(responses={200: serializers.PlanSerializer(many=True)}, tags=["billing"])
    def get(self, request):
        plans = Plan.objects.filter(is_public=True)
        return Response(serializers.PlanSerializer(plans, many=True).data)


def _portal_address() -> str:
    return settings.DUMONT_PUBLIC_URL.rstrip("/")


def _require_admin(request, doing: str) -> None:
    if not request.auth.is_admin:
        raise PermissionDenied(f"Only owners and admins {doing}.")


class SubscriptionView(APIView):
    """The tenant's plan, its status (trialing, active, past_due, expired ...) and entitlements;
    POST buys a plan (Stripe Checkout), DELETE cancels it at the end of the paid period."""

    def _current(self, request) -> Subscription | None:
        return Subscription.objects.for_tenant(request.auth.tenant).select_related("plan").first()

    @extend_schema(responses={200: serializers.SubscriptionSerializer}, tags=["billing"])
    def get(self, request):
        subscription = self._current(request)
        if subscription is None:
            return Response({"code": "no_subscription", "detail": "No plan yet."}, status=404)
        return Response(serializers.SubscriptionSerializer(subscription).data)

    @extend_schema(
        request=serializers.SubscribeRequestSerializer,
        responses={
            201: serializers.CheckoutSessionSerializer,
            **errors(AlreadySubscribed, PaymentProviderError),
        },
        summary="Buy a plan: a Stripe Checkout Session in subscription mode (pay at `url`)",
        tags=["billing"],
    )
    def post(self, request):
        _require_admin(request, "choose the plan")
        form = serializers.SubscribeRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        session = subscriptions.start_subscription_checkout(
            request.auth.tenant,
            form.validated_data["plan"],
            buyer=request.auth.user,
            success_url=f"{_portal_address()}/billing?subscription=success",
            cancel_url=f"{_portal_address()}/billing?subscription=cancel",
        )
        return Response(serializers.CheckoutSessionSerializer(session).data, status=201)

    @extend_schema(
        request=None,
        responses={
            200: serializers.SubscriptionSerializer,
            **errors(NoPaidSubscription, PaymentProviderError),
        },
        summary="Cancel the paid plan at the end of its current period",
        tags=["billing"],
    )
    def delete(self, request):
        _require_admin(request, "cancel the plan")
        subscription = subscriptions.cancel_at_period_end(request.auth.tenant)
        return Response(serializers.SubscriptionSerializer(subscription).data)


class PortalView(APIView):
    """A link to Stripe's customer portal: cards, invoices, plan changes and cancellation."""

    @extend_schema(
        request=None,
        responses={
            200: serializers.PortalSerializer,
            **errors(NoStripeCustomer, PaymentProviderError),
        },
        tags=["billing"],
    )
    def post(self, request):
        _require_admin(request, "manage payments")
        url = subscriptions.portal_url(request.auth.tenant, f"{_portal_address()}/billing")
        return Response({"url": url})


@extend_schema(tags=["billing"])
class InvoiceViewSet(mixins.ListModelMixin, TenantScopedViewSet):
    """The plan's invoices, newest first, as Stripe last reported them; `?status=` filters."""

    queryset = Invoice.objects.all()
    serializer_class = serializers.InvoiceSerializer
    filterset_fields = ["status"]


class BudgetView(APIView):
    """The monthly budget (alerts at its thresholds) and the low-balance alert line."""

    def _body(self, budget: Budget) -> dict:
        limit = budget.monthly_limit_micros
        return {
            "monthly_limit_usd": usd_text(limit) if limit else None,
            "thresholds_percent": budget.thresholds_percent,
            "low_balance_usd": usd_text(budget.low_balance_micros),
            "month_spent_usd": usd_text(
                alerts.month_spend_micros(budget.tenant_id, timezone.now())
            ),
        }

    @extend_schema(responses={200: serializers.BudgetSerializer}, tags=["billing"])
    def get(self, request):
        budget, _ = Budget.objects.get_or_create(tenant=request.auth.tenant)
        return Response(self._body(budget))

    @extend_schema(
        request=serializers.BudgetSerializer,
        responses={200: serializers.BudgetSerializer},
        tags=["billing"],
    )
    def patch(self, request):
        _require_admin(request, "change the budget")
        form = serializers.BudgetSerializer(data=request.data, partial=True)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        budget, _ = Budget.objects.get_or_create(tenant=request.auth.tenant)
        if "monthly_limit_usd" in data:
            limit = data["monthly_limit_usd"]
            budget.monthly_limit_micros = usd_to_micros(limit) if limit is not None else None
        if "thresholds_percent" in data:
            budget.thresholds_percent = sorted(set(data["thresholds_percent"]))
        if "low_balance_usd" in data:
            budget.low_balance_micros = usd_to_micros(data["low_balance_usd"])
        budget.save()
        return Response(self._body(budget))


class CheckoutView(APIView):
    """Top up credit: a Stripe Checkout Session (card in USD; PIX or boleto in BRL)."""

    @extend_schema(
        request=serializers.CheckoutRequestSerializer,
        responses={201: serializers.CheckoutSessionSerializer, **errors(PaymentProviderError)},
        tags=["billing"],
    )
    def post(self, request):
        form = serializers.CheckoutRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        portal = _portal_address()
        session = payments.start_checkout(
            request.auth.tenant,
            usd_to_micros(form.validated_data["amount_usd"]),
            form.validated_data["method"],
            success_url=f"{portal}/billing?checkout=success",
            cancel_url=f"{portal}/billing?checkout=cancel",
        )
        return Response(serializers.CheckoutSessionSerializer(session).data, status=201)


class StripeWebhookView(APIView):
    """Stripe's events: signature verified, each event id applied once."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(request=None, responses={200: None}, tags=["billing"])
    def post(self, request):
        try:
            outcome = payments.handle_webhook(
                request.body, request.headers.get("Stripe-Signature", "")
            )
        except payments.InvalidSignature:
            return Response(
                {"code": "invalid_signature", "detail": "The Stripe signature does not verify."},
                status=400,
            )
        return Response({"received": True, "outcome": outcome})
