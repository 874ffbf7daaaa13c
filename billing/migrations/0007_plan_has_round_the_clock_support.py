"""Support hours per plan: Enterprise answers 24/7 (FAQ), Starter and Pro in business hours."""

from django.db import migrations, models


def enterprise_round_the_clock(apps, schema_editor):
    Plan = apps.get_model("billing", "Plan")
    Plan.objects.filter(code="enterprise").update(has_round_the_clock_support=True)


class Migration(migrations.Migration):
    dependencies = [("billing", "0006_subscriptions_invoices_cards")]

    operations = [
        migrations.AddField(
            model_name="plan",
            name="has_round_the_clock_support",
            field=models.BooleanField(default=False),
        ),
        migrations.RunPython(enterprise_round_the_clock, migrations.RunPython.noop),
    ]
