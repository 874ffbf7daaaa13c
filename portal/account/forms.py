"""Forms of the account pages: sign-up (through allauth), SSH keys, API tokens, members."""

from allauth.account.forms import SignupForm as AllauthSignupForm
from allauth.account.internal.flows.signup import prevent_enumeration
from allauth.account.models import EmailAddress
from allauth.account.utils import setup_user_email
from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts import exceptions, services
from accounts.authentication import request_ip
from accounts.models import Membership
from accounts.ssh_keys import InvalidSshKey, ParsedSshKey, parse_public_key


class SignupForm(AllauthSignupForm):
    """allauth's sign-up plus the organisation; saving runs accounts.services.sign_up.

    So a browser sign-up creates what the API's does (user, tenant, owner membership,
    settings, the trial with its credit, one trial per person) without a second copy of it.
    """

    organization = forms.CharField(
        label=_("Organisation"),
        max_length=100,
        help_text=_("Your company or team; you can invite others to it later."),
        widget=forms.TextInput(attrs={"autocomplete": "organization"}),
    )
    field_order = ["email", "organization", "password1", "password2"]

    def try_save(self, request):
        try:
            return super().try_save(request)
        except exceptions.EmailTaken:
            # An account made through the API has no allauth address row, so allauth's own
            # check let it through: answer as for any taken address (no enumeration).
            return None, prevent_enumeration(request, email=self.cleaned_data["email"])

    def save(self, request):
        email = self.cleaned_data["email"]
        result = services.sign_up(
            email,
            self.cleaned_data["password1"],
            self.cleaned_data["organization"],
            ip=request_ip(request),
            first_token=False,
        )
        setup_user_email(request, result.user, [EmailAddress(email=result.user.email)])
        return result.user


# accounts.ssh_keys explains refusals in English for the API; the portal says it translated.
SSH_KEY_REFUSALS = {
    "private_key": _(
        "This is a private key. Paste the public key (the .pub file), and keep the private key "
        "secret."
    ),
    "unsupported_key_type": _(
        "This key type is not supported: use ed25519, ECDSA or RSA (2048 bits or more)."
    ),
    "weak_key": _("RSA keys must have at least 2048 bits."),
    "invalid_ssh_key": _(
        "Not an OpenSSH public key: paste one line, such as the contents of ~/.ssh/id_ed25519.pub."
    ),
}


class SshKeyForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100)
    public_key = forms.CharField(
        label=_("Public key"),
        max_length=16 * 1024,
        help_text=_("The contents of your .pub file, e.g. ~/.ssh/id_ed25519.pub."),
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false"}),
    )

    def clean_public_key(self) -> ParsedSshKey:
        try:
            return parse_public_key(self.cleaned_data["public_key"])
        except InvalidSshKey as error:
            message = SSH_KEY_REFUSALS.get(error.code, SSH_KEY_REFUSALS["invalid_ssh_key"])
            raise forms.ValidationError(message, code=error.code) from error


class TokenForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100)
    expires_at = forms.DateTimeField(
        label=_("Expires"),
        required=False,
        help_text=_("Leave empty for a token that never expires."),
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )

    def clean_expires_at(self):
        value = self.cleaned_data["expires_at"]
        if value is not None and value <= timezone.now():
            raise forms.ValidationError(_("Must be in the future."), code="expired")
        return value


class AddMemberForm(forms.Form):
    email = forms.EmailField(label=_("E-mail of an existing account"), max_length=254)
    role = forms.ChoiceField(
        label=_("Role"), choices=Membership.Role.choices, initial=Membership.Role.MEMBER
    )


class RoleForm(forms.Form):
    role = forms.ChoiceField(label=_("Role"), choices=Membership.Role.choices)
