"""What every portal page shares: a signed-in user acting for one tenant."""

from functools import cached_property

from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied
from django.views.generic import TemplateView

from accounts.authentication import context_for_session_user, request_ip
from accounts.context import TenantContext
from accounts.services import SESSION_TENANT_KEY


def tenant_context(request) -> TenantContext:
    """The tenant the session acts for (chosen at login), as the API's session auth sees it."""
    context = context_for_session_user(
        request.user, request.session.get(SESSION_TENANT_KEY), request_ip(request)
    )
    if context is None:  # a user without any organisation left
        raise PermissionDenied("You are not a member of any organisation.")
    return context


class PortalPage(LoginRequiredMixin, TemplateView):
    """A page of the portal. `self.tenant_context` scopes every query to the session's tenant.

    `nav` names the menu entry the page highlights.
    """

    nav = ""

    @cached_property
    def tenant_context(self) -> TenantContext:
        return tenant_context(self.request)

    def get_context_data(self, **kwargs):
        return super().get_context_data(nav=self.nav, tenant=self.tenant_context.tenant, **kwargs)


class DashboardPage(PortalPage):
    template_name = "portal/dashboard.html"
    nav = "dashboard"
