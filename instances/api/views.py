from django.conf import settings
from django.db.models import Prefetch
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.authentication import get_authorization_header
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import SshKey
from accounts.tenancy import TenantScopedViewSet
from billing.exceptions import InsufficientCredits
from dumont.schema import errors
from instances import agent_channel, moves, standby
from instances.agent_tokens import STANDBY_TOKEN_PREFIX
from instances.api import serializers
from instances.exceptions import InvalidTransition, ProviderUnavailable, UnknownAgent
from instances.models import Failover, Instance, InstanceEvent, Standby


def actor_of(context) -> str:
    return f"user:{context.user.email}"


@extend_schema_view(
    list=extend_schema(summary="List instances (filter with ?status=, ?gpu=, ?region=)"),
    retrieve=extend_schema(summary="One instance, with its connection info"),
)
class InstanceViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """The tenant's GPU instances."""

    queryset = Instance.objects.prefetch_related(
        Prefetch("ssh_keys", queryset=SshKey.objects.only("id")),
        Prefetch("standbys", queryset=Standby.objects.current()),
    )
    serializer_class = serializers.InstanceSerializer
    filterset_fields = ["status", "gpu", "region"]

    def _accepted(self, instance: Instance) -> Response:
        instance.refresh_from_db()
        body = serializers.InstanceSerializer(instance).data
        return Response(body, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        summary="Ask for a GPU machine",
        request=serializers.InstanceCreateSerializer,
        responses={
            202: serializers.InstanceSerializer,
            409: OpenApiResponse(
                serializers.NoCapacitySerializer,
                description="`no_capacity`: nothing under max_price; `alternatives` lists the "
                "cheapest other regions and GPUs.",
            ),
            **errors(InsufficientCredits, ProviderUnavailable),
        },
    )
    def create(self, request):
        form = serializers.InstanceCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        instance = moves.create_instance(
            self.context.tenant,
            serializers.instance_request(form.validated_data),
            actor=actor_of(self.context),
        )
        return self._accepted(instance)

    @extend_schema(
        summary="Delete: destroy the machine and its disk",
        responses={202: serializers.InstanceSerializer, **errors(InvalidTransition)},
    )
    def destroy(self, request, pk=None):
        instance = self.get_object()
        moves.delete_instance(instance, actor=actor_of(self.context))
        return self._accepted(instance)

    @extend_schema(
        summary="Hibernate: stop the machine and the bill, keep the disk",
        request=None,
        responses={202: serializers.InstanceSerializer, **errors(InvalidTransition)},
    )
    @action(detail=True, methods=["post"])
    def hibernate(self, request, pk=None):
        instance = self.get_object()
        moves.hibernate_instance(instance, actor=actor_of(self.context))
        return self._accepted(instance)

    @extend_schema(
        summary="Wake a hibernated instance",
        request=None,
        responses={
            202: serializers.InstanceSerializer,
            **errors(InvalidTransition, InsufficientCredits, ProviderUnavailable),
        },
    )
    @action(detail=True, methods=["post"])
    def wake(self, request, pk=None):
        instance = self.get_object()
        moves.wake_instance(instance, actor=actor_of(self.context))
        return self._accepted(instance)

    @extend_schema(
        summary="Every transition of the instance, oldest first",
        responses={200: serializers.InstanceEventSerializer(many=True)},
    )
    @action(detail=True, methods=["get"], filterset_fields=[])
    def events(self, request, pk=None):
        instance = self.get_object()
        events = InstanceEvent.objects.for_tenant(self.context.tenant).filter(instance=instance)
        page = self.paginate_queryset(events)
        body = serializers.InstanceEventSerializer(page, many=True).data
        return self.get_paginated_response(body)

    @extend_schema(
        summary="Failovers of the instance, newest first, with measured RPO and RTO",
        responses={200: serializers.FailoverSerializer(many=True)},
    )
    @action(detail=True, methods=["get"], filterset_fields=[])
    def failovers(self, request, pk=None):
        instance = self.get_object()
        failovers = Failover.objects.for_tenant(self.context.tenant).filter(instance=instance)
        page = self.paginate_queryset(failovers)
        return self.get_paginated_response(serializers.FailoverSerializer(page, many=True).data)

    @extend_schema(
        summary="Simulator only: the market takes the machine back, as a real interruption",
        request=None,
        responses={202: serializers.InstanceSerializer, **errors(InvalidTransition)},
    )
    @action(detail=True, methods=["post"], url_path="simulate-interruption")
    def simulate_interruption(self, request, pk=None):
        instance = self.get_object()
        moves.simulate_interruption(instance, context=self.context)
        return self._accepted(instance)


class HeartbeatView(APIView):
    """The agent's heartbeat: GPU utilisation in, commands out (`Authorization: Bearer dia_...`).

    The agent token is checked by the same single SQL statement that stores the beat
    (instances/heartbeats.py), so this view has no DRF authentication class.
    """

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        request=serializers.HeartbeatSerializer,
        responses={200: serializers.HeartbeatReplySerializer, **errors(UnknownAgent)},
        tags=["agent"],
    )
    def post(self, request):
        header = get_authorization_header(request).split()
        if len(header) != 2 or header[0].lower() != b"bearer":
            raise UnknownAgent()
        form = serializers.HeartbeatSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        token = header[1].decode("ascii", errors="replace")
        if token.startswith(STANDBY_TOKEN_PREFIX):
            status_now, commands = standby.record_heartbeat(
                token,
                command_results=form.validated_data.get("command_results", []),
                follow=form.validated_data.get("follow"),
                sync=form.validated_data.get("sync"),
                now=timezone.now(),
            )
            return Response(
                {
                    "instance_id": "",
                    "status": status_now,
                    "interval_seconds": settings.STANDBY_HEARTBEAT_SECONDS,
                    "commands": commands,
                }
            )
        reply = agent_channel.record_heartbeat(
            header[1].decode("ascii", errors="replace"),
            gpu_utilization_percent=form.validated_data["gpu_utilization_percent"],
            command_results=form.validated_data.get("command_results", []),
            command_progress=form.validated_data.get("command_progress", []),
            sync=form.validated_data.get("sync"),
            activity=form.validated_data.get("activity"),
        )
        return Response(
            {
                "instance_id": reply.instance_id,
                "status": reply.status,
                "interval_seconds": reply.interval_seconds,
                "commands": reply.commands,
            }
        )
