"""What every portal page shares: a signed-in user acting for one tenant."""

from functools import cached_property

from django.contrib.auth.mixins import LoginRequiredMixin
from django.views.generic import TemplateView

from accounts.authentication import context_for_session
from accounts.context import TenantContext


class PortalPage(LoginRequiredMixin, TemplateView):
    """A page of the portal. `self.tenant_context` scopes every query to the session's tenant.

    `nav` names the menu entry the page highlights.
    """

    nav = ""

    @cached_property
    def tenant_context(self) -> TenantContext:
        return context_for_session(self.request)

    def get_context_data(self, **kwargs):
        return super().get_context_data(nav=self.nav, tenant=self.tenant_context.tenant, **kwargs)
