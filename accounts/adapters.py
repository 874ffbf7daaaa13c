"""django-allauth hooks: browser sessions start, end and fail exactly like the API's.

allauth runs the portal's sign-in pages (password, e-mail verification, the TOTP stage); these
hooks make its sessions act for a tenant and write the same audit rows as accounts.services.
"""

from allauth.account.adapter import DefaultAccountAdapter

from accounts import services
from accounts.authentication import context_for_session_user, request_ip


class AccountAdapter(DefaultAccountAdapter):
    def login(self, request, user) -> None:
        """Called once every login stage (verified e-mail, second factor) has passed."""
        super().login(request, user)
        services.start_session(request, user, ip=request_ip(request))

    def logout(self, request) -> None:
        context = None
        if request.user.is_authenticated:
            context = context_for_session_user(
                request.user, request.session.get(services.SESSION_TENANT_KEY), request_ip(request)
            )
        services.log_out(request, context)

    def authentication_failed(self, request, **credentials) -> None:
        super().authentication_failed(request, **credentials)
        services.record_failed_login(credentials.get("email", ""), ip=request_ip(request))


def audit_failed_second_factor(sender, request, user, reauthentication=False, **kwargs) -> None:
    """allauth.mfa's authentication_failed: a wrong code at the portal's 2FA step."""
    if not reauthentication:
        services.record_failed_login(user.email, ip=request_ip(request), reason="invalid_otp")
