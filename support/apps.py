from django.apps import AppConfig


class SupportConfig(AppConfig):
    """Support tickets: customers open them in the portal or the API, staff answer in the admin."""

    name = "support"
