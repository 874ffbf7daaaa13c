"""The dashboard (a card per instance, live), an instance's page, and the actions on an instance.

Every query goes through the session's tenant; another tenant's instance is a 404 like a
missing one. Each action calls the service the API's view calls (instances/moves.py,
snapshots/services.py); their refusals become a sentence for the reader.
"""

from functools import cached_property

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from dumont.exceptions import DumontError
from instances import moves
from instances.api.views import actor_of
from instances.models import Failover, Instance, InstanceEvent
from portal.instances import facts
from portal.instances.forms import SnapshotForm
from portal.instances.refusals import refusal
from portal.views import PortalPage
from snapshots import services as snapshot_services
from snapshots.models import Snapshot

TIMELINE_EVENTS = 50  # the newest events on an instance's page; the API has them all


class DashboardPage(PortalPage):
    template_name = "portal/instances/dashboard.html"
    nav = "dashboard"

    def get_context_data(self, **kwargs):
        tenant = self.tenant_context.tenant
        instances = list(facts.instances_for_cards(tenant).live().order_by("-created_at", "id"))
        return super().get_context_data(
            cards=facts.cards(tenant, instances, timezone.now()), **kwargs
        )


class CardsPartial(DashboardPage):
    """Every card again, for htmx: an instance the page does not show yet has appeared."""

    template_name = "portal/instances/cards.html"


class InstancePage(PortalPage):
    """A page or partial about one of the tenant's instances (`pk` in the URL)."""

    nav = "dashboard"

    @cached_property
    def instance(self) -> Instance:
        tenant = self.tenant_context.tenant
        return get_object_or_404(facts.instances_for_cards(tenant), pk=self.kwargs["pk"])

    def card(self) -> facts.Card:
        return facts.cards(self.tenant_context.tenant, [self.instance], timezone.now())[0]


class CardPartial(InstancePage):
    """One card, for htmx after a live event; a deleted instance leaves the dashboard."""

    template_name = "portal/instances/card.html"

    def get(self, request, *args, **kwargs):
        if self.instance.status == Instance.Status.DELETED:
            return HttpResponse("")
        return self.render_to_response(self.get_context_data(card=self.card()))


class DetailPage(InstancePage):
    template_name = "portal/instances/detail.html"

    def get_context_data(self, **kwargs):
        tenant, instance = self.tenant_context.tenant, self.instance
        events = InstanceEvent.objects.for_tenant(tenant).filter(instance=instance)
        snapshots = (
            Snapshot.objects.for_tenant(tenant)
            .filter(instance=instance)
            .exclude(status=Snapshot.Status.DELETED)
        )
        events = list(events.order_by("-created_at", "-id")[:TIMELINE_EVENTS])
        for event in events:
            event.from_label = facts.status_label(event.from_status)
            event.to_label = facts.status_label(event.to_status)
        failovers = list(Failover.objects.for_tenant(tenant).filter(instance=instance))
        for failover in failovers:
            failover.status_label = facts.FAILOVER_STATUS_LABELS.get(failover.status)
        kwargs.setdefault("snapshot_form", SnapshotForm())
        return super().get_context_data(
            card=self.card(),
            events=events,
            failovers=failovers,
            snapshots=[facts.SnapshotRow(snapshot) for snapshot in snapshots],
            **kwargs,
        )


class DetailLivePartial(DetailPage):
    """The parts of an instance's page that live events change: facts, timeline, snapshots."""

    template_name = "portal/instances/detail_live.html"


def _back(request, fallback: str):
    target = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return redirect(target)
    return redirect(fallback)


ACTIONS = {
    "hibernate": (moves.hibernate_instance, gettext_lazy("Hibernating “%(name)s”.")),
    "wake": (moves.wake_instance, gettext_lazy("Waking “%(name)s”.")),
    "delete": (moves.delete_instance, gettext_lazy("Deleting “%(name)s”.")),
}


class InstanceAction(InstancePage):
    """POST hibernate, wake or delete. htmx gets the card back (with the refusal, if any);
    a plain form post is redirected back with a message."""

    http_method_names = ["post"]
    template_name = "portal/instances/card.html"

    def post(self, request, pk: str, action: str):
        if action not in ACTIONS:
            raise Http404()
        service, done = ACTIONS[action]
        instance = self.instance
        error = ""
        try:
            service(instance, actor=actor_of(self.tenant_context))
        except DumontError as refused:
            error = refusal(refused)
        if request.htmx:
            instance.refresh_from_db()
            return self.render_to_response(self.get_context_data(card=self.card(), error=error))
        if error:
            messages.error(request, error)
        else:
            messages.success(request, str(done) % {"name": instance.name})
        return _back(request, "portal:dashboard")


class TakeSnapshot(DetailPage):
    http_method_names = ["post"]

    def post(self, request, pk: str):
        instance = self.instance
        form = SnapshotForm(request.POST)
        if not form.is_valid():
            return self.render_to_response(self.get_context_data(snapshot_form=form), status=400)
        try:
            snapshot = snapshot_services.create_snapshot(instance, name=form.cleaned_data["name"])
        except DumontError as refused:
            messages.error(request, refusal(refused))
        else:
            messages.success(request, _("Snapshot “%(name)s” started.") % {"name": snapshot.name})
        return redirect("portal:instance", pk=instance.pk)
