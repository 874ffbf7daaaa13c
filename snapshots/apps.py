from django.apps import AppConfig


class SnapshotsConfig(AppConfig):
    """The snapshot hooks on instances' commands and transitions are listed in dumont/wiring.py."""

    name = "snapshots"
