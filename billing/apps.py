from django.apps import AppConfig


class BillingConfig(AppConfig):
    """Billing's hooks (a new tenant's trial) are connected in dumont/wiring.py."""

    name = "billing"
