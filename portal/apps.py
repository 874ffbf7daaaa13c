from django.apps import AppConfig


class PortalConfig(AppConfig):
    """The customer web portal: server-rendered pages (htmx) over the same services as the API."""

    name = "portal"
    verbose_name = "Customer portal"
