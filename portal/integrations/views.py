"""Portal pages: Standby Config (auto-hibernation) and webhooks with their delivery log.

They call the services the API calls (accounts.services.update_standby_settings,
webhooks.services): owners and admins change things, members read.
"""

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts import services as accounts_services
from accounts.exceptions import RoleForbidden
from portal.integrations.forms import StandbyForm, WebhookForm
from portal.views import PortalPage
from webhooks import services as webhook_services
from webhooks.events import Event
from webhooks.exceptions import (
    EndpointInactive,
    InvalidUrl,
    TooManyEndpoints,
    UnknownEvent,
    UrlNotAllowed,
)
from webhooks.models import WebhookDelivery, WebhookEndpoint

DELIVERIES_PER_PAGE = 25
# The signing secret of a new endpoint waits here for the one page view that shows it.
SECRET_SESSION_KEY = "webhook_secret_once"
DELIVERY_LOG_FIELDS = [
    "id",
    "endpoint_id",
    "event",
    "status",
    "attempt_count",
    "next_attempt_at",
    "last_attempt_at",
    "response_status_code",
    "last_error",
    "created_at",
    "delivered_at",
]


class SettingsPage(PortalPage):
    nav = "settings"
    section = ""

    def get_context_data(self, **kwargs):
        return super().get_context_data(
            section=self.section, is_admin=self.tenant_context.is_admin, **kwargs
        )

    def require_admin(self) -> None:
        if not self.tenant_context.is_admin:
            raise PermissionDenied(_("Only owners and admins can change this."))


class StandbyPage(SettingsPage):
    template_name = "portal/integrations/standby.html"
    section = "standby"

    def form(self, data=None) -> StandbyForm:
        current = accounts_services.settings_of(self.tenant_context.tenant)
        return StandbyForm(data, instance=current, is_read_only=not self.tenant_context.is_admin)

    def get_context_data(self, **kwargs):
        kwargs.setdefault("form", self.form())
        return super().get_context_data(**kwargs)

    def post(self, request, *args, **kwargs):
        self.require_admin()
        form = self.form(request.POST)
        if not form.is_valid():
            return self.render_to_response(self.get_context_data(form=form), status=400)
        try:
            accounts_services.update_standby_settings(self.tenant_context, **form.cleaned_data)
        except RoleForbidden as error:  # demoted since the check above
            raise PermissionDenied(error.detail) from error
        messages.success(request, _("Standby Config saved."))
        return redirect("portal:integrations-standby")


def _apply_service_errors(form: WebhookForm, change) -> WebhookEndpoint | None:
    """Run `change()` (a webhooks service call); its domain errors become the form's errors."""
    try:
        return change()
    except (InvalidUrl, UrlNotAllowed) as error:
        form.add_error("url", error.detail)
    except UnknownEvent as error:
        form.add_error("events", error.detail)
    except TooManyEndpoints as error:
        form.add_error(None, error.detail)
    except RoleForbidden as error:
        raise PermissionDenied(error.detail) from error
    return None


class WebhookListPage(SettingsPage):
    template_name = "portal/integrations/webhooks.html"
    section = "webhooks"

    def get_context_data(self, **kwargs):
        endpoints = WebhookEndpoint.objects.for_tenant(self.tenant_context.tenant).order_by(
            "created_at", "id"
        )
        kwargs.setdefault("form", WebhookForm())
        return super().get_context_data(endpoints=endpoints, **kwargs)

    def post(self, request, *args, **kwargs):
        self.require_admin()
        form = WebhookForm(request.POST)
        endpoint = form.is_valid() and _apply_service_errors(
            form, lambda: webhook_services.create_endpoint(self.tenant_context, **form.cleaned_data)
        )
        if not endpoint:
            return self.render_to_response(self.get_context_data(form=form), status=400)
        request.session[SECRET_SESSION_KEY] = {"id": endpoint.pk, "secret": endpoint.secret}
        messages.success(request, _("Webhook endpoint created."))
        return redirect("portal:integrations-webhook", pk=endpoint.pk)


class EndpointPage(SettingsPage):
    section = "webhooks"

    def get_endpoint(self) -> WebhookEndpoint:
        endpoint = (
            WebhookEndpoint.objects.for_tenant(self.tenant_context.tenant)
            .filter(pk=self.kwargs["pk"])
            .first()
        )
        if endpoint is None:
            raise Http404(_("No such webhook endpoint."))
        return endpoint


class WebhookPage(EndpointPage):
    """One endpoint: its settings, its actions and its delivery log (paginated)."""

    template_name = "portal/integrations/webhook.html"

    def get_context_data(self, **kwargs):
        endpoint = self.get_endpoint()
        log = (
            WebhookDelivery.objects.for_tenant(self.tenant_context.tenant)
            .filter(endpoint=endpoint)
            .only(*DELIVERY_LOG_FIELDS)
            .order_by("-created_at", "-id")
        )
        page = Paginator(log, DELIVERIES_PER_PAGE).get_page(self.request.GET.get("page"))
        shown_once = self.request.session.get(SECRET_SESSION_KEY)
        secret = None
        if shown_once and shown_once.get("id") == endpoint.pk:
            secret = shown_once["secret"]
            del self.request.session[SECRET_SESSION_KEY]
        kwargs.setdefault(
            "edit_form",
            WebhookForm(
                initial={
                    "url": endpoint.url,
                    "description": endpoint.description,
                    "events": endpoint.events,
                }
            ),
        )
        return super().get_context_data(
            endpoint=endpoint,
            event_labels=_event_labels(endpoint.events),
            page=page,
            deliveries=page.object_list,
            secret=secret,
            **kwargs,
        )


class EditWebhook(WebhookPage):
    """Change an endpoint's URL, description and events (its page again on errors)."""

    http_method_names = ["post"]

    def post(self, request, *args, **kwargs):
        self.require_admin()
        endpoint = self.get_endpoint()
        form = WebhookForm(request.POST)
        updated = form.is_valid() and _apply_service_errors(
            form,
            lambda: webhook_services.update_endpoint(
                self.tenant_context, endpoint, **form.cleaned_data
            ),
        )
        if not updated:
            context = self.get_context_data(edit_form=form, is_editing=True)
            return self.render_to_response(context, status=400)
        messages.success(request, _("Endpoint saved."))
        return redirect("portal:integrations-webhook", pk=endpoint.pk)


def _event_labels(names: list[str]) -> list[str]:
    labels = dict(Event.choices)
    return [str(labels.get(name, name)) for name in names]


class EndpointAction(EndpointPage):
    """A POST that changes one endpoint, then back to its page (or the list)."""

    http_method_names = ["post"]
    success_message = ""

    def post(self, request, *args, **kwargs):
        self.require_admin()
        endpoint = self.get_endpoint()
        try:
            target = self.act(endpoint)
        except EndpointInactive as error:
            messages.error(request, error.detail)
            return redirect("portal:integrations-webhook", pk=endpoint.pk)
        except RoleForbidden as error:
            raise PermissionDenied(error.detail) from error
        messages.success(request, self.success_message)
        return target

    def act(self, endpoint: WebhookEndpoint):
        raise NotImplementedError


class ToggleWebhook(EndpointAction):
    def act(self, endpoint):
        endpoint = webhook_services.update_endpoint(
            self.tenant_context, endpoint, is_active=not endpoint.is_active
        )
        self.success_message = (
            _("Endpoint enabled.") if endpoint.is_active else _("Endpoint disabled.")
        )
        return redirect("portal:integrations-webhook", pk=endpoint.pk)


class TestWebhook(EndpointAction):
    success_message = gettext_lazy("Test event queued: it appears in the delivery log below.")

    def act(self, endpoint):
        webhook_services.send_ping(self.tenant_context, endpoint)
        return redirect("portal:integrations-webhook", pk=endpoint.pk)


class RotateWebhookSecret(EndpointAction):
    success_message = gettext_lazy("New signing secret made; the old one no longer signs.")

    def act(self, endpoint):
        endpoint = webhook_services.rotate_secret(self.tenant_context, endpoint)
        self.request.session[SECRET_SESSION_KEY] = {"id": endpoint.pk, "secret": endpoint.secret}
        return redirect("portal:integrations-webhook", pk=endpoint.pk)


class DeleteWebhook(EndpointAction):
    success_message = gettext_lazy("Endpoint deleted with its delivery log.")

    def act(self, endpoint):
        webhook_services.delete_endpoint(self.tenant_context, endpoint)
        return redirect("portal:integrations-webhooks")
