from django.apps import AppConfig


class SnapshotsConfig(AppConfig):
    name = "snapshots"

    def ready(self) -> None:
        from instances.commands import CommandHooks, register_command_hooks, register_sync_hook
        from instances.transitions import register_transition_hook
        from snapshots import services

        register_command_hooks(
            services.SNAPSHOT_COMMAND,
            CommandHooks(
                on_progress=services.snapshot_progress,
                on_result=services.snapshot_finished,
                secret_arguments=services.repository_arguments,
            ),
        )
        # A customer's restore is carried out by the new machine's workspace restore.
        register_command_hooks(
            services.RESTORE_LATEST_COMMAND,
            CommandHooks(
                on_progress=services.restore_progress, on_result=services.restore_finished
            ),
        )
        # Commands that read or write the repository: the instance's agent's and its standby's.
        for kind in (services.SYNC_COMMAND, "restore_latest", "follow", "promote", "demote"):
            register_command_hooks(
                kind, CommandHooks(secret_arguments=services.repository_arguments)
            )
        register_transition_hook(services.instance_transitioned)
        register_sync_hook(services.sync_reported)
