"""The market page's choices: which GPU and region to chart, and the savings calculator."""

from django import forms
from django.utils.translation import gettext_lazy as _

from spot.catalog import REGIONS, find_gpu, gpus

DEFAULT_GPU = "H100"  # the imported price history covers it; any catalog GPU can be chosen
PERIOD_DAYS = [(1, _("24 hours")), (7, _("7 days")), (30, _("30 days"))]


def _gpu_choices() -> list[tuple[str, str]]:
    return [(gpu.name, gpu.name) for gpu in gpus()]


class GpuChoiceField(forms.ChoiceField):
    """A catalog GPU by name, in any case and spacing (`rtx4090`), cleaned to the catalog Gpu."""

    def __init__(self, **kwargs):
        super().__init__(choices=_gpu_choices, **kwargs)

    def to_python(self, value):
        gpu = find_gpu(str(value or ""))
        return gpu.name if gpu else super().to_python(value)

    def clean(self, value):
        return find_gpu(super().clean(value))


class MarketForm(forms.Form):
    gpu = GpuChoiceField(label=_("GPU"))
    region = forms.ChoiceField(
        label=_("Region"),
        required=False,
        choices=[("", _("All regions")), *((region, region) for region in REGIONS)],
    )
    days = forms.TypedChoiceField(
        label=_("Period"), choices=PERIOD_DAYS, coerce=int, required=False, empty_value=7
    )


class SavingsForm(forms.Form):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("auto_id", "savings_%s")  # beside MarketForm on one page: own ids
        super().__init__(*args, **kwargs)

    gpu = GpuChoiceField(label=_("GPU"))
    hours = forms.FloatField(
        label=_("GPU hours"),
        min_value=0.1,
        max_value=1_000_000,
        widget=forms.NumberInput(attrs={"step": "any", "inputmode": "decimal"}),
    )
