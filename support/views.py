"""The customer's support pages (in the portal's frame): tickets, a new ticket, a conversation.

Every query is scoped to the session's tenant: another tenant's ticket is a 404.
"""

from functools import cached_property

from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect
from django.utils.translation import gettext as _
from django.views.generic import TemplateView

from accounts.authentication import context_for_session
from accounts.context import TenantContext
from support import services
from support.exceptions import TicketClosed
from support.forms import ReplyForm, TicketForm
from support.models import Ticket, TicketMessage

PAGE_SIZE = 25


class SupportPage(LoginRequiredMixin, TemplateView):
    """A portal page of the support area, acting for the session's tenant."""

    @cached_property
    def tenant_context(self) -> TenantContext:
        return context_for_session(self.request)

    def get_context_data(self, **kwargs):
        return super().get_context_data(nav="support", tenant=self.tenant_context.tenant, **kwargs)

    def tickets(self):
        return Ticket.objects.for_tenant(self.tenant_context.tenant)

    def get_ticket(self, pk: int) -> Ticket:
        ticket = self.tickets().filter(pk=pk).first()
        if ticket is None:
            raise Http404(_("No such ticket."))
        return ticket


class TicketListPage(SupportPage):
    template_name = "support/list.html"

    def get_context_data(self, **kwargs):
        paginator = Paginator(self.tickets().order_by("-created_at", "-id"), PAGE_SIZE)
        page = paginator.get_page(self.request.GET.get("page"))
        return super().get_context_data(page=page, tickets=page.object_list, **kwargs)


class NewTicketPage(SupportPage):
    template_name = "support/new.html"

    def get_context_data(self, **kwargs):
        kwargs.setdefault("form", TicketForm())
        return super().get_context_data(**kwargs)

    def post(self, request, *args, **kwargs):
        form = TicketForm(request.POST)
        if not form.is_valid():
            return self.render_to_response(self.get_context_data(form=form), status=400)
        ticket = services.open_ticket(self.tenant_context, **form.cleaned_data)
        messages.success(request, _("Ticket #%(id)s opened.") % {"id": ticket.pk})
        return redirect("portal:support-ticket", pk=ticket.pk)


class TicketPage(SupportPage):
    template_name = "support/detail.html"

    def get_context_data(self, **kwargs):
        ticket = self.get_ticket(self.kwargs["pk"])
        conversation = (
            TicketMessage.objects.for_tenant(ticket.tenant_id)
            .filter(ticket=ticket)
            .order_by("created_at", "id")
        )
        kwargs.setdefault("form", ReplyForm())
        return super().get_context_data(ticket=ticket, conversation=conversation, **kwargs)

    def post(self, request, *args, **kwargs):
        ticket = self.get_ticket(self.kwargs["pk"])
        form = ReplyForm(request.POST)
        if not form.is_valid():
            return self.render_to_response(self.get_context_data(form=form), status=400)
        try:
            services.reply(self.tenant_context, ticket, form.cleaned_data["body"])
        except TicketClosed as error:
            messages.error(request, error.detail)
        return redirect("portal:support-ticket", pk=ticket.pk)


class CloseTicketPage(SupportPage):
    http_method_names = ["post"]

    def post(self, request, *args, **kwargs):
        ticket = services.close(self.tenant_context, self.get_ticket(self.kwargs["pk"]))
        messages.success(request, _("Ticket #%(id)s closed.") % {"id": ticket.pk})
        return redirect("portal:support-ticket", pk=ticket.pk)
