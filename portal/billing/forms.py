"""Billing forms: add credits, choose a plan, the monthly budget and its alert thresholds."""

from django import forms
from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from billing.models import CheckoutSession
from billing.subscriptions import SUBSCRIBABLE_PLANS


class TopUpForm(forms.Form):
    amount_usd = forms.DecimalField(
        label=_("Amount (USD)"),
        max_digits=9,
        decimal_places=2,
        widget=forms.NumberInput(attrs={"step": "0.01", "inputmode": "decimal"}),
    )
    method = forms.ChoiceField(
        label=_("Pay with"),
        choices=[
            (CheckoutSession.Method.CARD, _("Card (USD)")),
            (CheckoutSession.Method.PIX, _("PIX (BRL)")),
            (CheckoutSession.Method.BOLETO, _("Boleto (BRL, credited when the bank confirms)")),
        ],
        initial=CheckoutSession.Method.CARD,
        widget=forms.RadioSelect,
    )

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("auto_id", "topup_%s")
        super().__init__(*args, **kwargs)
        # The same bounds as billing.payments.start_checkout, checked here to show them.
        low, high = settings.TOP_UP_MIN_USD, settings.TOP_UP_MAX_USD
        amount = self.fields["amount_usd"]
        amount.validators += [MinValueValidator(low), MaxValueValidator(high)]
        amount.widget.attrs.update(min=low, max=high)
        amount.help_text = gettext("Between $%(low)s and $%(high)s.") % {"low": low, "high": high}


class SubscribeForm(forms.Form):
    plan = forms.ChoiceField(choices=[(code, code) for code in SUBSCRIBABLE_PLANS])


def _thresholds(text: str) -> list[int]:
    try:
        values = sorted({int(part) for part in text.replace(";", ",").split(",") if part.strip()})
    except ValueError:
        raise forms.ValidationError(
            _("Give whole percentages separated by commas, e.g. 50, 80, 100."), code="invalid"
        ) from None
    if not 1 <= len(values) <= 10 or not all(1 <= value <= 1000 for value in values):
        raise forms.ValidationError(
            _("Give 1 to 10 percentages between 1 and 1000."), code="out_of_range"
        )
    return values


class BudgetForm(forms.Form):
    monthly_limit_usd = forms.DecimalField(
        label=_("Monthly budget (USD)"),
        max_digits=12,
        decimal_places=2,
        min_value=1,
        required=False,
        help_text=_("Leave empty for no budget."),
    )
    thresholds_percent = forms.CharField(
        # Translators: a plain percent sign, not a format.
        # xgettext:no-python-format
        label=_("Alert at (% of the budget)"),
        max_length=100,
        help_text=_("E-mail and webhook when the month's usage reaches each: 50, 80, 100."),
    )
    low_balance_usd = forms.DecimalField(
        label=_("Low-balance alert below (USD)"), max_digits=12, decimal_places=2, min_value=0
    )

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("auto_id", "budget_%s")
        super().__init__(*args, **kwargs)

    def clean_thresholds_percent(self) -> list[int]:
        return _thresholds(self.cleaned_data["thresholds_percent"])
