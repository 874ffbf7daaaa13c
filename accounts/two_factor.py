"""Two-factor authentication, kept by django-allauth's `mfa` app (TOTP and recovery codes).

The portal's sign-in asks for the second factor through allauth's own login stage; the API's
password login (accounts.services.log_in) checks it here, so a password alone never opens a
session for someone who turned 2FA on.
"""

from allauth.mfa.models import Authenticator

from accounts.models import User

# WebAuthn cannot check a typed code; the settings only allow TOTP and recovery codes anyway.
_CODE_TYPES = (Authenticator.Type.TOTP, Authenticator.Type.RECOVERY_CODES)


def is_enabled(user: User) -> bool:
    """Whether the user turned on an authenticator app (recovery codes alone do not count)."""
    return Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()


def verify_code(user: User, code: str) -> bool:
    """Accept a current TOTP code or an unused recovery code (which is then spent).

    allauth refuses a TOTP code that was already accepted within its period, so a code seen
    on the wire cannot be replayed.
    """
    code = code.strip()
    for authenticator in Authenticator.objects.filter(user=user, type__in=_CODE_TYPES):
        if authenticator.wrap().validate_code(code):
            authenticator.record_usage()
            return True
    return False
