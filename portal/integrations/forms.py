from django import forms
from django.utils.translation import gettext_lazy as _

from accounts.models import TenantSettings
from webhooks.events import Event


class StandbyForm(forms.ModelForm):
    """The FAQ's Standby Config; the model's validators give the ranges (1-100 %, 1-1440 min)."""

    class Meta:
        model = TenantSettings
        fields = ["auto_hibernate", "idle_threshold_percent", "idle_minutes"]
        labels = {
            "auto_hibernate": _("Enable Auto-Hibernate"),
            "idle_threshold_percent": _("GPU utilisation threshold (%)"),
            "idle_minutes": _("Idle minutes"),
        }
        help_texts = {
            "auto_hibernate": _(
                "Hibernate an idle GPU: you stop paying for it and it wakes in about 30 seconds."
            ),
            "idle_threshold_percent": _("Below this GPU utilisation an instance counts as idle."),
            "idle_minutes": _("How long an instance stays idle before it hibernates."),
        }

    def __init__(self, *args, is_read_only: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.disabled = is_read_only


class WebhookForm(forms.Form):
    # Format only here, as the API's serializer; whether the URL may be reached (SSRF rules) is
    # checked by webhooks.services.create_endpoint and comes back as an error on `url`.
    url = forms.CharField(
        label=_("URL"),
        max_length=2000,
        widget=forms.URLInput(attrs={"placeholder": "https://example.com/dumont-hooks"}),
    )
    description = forms.CharField(label=_("Description"), max_length=200, required=False)
    events = forms.MultipleChoiceField(
        label=_("Events"),
        choices=Event.choices,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": _("Choose at least one event.")},
    )
