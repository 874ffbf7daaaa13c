from django.apps import AppConfig


class DumontConfig(AppConfig):
    """The project package, installed for its management commands (`launch`) and to connect the
    apps' hooks (dumont/wiring.py) once every app is loaded."""

    name = "dumont"
    verbose_name = "Dumont platform"

    def ready(self) -> None:
        from dumont import wiring

        wiring.connect()
