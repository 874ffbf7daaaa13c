from rest_framework.permissions import BasePermission

from accounts.context import TenantContext


class IsTenantMember(BasePermission):
    """The default for every API view: the caller acts for a tenant they belong to."""

    message = "Authenticate with an API token or a session of a member of an organisation."

    def has_permission(self, request, view) -> bool:
        return isinstance(request.auth, TenantContext)
