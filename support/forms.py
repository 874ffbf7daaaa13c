from django import forms
from django.utils.translation import gettext_lazy as _

from support.models import Ticket


class TicketForm(forms.Form):
    subject = forms.CharField(label=_("Subject"), max_length=200)
    priority = forms.ChoiceField(
        label=_("Priority"), choices=Ticket.Priority.choices, initial=Ticket.Priority.NORMAL
    )
    body = forms.CharField(
        label=_("Describe the problem"),
        max_length=20_000,
        widget=forms.Textarea(attrs={"rows": 8}),
        help_text=_("Include the instance name or ID and what you expected to happen."),
    )


class ReplyForm(forms.Form):
    body = forms.CharField(
        label=_("Your reply"), max_length=20_000, widget=forms.Textarea(attrs={"rows": 5})
    )
