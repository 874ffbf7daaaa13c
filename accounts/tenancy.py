"""The one place API views scope customer data to the caller's tenant."""

from rest_framework import viewsets

from accounts.context import TenantContext


class TenantScopedViewSet(viewsets.GenericViewSet):
    """Base of every customer-data viewset: rows of other tenants do not exist (404)."""

    @property
    def context(self) -> TenantContext:
        return self.request.auth

    def get_queryset(self):
        queryset = super().get_queryset()
        if getattr(self, "swagger_fake_view", False):  # schema generation has no tenant
            return queryset.none()
        return queryset.for_tenant(self.context.tenant)
