from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.tenancy import TenantScopedViewSet
from billing.exceptions import InsufficientCredits
from dumont.schema import errors
from instances.api.serializers import InstanceSerializer, instance_request
from instances.api.views import actor_of
from instances.exceptions import NoCapacity, ProviderUnavailable
from instances.models import Instance
from snapshots import services
from snapshots.api import serializers
from snapshots.exceptions import InstanceNotRunning, SnapshotBusy, SnapshotNotReady
from snapshots.models import Snapshot


class SnapshotViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, TenantScopedViewSet
):
    """Snapshots of the tenant's instance workspaces; restore one into a new instance."""

    queryset = Snapshot.objects.exclude(status=Snapshot.Status.DELETED).prefetch_related("restores")
    serializer_class = serializers.SnapshotSerializer
    filterset_fields = {"instance": ["exact"], "status": ["exact"]}

    def get_serializer_class(self):
        if self.action == "create":
            return serializers.SnapshotCreateSerializer
        if self.action == "restore":
            return serializers.RestoreRequestSerializer
        return serializers.SnapshotSerializer

    @extend_schema(
        summary="Snapshot a running instance's workspace",
        request=serializers.SnapshotCreateSerializer,
        responses={
            202: serializers.SnapshotSerializer,
            404: OpenApiResponse(description="No such instance in your organisation"),
            **errors(InstanceNotRunning),
        },
    )
    def create(self, request):
        form = serializers.SnapshotCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        instance = get_object_or_404(
            Instance.objects.for_tenant(self.context.tenant), pk=form.validated_data["instance_id"]
        )
        snapshot = services.create_snapshot(instance, name=form.validated_data.get("name", ""))
        return Response(self._body(snapshot), status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        summary="Delete: the data goes unless other snapshots share it",
        responses={202: serializers.SnapshotSerializer, **errors(SnapshotBusy)},
    )
    def destroy(self, request, pk=None):
        snapshot = services.delete_snapshot(self.get_object())
        return Response(self._body(snapshot), status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        summary="Restore into a NEW instance (any GPU, any region)",
        request=serializers.RestoreRequestSerializer,
        responses={
            202: InstanceSerializer,
            **errors(SnapshotNotReady, NoCapacity, InsufficientCredits, ProviderUnavailable),
        },
    )
    @action(detail=True, methods=["post"])
    def restore(self, request, pk=None):
        snapshot = self.get_object()
        form = serializers.RestoreRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        restore = services.restore_snapshot(
            snapshot,
            instance_request(
                form.validated_data, gpu=snapshot.source_gpu, region=snapshot.source_region
            ),
            actor=actor_of(self.context),
        )
        body = InstanceSerializer(restore.instance).data
        body["restore"] = serializers.RestoreSerializer(restore).data | {"snapshot_id": snapshot.pk}
        return Response(body, status=status.HTTP_202_ACCEPTED)

    def _body(self, snapshot: Snapshot) -> dict:
        return serializers.SnapshotSerializer(Snapshot.objects.get(pk=snapshot.pk)).data
