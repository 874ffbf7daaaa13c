"""DRF authentication: `Authorization: Bearer dmt_...` tokens and portal sessions.

Both put a TenantContext in `request.auth`: which tenant the call acts for and the caller's role.
"""

from datetime import timedelta

from django.core.exceptions import PermissionDenied
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext
from rest_framework.authentication import (
    BaseAuthentication,
    SessionAuthentication,
    get_authorization_header,
)
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.throttling import BaseThrottle

from accounts.context import TenantContext
from accounts.models import ApiToken, Membership, User
from accounts.services import SESSION_TENANT_KEY
from accounts.tokens import TOKEN_PREFIX, hash_token

# Writing last_used_at on every request would turn each read into a write; a minute is
# precise enough to tell a person whether a token is still in use.
LAST_USED_PRECISION = timedelta(minutes=1)
MEMBERSHIP = ["id", "user_id", "tenant_id", "role", "created_at"]  # its fields, for from_db


def request_ip(request) -> str | None:
    """The client address, honouring NUM_PROXIES like DRF's throttles do."""
    return BaseThrottle().get_ident(request) or None


def context_for_token(plaintext: str, ip: str | None = None) -> TenantContext | None:
    """The tenant context of a live token, or None when it is unknown, revoked or expired, or
    its user is inactive or no longer a member of the token's tenant. One query: the token
    with its user, tenant and that membership (every API request pays for it)."""
    if not plaintext.startswith(TOKEN_PREFIX):
        return None
    token = (
        ApiToken.objects.active()
        .filter(
            token_hash=hash_token(plaintext),
            user__is_active=True,
            user__memberships__tenant=F("tenant"),
        )
        .select_related("user", "tenant")
        .annotate(**{f"membership_{name}": F(f"user__memberships__{name}") for name in MEMBERSHIP})
        .first()
    )
    if token is None:
        return None
    membership = Membership.from_db(
        token._state.db, MEMBERSHIP, [getattr(token, f"membership_{name}") for name in MEMBERSHIP]
    )
    membership.user, membership.tenant = token.user, token.tenant
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_PRECISION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return TenantContext(membership=membership, token=token, ip=ip)


def context_for_session_user(user: User, tenant_id: int | None, ip: str | None = None):
    """The membership a portal session acts as: the tenant chosen at login, else the first."""
    memberships = Membership.objects.select_related("tenant", "user").filter(user=user)
    membership = (tenant_id and memberships.filter(tenant_id=tenant_id).first()) or (
        memberships.first()
    )
    return TenantContext(membership=membership, ip=ip) if membership else None


def context_for_session(request) -> TenantContext:
    """The tenant a signed-in browser session acts for (web pages); 403 without any membership."""
    context = context_for_session_user(
        request.user, request.session.get(SESSION_TENANT_KEY), request_ip(request)
    )
    if context is None:  # a user without any organisation left
        raise PermissionDenied(gettext("You are not a member of any organisation."))
    return context


class ApiTokenAuthentication(BaseAuthentication):
    """`Authorization: Bearer dmt_...`."""

    def authenticate(self, request):
        header = get_authorization_header(request).split()
        if not header or header[0].lower() != b"bearer":
            return None
        if len(header) != 2:
            raise AuthenticationFailed(
                "Send exactly one token: 'Authorization: Bearer dmt_...'.", code="invalid_token"
            )
        plaintext = header[1].decode("ascii", errors="replace")
        context = context_for_token(plaintext, request_ip(request))
        if context is None:
            raise AuthenticationFailed("Invalid, expired or revoked token.", code="invalid_token")
        return context.user, context

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'


class TenantSessionAuthentication(SessionAuthentication):
    """The portal's session cookie (CSRF enforced on unsafe methods)."""

    def authenticate(self, request):
        result = super().authenticate(request)
        if result is None:
            return None
        user = result[0]
        tenant_id = request._request.session.get(SESSION_TENANT_KEY)
        return user, context_for_session_user(user, tenant_id, request_ip(request))
