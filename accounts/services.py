"""Every change to accounts goes through these functions: one transaction, one audit row."""

from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth import authenticate, login, logout, password_validation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts import exceptions, two_factor
from accounts.context import TenantContext
from accounts.models import (
    ApiToken,
    AuditLog,
    Membership,
    SshKey,
    Tenant,
    TenantSettings,
    User,
    normalize_email,
)
from accounts.signals import tenant_created
from accounts.ssh_keys import ParsedSshKey
from accounts.tokens import display_prefix, hash_token, new_token_secret

SESSION_TENANT_KEY = "dumont_tenant_id"


def record_audit(
    action: str,
    *,
    tenant: Tenant | None,
    actor: User | None,
    ip: str | None,
    target: str = "",
    actor_email: str = "",
    **metadata,
) -> AuditLog:
    """Append one audit entry (inside the caller's transaction)."""
    return AuditLog.objects.create(
        tenant=tenant,
        actor=actor,
        actor_email=actor.email if actor else actor_email,
        action=action,
        target=target[:200],
        ip=ip,
        metadata=metadata,
    )


# --- Sign-up and sessions ------------------------------------------------------------------------


@dataclass(frozen=True)
class SignupResult:
    user: User
    tenant: Tenant
    token: ApiToken | None
    token_plaintext: str | None


def create_tenant(name: str, owner: User) -> Tenant:
    """Create an organisation with `owner` as its first owner and default settings."""
    tenant = Tenant.objects.create(name=name)
    Membership.objects.create(user=owner, tenant=tenant, role=Membership.Role.OWNER)
    TenantSettings.objects.create(tenant=tenant)
    tenant_created.send(sender=Tenant, tenant=tenant, owner=owner)
    return tenant


def sign_up(
    email: str, password: str, organization: str, *, ip: str | None, first_token: bool = True
) -> SignupResult:
    """Create the user, their organisation, the owner membership and (API) a first API token.

    The portal passes first_token=False: a browser has no use for a token it cannot show again.
    """
    email = normalize_email(email)
    candidate = User(email=email)
    try:
        password_validation.validate_password(password, user=candidate)
    except DjangoValidationError as error:
        raise exceptions.WeakPassword(" ".join(error.messages)) from error
    if User.objects.filter(email__iexact=email).exists():
        raise exceptions.EmailTaken()
    token, plaintext = None, None
    try:
        with transaction.atomic():
            user = User.objects.create_user(email, password)
            tenant = create_tenant(organization, user)
            record_audit(
                AuditLog.Action.SIGNUP, tenant=tenant, actor=user, ip=ip, target=tenant.name
            )
            if first_token:
                token, plaintext = _issue_token(tenant, user, "First token", expires_at=None)
                record_audit(
                    AuditLog.Action.TOKEN_CREATED,
                    tenant=tenant,
                    actor=user,
                    ip=ip,
                    target=token.name,
                    token_id=token.pk,
                )
    except IntegrityError as error:
        # Two sign-ups with one e-mail raced past the check above; the unique index decided.
        raise exceptions.EmailTaken() from error
    return SignupResult(user, tenant, token, plaintext)


def log_in(
    request, email: str, password: str, *, ip: str | None, otp: str | None = None
) -> Membership:
    """Check the password (and the second factor if the user has one), start a session.

    Audits both ways. A user with two-factor authentication must send `otp`: a code of their
    authenticator app or one of their recovery codes (each works once).
    """
    email = normalize_email(email)
    user = authenticate(request, username=email, password=password)
    membership = first_membership(user) if user is not None else None
    if membership is None:
        record_failed_login(email, ip=ip)
        raise exceptions.InvalidCredentials()
    if two_factor.is_enabled(user):
        if not otp:
            raise exceptions.OtpRequired()
        if not two_factor.verify_code(user, otp):
            record_failed_login(email, ip=ip, reason="invalid_otp")
            raise exceptions.InvalidOtp()
    login(request, user)
    start_session(request, user, ip=ip)
    return membership


def first_membership(user: User) -> Membership | None:
    """The organisation a new session acts for: the user's first."""
    return Membership.objects.select_related("tenant", "user").filter(user=user).first()


def start_session(request, user: User, *, ip: str | None) -> Membership | None:
    """After Django's login (API or portal): pick the session's tenant and audit the login."""
    membership = first_membership(user)
    if membership is None:  # someone removed from every organisation: no tenant to act for
        return None
    request.session[SESSION_TENANT_KEY] = membership.tenant_id
    record_audit(AuditLog.Action.LOGIN, tenant=membership.tenant, actor=user, ip=ip)
    return membership


def record_failed_login(email: str, *, ip: str | None, reason: str = "") -> None:
    """Audit a refused login (wrong password, unknown e-mail, wrong second factor)."""
    metadata = {"reason": reason} if reason else {}
    record_audit(
        AuditLog.Action.LOGIN_FAILED,
        tenant=None,
        actor=None,
        ip=ip,
        actor_email=normalize_email(email)[:254],
        **metadata,
    )


def log_out(request, context: TenantContext | None) -> None:
    """End the session."""
    if context is not None:
        record_audit(
            AuditLog.Action.LOGOUT, tenant=context.tenant, actor=context.user, ip=context.ip
        )
    logout(request)


# --- API tokens ------------------------------------------------------------------------------


def _issue_token(
    tenant: Tenant, user: User, name: str, *, expires_at: datetime | None
) -> tuple[ApiToken, str]:
    plaintext = new_token_secret()
    token = ApiToken.objects.create(
        tenant=tenant,
        user=user,
        name=name,
        token_hash=hash_token(plaintext),
        prefix=display_prefix(plaintext),
        expires_at=expires_at,
    )
    return token, plaintext


@transaction.atomic
def create_api_token(
    context: TenantContext, name: str, expires_at: datetime | None = None
) -> tuple[ApiToken, str]:
    """Issue a token for the caller in the current tenant; returns it with its only plaintext."""
    token, plaintext = _issue_token(context.tenant, context.user, name, expires_at=expires_at)
    record_audit(
        AuditLog.Action.TOKEN_CREATED,
        tenant=context.tenant,
        actor=context.user,
        ip=context.ip,
        target=name,
        token_id=token.pk,
    )
    return token, plaintext


@transaction.atomic
def revoke_api_token(context: TenantContext, token: ApiToken) -> None:
    """Revoke a token at once; revoking twice changes nothing."""
    revoked = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    if revoked:
        record_audit(
            AuditLog.Action.TOKEN_REVOKED,
            tenant=context.tenant,
            actor=context.user,
            ip=context.ip,
            target=token.name,
            token_id=token.pk,
        )


# --- SSH keys --------------------------------------------------------------------------------


def add_ssh_key(context: TenantContext, name: str, parsed: ParsedSshKey) -> SshKey:
    """Register a validated public key for the tenant; the same key twice is refused."""
    try:
        with transaction.atomic():
            key = SshKey.objects.create(
                tenant=context.tenant,
                name=name,
                public_key=parsed.normalized,
                key_type=parsed.key_type,
                bits=parsed.bits,
                fingerprint=parsed.fingerprint,
            )
            record_audit(
                AuditLog.Action.SSH_KEY_ADDED,
                tenant=context.tenant,
                actor=context.user,
                ip=context.ip,
                target=name,
                fingerprint=parsed.fingerprint,
            )
    except IntegrityError as error:
        raise exceptions.DuplicateSshKey() from error
    return key


@transaction.atomic
def remove_ssh_key(context: TenantContext, key: SshKey) -> None:
    """Delete a key from the tenant."""
    record_audit(
        AuditLog.Action.SSH_KEY_REMOVED,
        tenant=context.tenant,
        actor=context.user,
        ip=context.ip,
        target=key.name,
        fingerprint=key.fingerprint,
    )
    key.delete()


# --- Members and roles -------------------------------------------------------------------------


def _lock_tenant(tenant: Tenant) -> None:
    # Serialises membership changes of one tenant so two admins cannot remove the last
    # two owners at the same time.
    Tenant.objects.select_for_update().filter(pk=tenant.pk).first()


def _require_admin(context: TenantContext, role: str | None = None) -> None:
    if not context.is_admin:
        raise exceptions.RoleForbidden("Only owners and admins can manage members.")
    if role == Membership.Role.OWNER and not context.is_owner:
        raise exceptions.RoleForbidden("Only an owner can grant or remove the owner role.")


def _other_owners_exist(membership: Membership) -> bool:
    return (
        Membership.objects.for_tenant(membership.tenant_id)
        .filter(role=Membership.Role.OWNER)
        .exclude(pk=membership.pk)
        .exists()
    )


@transaction.atomic
def add_member(context: TenantContext, email: str, role: str) -> Membership:
    """Add an existing account to the tenant with `role`."""
    _require_admin(context, role)
    _lock_tenant(context.tenant)
    user = User.objects.filter(email__iexact=normalize_email(email)).first()
    if user is None:
        raise exceptions.UserNotFound()
    if Membership.objects.filter(user=user, tenant=context.tenant).exists():
        raise exceptions.AlreadyMember()
    membership = Membership.objects.create(user=user, tenant=context.tenant, role=role)
    record_audit(
        AuditLog.Action.MEMBER_ADDED,
        tenant=context.tenant,
        actor=context.user,
        ip=context.ip,
        target=user.email,
        role=role,
    )
    return membership


@transaction.atomic
def change_role(context: TenantContext, membership: Membership, role: str) -> Membership:
    """Change a member's role; owners are changed only by owners and one always remains."""
    is_owner_change = Membership.Role.OWNER in (role, membership.role)
    _require_admin(context, Membership.Role.OWNER if is_owner_change else role)
    _lock_tenant(context.tenant)
    membership.refresh_from_db()
    if membership.role == role:
        return membership
    if membership.role == Membership.Role.OWNER and not _other_owners_exist(membership):
        raise exceptions.LastOwner()
    previous = membership.role
    membership.role = role
    membership.save(update_fields=["role"])
    record_audit(
        AuditLog.Action.ROLE_CHANGED,
        tenant=context.tenant,
        actor=context.user,
        ip=context.ip,
        target=membership.user.email,
        previous=previous,
        role=role,
    )
    return membership


@transaction.atomic
def remove_member(context: TenantContext, membership: Membership) -> None:
    """Remove someone from the tenant (anyone may leave) and revoke their tokens there."""
    is_self = membership.pk == context.membership.pk
    if not is_self:
        _require_admin(context, membership.role)
    _lock_tenant(context.tenant)
    if membership.role == Membership.Role.OWNER and not _other_owners_exist(membership):
        raise exceptions.LastOwner()
    ApiToken.objects.for_tenant(context.tenant).filter(
        user_id=membership.user_id, revoked_at__isnull=True
    ).update(revoked_at=timezone.now())
    record_audit(
        AuditLog.Action.MEMBER_REMOVED,
        tenant=context.tenant,
        actor=context.user,
        ip=context.ip,
        target=membership.user.email,
        role=membership.role,
    )
    membership.delete()


# --- Settings --------------------------------------------------------------------------------


def settings_of(tenant: Tenant) -> TenantSettings:
    """The tenant's settings row (created with defaults for tenants made in the admin)."""
    tenant_settings, _ = TenantSettings.objects.get_or_create(tenant=tenant)
    return tenant_settings


@transaction.atomic
def update_standby_settings(context: TenantContext, **changes) -> TenantSettings:
    """Change the Standby Config (auto-hibernate, idle threshold, idle minutes)."""
    if not context.is_admin:
        raise exceptions.RoleForbidden("Only owners and admins can change settings.")
    tenant_settings = TenantSettings.objects.select_for_update().get(
        pk=settings_of(context.tenant).pk
    )
    before = {field: getattr(tenant_settings, field) for field in changes}
    for field, value in changes.items():
        setattr(tenant_settings, field, value)
    tenant_settings.save()
    record_audit(
        AuditLog.Action.SETTINGS_CHANGED,
        tenant=context.tenant,
        actor=context.user,
        ip=context.ip,
        target="standby",
        before=before,
        after=changes,
    )
    return tenant_settings
