"""The instance and snapshot services' refusals in the reader's language (their `code`, as the
API's JSON has it); the services' own texts are English for the API."""

from django.utils.translation import gettext as _

from dumont.exceptions import DumontError
from portal.instances.facts import STATUS_LABELS


def refusal(error: DumontError) -> str:
    """A sentence for a person about why the service said no."""
    plan = getattr(error, "plan", "")
    texts = {
        "insufficient_credits": _(
            "Your balance does not cover one hour of this machine: add credits or choose a plan."
        ),
        "instance_limit_reached": _(
            "Your plan (%(plan)s) allows no more instances: delete one or choose a larger plan."
        )
        % {"plan": plan},
        "region_not_in_plan": _(
            "Your plan (%(plan)s) does not run instances in this region: choose another region."
        )
        % {"plan": plan},
        "no_capacity": _(
            "No machine of this GPU is free under your maximum price right now: raise the price, "
            "or choose another region or GPU."
        ),
        "provider_unavailable": _("The GPU market is not answering; try again in a minute."),
        "unknown_gpu": _("We do not rent this GPU: choose one from the list."),
        "unknown_region": _("We have no such region: choose one from the list."),
        "unknown_ssh_key": _("One of the SSH keys is no longer in your organisation."),
        "instance_not_running": _("Only a running instance's workspace can be snapshotted."),
        "snapshot_not_ready": _("Only a completed snapshot can be restored."),
        "snapshot_busy": _("The snapshot is being taken or restored; try again when it is done."),
    }
    if error.code == "invalid_transition":
        status = str(STATUS_LABELS.get(error.from_status, error.from_status)).lower()
        return _("This instance cannot do that now: it is %(status)s.") % {"status": status}
    return texts.get(error.code, _("The request could not be completed."))
