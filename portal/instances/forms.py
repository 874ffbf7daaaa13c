"""Forms of the instance pages: the wizard's steps (workload, machine, SSH keys), taking a
snapshot and restoring one. They check what a person types; the services decide the rest."""

from decimal import Decimal

from django import forms
from django.utils.translation import gettext_lazy as _

from accounts.models import SshKey
from dumont.exceptions import DumontError
from portal.market.forms import GpuChoiceField
from spot.api.advisor import AdvisorRequest, workload_from
from spot.catalog import REGIONS

GPU_COUNTS = [(1, "1"), (2, "2"), (4, "4"), (8, "8")]
ANY_REGION = ("", _("Best available"))


def region_choices() -> list[tuple[str, str]]:
    return [ANY_REGION, *((region, region) for region in REGIONS)]


class WorkloadForm(forms.Form):
    """Step 1: the workload in words, for the GPU advisor (spot/advisor.py)."""

    workload = forms.CharField(
        label=_("What do you want to run?"),
        max_length=2000,
        widget=forms.Textarea(
            attrs={"rows": 3, "placeholder": _("Fine-tune Llama 3 8B with LoRA on 2 GB of text")}
        ),
    )
    model_size = forms.CharField(
        label=_("Model size"),
        max_length=40,
        required=False,
        help_text=_("7B, 70B… Leave empty when the description says it."),
    )
    budget_usd = forms.FloatField(
        label=_("Budget (USD)"), min_value=0.01, max_value=10_000_000, required=False
    )
    deadline_hours = forms.FloatField(
        label=_("Deadline (hours)"), min_value=0.01, max_value=8760, required=False
    )
    region = forms.ChoiceField(label=_("Region"), choices=region_choices, required=False)

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        request = AdvisorRequest(
            data={name: value for name, value in data.items() if value not in (None, "")}
        )
        if not request.is_valid():
            # The one check only the advisor's request makes: a model size it can read.
            self.add_error(
                "model_size", _("Say the model size (7B, 70B) here or in the description.")
            )
            return data
        try:
            data["advisor_workload"] = workload_from(request.validated_data)
        except DumontError:
            self.add_error(
                "model_size", _("No machine we rent holds a model this large; try a smaller one.")
            )
        return data


class MachineForm(forms.Form):
    """Step 2: which GPU, how many, where, and the most to pay per hour."""

    gpu = GpuChoiceField(label=_("GPU"))
    gpu_count = forms.TypedChoiceField(
        label=_("GPUs"), choices=GPU_COUNTS, coerce=int, initial=1, required=False, empty_value=1
    )
    region = forms.ChoiceField(label=_("Region"), choices=region_choices, required=False)
    max_price = forms.DecimalField(
        label=_("Maximum price (USD per hour)"),
        max_digits=9,
        decimal_places=4,
        min_value=Decimal("0.01"),
        max_value=10000,
        help_text=_("For the whole machine: the cheapest offer under it is rented."),
        widget=forms.NumberInput(attrs={"step": "0.01", "inputmode": "decimal"}),
    )
    name = forms.CharField(
        label=_("Name"),
        max_length=100,
        required=False,
        help_text=_("Leave empty for a name from the GPU and the time."),
    )


class SshKeysForm(forms.Form):
    """Step 3: the organisation's SSH keys to install on the machine."""

    ssh_keys = forms.ModelMultipleChoiceField(
        label=_("SSH keys"),
        queryset=SshKey.objects.none(),
        widget=forms.CheckboxSelectMultiple,
        required=False,
    )

    def __init__(self, *args, tenant, **kwargs):
        super().__init__(*args, **kwargs)
        field = self.fields["ssh_keys"]
        field.queryset = SshKey.objects.for_tenant(tenant)
        field.label_from_instance = lambda key: f"{key.name} ({key.fingerprint})"


class RestoreForm(MachineForm):
    """Restore a snapshot into a NEW instance: any GPU, any region (the FAQ's "change GPU")."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("auto_id", "restore_%s")
        super().__init__(*args, **kwargs)


class SnapshotForm(forms.Form):
    name = forms.CharField(
        label=_("Snapshot name"),
        max_length=100,
        required=False,
        help_text=_("Leave empty for the instance's name and the time."),
    )
