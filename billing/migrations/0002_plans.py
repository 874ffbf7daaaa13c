"""The seeds' plans: Starter R$199/month with 100 GPU-hours, Pro $79/month, Enterprise custom."""

from django.db import migrations

PLANS = [
    {
        "code": "starter",
        "name": "Starter",
        "price_minor": 19900,
        "currency": "BRL",
        "included_gpu_hours": 100,
        "has_standby": False,
        "has_auto_hibernate": True,
        "max_instances": 2,
        "support_response_hours": 24,
    },
    {
        "code": "pro",
        "name": "Pro",
        "price_minor": 7900,
        "currency": "USD",
        "included_gpu_hours": 0,
        "has_standby": True,
        "has_auto_hibernate": True,
        "max_instances": 10,
        "support_response_hours": 4,
    },
    {
        "code": "enterprise",
        "name": "Enterprise",
        "price_minor": 0,
        "currency": "USD",
        "included_gpu_hours": 0,
        "has_standby": True,
        "has_auto_hibernate": True,
        "max_instances": None,
        "support_response_hours": 1,
    },
]


def create_plans(apps, schema_editor):
    Plan = apps.get_model("billing", "Plan")
    for plan in PLANS:
        Plan.objects.update_or_create(code=plan["code"], defaults=plan)


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial")]
    operations = [migrations.RunPython(create_plans, migrations.RunPython.noop)]
