"""What a tenant's plan lets it do: standby, instance count, regions, support response time.

A plan's entitlements apply while its subscription is trialing, active or past due (Stripe is
still retrying). Without one (an expired trial, a cancelled plan) the tenant is pay-as-you-go:
it still runs GPUs on purchased credit, without standby, at most PAY_AS_YOU_GO's instances.
Creating an instance always needs credit for an hour (402 `insufficient_credits`): a plan is
not credit, except the credit its paid invoices add.
"""

from typing import TypedDict

from accounts.models import Tenant
from billing.models import Plan, Subscription


class Entitlements(TypedDict):
    plan: str
    is_paid: bool
    has_standby: bool
    has_auto_hibernate: bool
    max_instances: int | None
    regions: list[str]
    support_response_hours: int | None
    has_round_the_clock_support: bool
    included_gpu_hours: int
    included_credit_micros: int


PAY_AS_YOU_GO: Entitlements = {
    "plan": "pay_as_you_go",
    "is_paid": False,
    "has_standby": False,
    "has_auto_hibernate": True,
    "max_instances": 1,
    "regions": [],
    "support_response_hours": None,
    "has_round_the_clock_support": False,
    "included_gpu_hours": 0,
    "included_credit_micros": 0,
}


def of_plan(plan: Plan, *, is_paid: bool) -> Entitlements:
    return {
        "plan": plan.code,
        "is_paid": is_paid,
        "has_standby": plan.has_standby,
        "has_auto_hibernate": plan.has_auto_hibernate,
        "max_instances": plan.max_instances,
        "regions": list(plan.regions),
        "support_response_hours": plan.support_response_hours,
        "has_round_the_clock_support": plan.has_round_the_clock_support,
        "included_gpu_hours": plan.included_gpu_hours,
        "included_credit_micros": plan.included_credit_micros,
    }


def entitlements_of(tenant: Tenant | int) -> Entitlements:
    """The tenant's entitlements now (its plan's, or pay-as-you-go)."""
    subscription = Subscription.objects.for_tenant(tenant).select_related("plan").first()
    return of_subscription(subscription)


def of_subscription(subscription: Subscription | None) -> Entitlements:
    if subscription is None or subscription.status not in Subscription.ENTITLED:
        return dict(PAY_AS_YOU_GO)  # type: ignore[return-value]
    return of_plan(subscription.plan, is_paid=subscription.is_paid)
