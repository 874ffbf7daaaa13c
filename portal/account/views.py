"""Settings pages of the account: security (e-mail, password, 2FA), SSH keys, tokens, members.

Every query goes through the session's tenant (`self.tenant_context`) and every change through
accounts.services, like the API; another tenant's object is a 404.
"""

from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect
from django.utils.translation import gettext_lazy as _
from django.views.generic import RedirectView

from accounts import exceptions, services
from accounts.models import ApiToken, Membership, SshKey
from dumont.exceptions import DumontError
from portal.account import forms
from portal.views import PortalPage

# What a person reads when a service refuses (the services' own texts are for the API).
REFUSALS = {
    exceptions.DuplicateSshKey.code: _("This SSH key is already registered in your organisation."),
    exceptions.UserNotFound.code: _(
        "No account uses this e-mail; ask the person to sign up first."
    ),
    exceptions.AlreadyMember.code: _("This person is already a member of the organisation."),
    exceptions.LastOwner.code: _("An organisation must keep at least one owner."),
    exceptions.RoleForbidden.code: _("Your role does not allow this."),
}
NEW_TOKEN_SESSION_KEY = "portal_new_token"


def refusal(error: DumontError) -> str:
    return REFUSALS.get(error.code, _("The request could not be completed."))


class SettingsIndex(RedirectView):
    pattern_name = "portal:account-security"


class AccountPage(PortalPage):
    """A settings page of this area; `section` highlights it in the settings menu."""

    nav = "settings"
    section = ""

    def get_context_data(self, **kwargs):
        return super().get_context_data(section=self.section, **kwargs)

    def render_invalid(self, **forms_by_name):
        """The page again with the submitted form and its errors."""
        return self.render_to_response(self.get_context_data(**forms_by_name), status=400)


class SecurityPage(AccountPage):
    template_name = "portal/account/security.html"
    section = "security"

    def get_context_data(self, **kwargs):
        user = self.request.user
        authenticators = {a.type: a for a in Authenticator.objects.filter(user=user)}
        recovery = authenticators.get(Authenticator.Type.RECOVERY_CODES)
        return super().get_context_data(
            email_addresses=EmailAddress.objects.filter(user=user).order_by("-primary", "email"),
            has_verified_email=EmailAddress.objects.filter(user=user, verified=True).exists(),
            totp=authenticators.get(Authenticator.Type.TOTP),
            unused_recovery_codes=(
                len(RecoveryCodes(recovery).get_unused_codes()) if recovery else None
            ),
            **kwargs,
        )


class SshKeysPage(AccountPage):
    template_name = "portal/account/ssh_keys.html"
    section = "ssh-keys"

    def get_context_data(self, **kwargs):
        kwargs.setdefault("form", forms.SshKeyForm())
        keys = SshKey.objects.for_tenant(self.tenant_context.tenant)
        return super().get_context_data(keys=keys, **kwargs)

    def post(self, request, *args, **kwargs):
        form = forms.SshKeyForm(request.POST)
        if not form.is_valid():
            return self.render_invalid(form=form)
        try:
            key = services.add_ssh_key(
                self.tenant_context, form.cleaned_data["name"], form.cleaned_data["public_key"]
            )
        except exceptions.DuplicateSshKey as error:
            form.add_error("public_key", refusal(error))
            return self.render_invalid(form=form)
        messages.success(request, _("SSH key “%(name)s” added.") % {"name": key.name})
        return redirect("portal:account-ssh-keys")


class RemoveSshKey(AccountPage):
    http_method_names = ["post"]

    def post(self, request, pk: int):
        key = get_object_or_404(SshKey.objects.for_tenant(self.tenant_context.tenant), pk=pk)
        services.remove_ssh_key(self.tenant_context, key)
        messages.success(request, _("SSH key “%(name)s” removed.") % {"name": key.name})
        return redirect("portal:account-ssh-keys")


def visible_tokens(context):
    """The tokens the caller may see: an admin's are all of the tenant's, a member's their own."""
    tokens = ApiToken.objects.for_tenant(context.tenant).select_related("user")
    return tokens if context.is_admin else tokens.filter(user=context.user)


class TokensPage(AccountPage):
    template_name = "portal/account/tokens.html"
    section = "tokens"

    def get_context_data(self, **kwargs):
        kwargs.setdefault("form", forms.TokenForm())
        return super().get_context_data(tokens=visible_tokens(self.tenant_context), **kwargs)

    def post(self, request, *args, **kwargs):
        form = forms.TokenForm(request.POST)
        if not form.is_valid():
            return self.render_invalid(form=form)
        token, plaintext = services.create_api_token(
            self.tenant_context, form.cleaned_data["name"], form.cleaned_data["expires_at"]
        )
        # Kept only until the next page shows it; never stored anywhere else.
        request.session[NEW_TOKEN_SESSION_KEY] = {"id": token.pk, "plaintext": plaintext}
        return redirect("portal:account-token-created")


class TokenCreatedPage(AccountPage):
    """Shows a new token's plaintext exactly once, then forgets it."""

    template_name = "portal/account/token_created.html"
    section = "tokens"

    def get(self, request, *args, **kwargs):
        new = request.session.pop(NEW_TOKEN_SESSION_KEY, None)
        token = None
        if new is not None:
            token = visible_tokens(self.tenant_context).filter(pk=new["id"]).first()
        if token is None:
            messages.info(request, _("A token is shown only once, right after it is created."))
            return redirect("portal:account-tokens")
        response = self.render_to_response(
            self.get_context_data(token=token, plaintext=new["plaintext"])
        )
        response["Cache-Control"] = "no-store"
        return response


class RevokeToken(AccountPage):
    http_method_names = ["post"]

    def post(self, request, pk: int):
        token = get_object_or_404(visible_tokens(self.tenant_context), pk=pk)
        services.revoke_api_token(self.tenant_context, token)
        messages.success(request, _("Token “%(name)s” revoked.") % {"name": token.name})
        return redirect("portal:account-tokens")


class MembersPage(AccountPage):
    template_name = "portal/account/members.html"
    section = "members"

    def get_context_data(self, **kwargs):
        if self.tenant_context.is_admin:
            kwargs.setdefault("form", forms.AddMemberForm())
        members = Membership.objects.for_tenant(self.tenant_context.tenant).select_related("user")
        return super().get_context_data(
            members=members,
            roles=Membership.Role.choices,
            is_admin=self.tenant_context.is_admin,
            me=self.tenant_context.membership,
            **kwargs,
        )

    def post(self, request, *args, **kwargs):
        form = forms.AddMemberForm(request.POST)
        if not form.is_valid():
            return self.render_invalid(form=form)
        try:
            membership = services.add_member(
                self.tenant_context, form.cleaned_data["email"], form.cleaned_data["role"]
            )
        except (exceptions.UserNotFound, exceptions.AlreadyMember) as error:
            form.add_error("email", refusal(error))
            return self.render_invalid(form=form)
        except exceptions.RoleForbidden as error:
            form.add_error("role", refusal(error))
            return self.render_invalid(form=form)
        messages.success(
            request, _("%(email)s added to the organisation.") % {"email": membership.user.email}
        )
        return redirect("portal:account-members")


class MemberAction(AccountPage):
    http_method_names = ["post"]

    def membership(self, pk: int) -> Membership:
        members = Membership.objects.for_tenant(self.tenant_context.tenant).select_related("user")
        return get_object_or_404(members, pk=pk)


class ChangeRole(MemberAction):
    def post(self, request, pk: int):
        membership = self.membership(pk)
        form = forms.RoleForm(request.POST)
        if not form.is_valid():
            messages.error(request, _("Choose one of the roles."))
            return redirect("portal:account-members")
        try:
            services.change_role(self.tenant_context, membership, form.cleaned_data["role"])
        except (exceptions.RoleForbidden, exceptions.LastOwner) as error:
            messages.error(request, refusal(error))
        else:
            messages.success(
                request,
                _("%(email)s is now %(role)s.")
                % {
                    "email": membership.user.email,
                    "role": Membership.Role(form.cleaned_data["role"]).label,
                },
            )
        return redirect("portal:account-members")


class RemoveMember(MemberAction):
    def post(self, request, pk: int):
        membership = self.membership(pk)
        is_self = membership.pk == self.tenant_context.membership.pk
        try:
            services.remove_member(self.tenant_context, membership)
        except (exceptions.RoleForbidden, exceptions.LastOwner) as error:
            messages.error(request, refusal(error))
            return redirect("portal:account-members")
        if is_self:
            messages.success(request, _("You left the organisation."))
            return redirect("portal:dashboard")
        removed = _("%(email)s removed from the organisation.")
        messages.success(request, removed % {"email": membership.user.email})
        return redirect("portal:account-members")
