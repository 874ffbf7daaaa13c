from django.apps import AppConfig


class DumontConfig(AppConfig):
    """The project package, installed for its management commands (`launch`)."""

    name = "dumont"
    verbose_name = "Dumont platform"
