"""Who is calling, for which tenant: what authentication hands to views and services."""

from dataclasses import dataclass

from accounts.models import ApiToken, Membership, Tenant, User


@dataclass(frozen=True)
class TenantContext:
    """The request's tenant and the caller's membership in it (DRF's `request.auth`)."""

    membership: Membership
    token: ApiToken | None = None
    ip: str | None = None

    @property
    def tenant(self) -> Tenant:
        return self.membership.tenant

    @property
    def user(self) -> User:
        return self.membership.user

    @property
    def role(self) -> str:
        return self.membership.role

    @property
    def is_admin(self) -> bool:
        return self.membership.is_admin

    @property
    def is_owner(self) -> bool:
        return self.membership.role == Membership.Role.OWNER
