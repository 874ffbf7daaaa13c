"""Snapshots: every snapshot of the tenant with its progress (live), delete, and restore into a
NEW instance with any GPU and region (snapshots/services.py, as /api/snapshots does)."""

from functools import cached_property

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.utils import timezone
from django.utils.translation import gettext as _

from billing.money import usd_to_micros
from dumont.exceptions import DumontError
from instances.api.views import actor_of
from instances.moves import InstanceRequest
from portal.instances import facts
from portal.instances.forms import RestoreForm
from portal.instances.refusals import refusal
from portal.instances.wizard import gpu_count_of, market_now
from portal.views import PortalPage
from snapshots import services
from snapshots.models import Snapshot
from spot.catalog import find_gpu

PAGE_SIZE = 20


def visible_snapshots(tenant):
    return (
        Snapshot.objects.for_tenant(tenant)
        .exclude(status=Snapshot.Status.DELETED)
        .select_related("instance")
    )


class SnapshotsPage(PortalPage):
    template_name = "portal/instances/snapshots.html"
    nav = "snapshots"

    def get_context_data(self, **kwargs):
        snapshots = visible_snapshots(self.tenant_context.tenant).order_by("-created_at", "id")
        page = Paginator(snapshots, PAGE_SIZE).get_page(self.request.GET.get("page"))
        return super().get_context_data(
            page=page, rows=[facts.SnapshotRow(snapshot) for snapshot in page], **kwargs
        )


class SnapshotListPartial(SnapshotsPage):
    """The list again for htmx: a snapshot was taken since the page was drawn."""

    template_name = "portal/instances/snapshot_list.html"


class SnapshotPage(PortalPage):
    """A page or partial about one of the tenant's snapshots (`pk` in the URL)."""

    nav = "snapshots"

    @cached_property
    def snapshot(self) -> Snapshot:
        return get_object_or_404(
            visible_snapshots(self.tenant_context.tenant), pk=self.kwargs["pk"]
        )


class SnapshotRowPartial(SnapshotPage):
    """One row for htmx after a live event; a snapshot deleted since leaves the list."""

    template_name = "portal/instances/snapshot_row.html"

    def get(self, request, *args, **kwargs):
        tenant = self.tenant_context.tenant
        snapshot = get_object_or_404(Snapshot.objects.for_tenant(tenant), pk=self.kwargs["pk"])
        if snapshot.status == Snapshot.Status.DELETED:
            return HttpResponse("")
        return super().get(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        kwargs.setdefault("row", facts.SnapshotRow(self.snapshot))
        return super().get_context_data(**kwargs)


class DeleteSnapshot(SnapshotRowPartial):
    """POST: htmx gets the row back (deleting, or with the refusal); a form post a redirect."""

    http_method_names = ["post"]

    def post(self, request, pk: str):
        snapshot, error = self.snapshot, ""
        try:
            snapshot = services.delete_snapshot(snapshot)
        except DumontError as refused:
            error = refusal(refused)
        if request.htmx:
            row = facts.SnapshotRow(snapshot)
            return self.render_to_response(self.get_context_data(row=row, error=error))
        if error:
            messages.error(request, error)
        else:
            messages.success(request, _("Snapshot “%(name)s” deleted.") % {"name": snapshot.name})
        return redirect("portal:snapshots")


class RestorePage(SnapshotPage):
    """Restore into a new instance: the snapshot's GPU and region to start from, any other."""

    template_name = "portal/instances/restore.html"

    def get_context_data(self, **kwargs):
        snapshot = self.snapshot
        if "form" not in kwargs:
            market = market_now(snapshot.source_gpu, 1, snapshot.source_region, timezone.now())
            kwargs["form"] = RestoreForm(
                initial={
                    "gpu": snapshot.source_gpu,
                    "gpu_count": 1,
                    "region": snapshot.source_region,
                    "max_price": market["suggested_max_usd"],
                    "name": f"{snapshot.name}-restored"[:100],
                }
            )
        form = kwargs["form"]
        gpu = find_gpu(str(form["gpu"].value() or "")) or find_gpu(snapshot.source_gpu)
        market = market_now(
            gpu.name if gpu else snapshot.source_gpu,
            gpu_count_of(form["gpu_count"].value()),
            form["region"].value() or "",
            timezone.now(),
        )
        return super().get_context_data(row=facts.SnapshotRow(snapshot), market=market, **kwargs)

    def post(self, request, pk: str):
        snapshot = self.snapshot
        form = RestoreForm(request.POST)
        if not form.is_valid():
            return self.render_to_response(self.get_context_data(form=form), status=400)
        data = form.cleaned_data
        try:
            restore = services.restore_snapshot(
                snapshot,
                InstanceRequest(
                    gpu=data["gpu"].name,
                    gpu_count=data["gpu_count"] or 1,
                    region=data["region"],
                    max_price_micros=usd_to_micros(data["max_price"]),
                    name=data["name"],
                ),
                actor=actor_of(self.tenant_context),
            )
        except DumontError as refused:
            form.add_error(None, refusal(refused))
            return self.render_to_response(self.get_context_data(form=form), status=400)
        messages.success(
            request,
            _("Restoring “%(snapshot)s” into the new instance “%(name)s”.")
            % {"snapshot": snapshot.name, "name": restore.instance.name},
        )
        return redirect("portal:instance", pk=restore.instance.pk)
