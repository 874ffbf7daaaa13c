"""Every hook that lets a lower app cause something in a higher one, in one place and in order.

Apps depend one way (accounts ← webhooks ← spot ← billing ← instances ← snapshots | support ←
portal): a lower app never imports a higher one. Where it must set off something above it, it
keeps a registry (a list of hooks, or a Django signal) and this module, part of the composition
root, registers the higher apps' functions there. Read it to know what happens when an instance
changes status, when an agent reports on a command, or when a balance runs out. It runs once per
process, from DumontConfig.ready, after every app is loaded.
"""

from accounts.signals import tenant_created
from billing.signals import balance_exhausted
from billing.trial import start_trial
from instances import metering, recovery, standby
from instances.commands import CommandHooks, register_command_hooks, register_sync_hook
from instances.market import offers_for_spot
from instances.moves import hibernate_for_exhausted_credit
from instances.spot_hooks import machine_hours
from instances.transitions import register_transition_hook
from snapshots import services as snapshots
from spot.market import register_offer_source
from spot.risk import register_exposure_source

# Every transition, in this order, inside its transaction (after instances/notify.py has written
# the customer webhook rows and queued the live push). Each may write rows; anything outside the
# database goes in `transaction.on_commit`.
TRANSITION_HOOKS = (
    recovery.stop_machine_in_error,  # an instance in error leaves no GPU running unbilled
    recovery.close_abandoned_failover,  # a failover ended by error or deletion is `failed`
    standby.instance_transitioned,  # the CPU standby starts, stops and goes with its instance
    metering.meter_transition,  # the GPU is billed exactly while running
    snapshots.instance_transitioned,  # a machine that starts running gets continuous sync
)

# What an agent's report on a command means (instances/commands.py), by kind; for one kind the
# hooks run in this order. `secret_arguments` adds the repository's credentials at hand-out.
repository_access = CommandHooks(secret_arguments=snapshots.repository_arguments)
COMMAND_HOOKS = (
    # Hibernation: the final sync's result stops or releases the machine.
    (recovery.FINAL_SYNC, CommandHooks(on_result=recovery.final_sync_finished)),
    # A new machine restoring its workspace: it runs once restored; a customer's restore
    # (snapshots) follows the same command.
    (recovery.RESTORE_LATEST, CommandHooks(on_result=recovery.restore_finished)),
    (
        snapshots.RESTORE_LATEST_COMMAND,
        CommandHooks(on_progress=snapshots.restore_progress, on_result=snapshots.restore_finished),
    ),
    # Failover: the standby serves, then hands the workspace back to the new GPU.
    (standby.PROMOTE, CommandHooks(on_result=recovery.promoted)),
    (standby.DEMOTE, CommandHooks(on_result=recovery.demoted)),
    # A customer's snapshot.
    (
        snapshots.SNAPSHOT_COMMAND,
        CommandHooks(
            on_progress=snapshots.snapshot_progress,
            on_result=snapshots.snapshot_finished,
            secret_arguments=snapshots.repository_arguments,
        ),
    ),
    # Commands that read or write the repository: the instance's agent's and its standby's.
    (snapshots.SYNC_COMMAND, repository_access),
    (recovery.RESTORE_LATEST, repository_access),
    (standby.FOLLOW, repository_access),
    (standby.PROMOTE, repository_access),
    (standby.DEMOTE, repository_access),
)

# Each continuous-sync report of an agent (after the instance's last sync is stored).
SYNC_HOOKS = (snapshots.sync_reported,)


def _grant_trial(sender, tenant, owner, **kwargs) -> None:
    start_trial(tenant, owner)


def connect() -> None:
    """Register every hook above, and the spot statistics' sources and the signals' receivers."""
    for hook in TRANSITION_HOOKS:
        register_transition_hook(hook)
    for kind, hooks in COMMAND_HOOKS:
        register_command_hooks(kind, hooks)
    for hook in SYNC_HOOKS:
        register_sync_hook(hook)
    # What spot's market monitor and risk statistics read of our own machines.
    register_offer_source(offers_for_spot)
    register_exposure_source(machine_hours)
    # A new tenant starts its trial; a balance that runs out hibernates the tenant's machines.
    tenant_created.connect(_grant_trial, dispatch_uid="billing.grant_trial", weak=False)
    balance_exhausted.connect(
        hibernate_for_exhausted_credit, dispatch_uid="instances.exhausted", weak=False
    )
