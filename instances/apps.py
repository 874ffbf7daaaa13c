from django.apps import AppConfig


class InstancesConfig(AppConfig):
    name = "instances"

    def ready(self) -> None:
        # Steps are sent by name (tasks_queue): register the tasks in every process that sends
        # them. What instances' hooks are, and when they run, is listed in dumont/wiring.py.
        from instances import tasks  # noqa: F401
