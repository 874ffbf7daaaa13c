"""The seeds' plans as code: the data migrations create them; the trial and the subscription
checkout re-create one if staff deleted it (a payment must never fail on a missing row)."""

from billing.models import Plan

STARTER = {
    "code": "starter",
    "name": "Starter",
    "price_minor": 19900,
    "currency": "BRL",
    "included_gpu_hours": 100,
    # 100 GPU-hours as credit at $0.35 per hour (see migration 0006): $35.00 per paid month.
    "included_credit_micros": 100 * 350_000,
    "has_standby": False,
    "has_auto_hibernate": True,
    "max_instances": 2,
    "support_response_hours": 24,
}
PRO = {
    "code": "pro",
    "name": "Pro",
    "price_minor": 7900,
    "currency": "USD",
    "included_gpu_hours": 0,
    "has_standby": True,
    "has_auto_hibernate": True,
    "max_instances": 10,
    "support_response_hours": 4,
}
SEEDS = {plan["code"]: plan for plan in (STARTER, PRO)}


def seed_plan(code: str) -> Plan | None:
    """The plan with this code; a seed plan is re-created if missing. None for other codes."""
    plan = Plan.objects.filter(code=code).first()
    if plan is None and code in SEEDS:
        plan, _ = Plan.objects.get_or_create(code=code, defaults=SEEDS[code])
    return plan


def trial_plan() -> Plan:
    plan, _ = Plan.objects.get_or_create(code=PRO["code"], defaults=PRO)
    return plan
