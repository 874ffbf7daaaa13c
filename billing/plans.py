"""The seeds' plans as code: the data migration creates them; the trial re-creates Pro if staff
deleted it (a trial must never fail because a row is missing)."""

from billing.models import Plan

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


def trial_plan() -> Plan:
    plan, _ = Plan.objects.get_or_create(code=PRO["code"], defaults=PRO)
    return plan
