from django.db.models import Prefetch
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.tenancy import TenantScopedViewSet
from dumont.schema import errors
from support import services
from support.api import serializers
from support.exceptions import TicketClosed
from support.models import Ticket, TicketMessage


@extend_schema(tags=["support"])
class TicketViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    TenantScopedViewSet,
):
    """The organisation's support tickets (any member opens, reads and answers them)."""

    queryset = Ticket.objects.all()
    serializer_class = serializers.TicketSerializer
    filterset_fields = ["status"]

    def get_queryset(self):
        queryset = super().get_queryset()
        if self.action == "retrieve":
            messages = TicketMessage.objects.order_by("created_at", "id")
            queryset = queryset.prefetch_related(Prefetch("messages", queryset=messages))
        return queryset

    def get_serializer_class(self):
        if self.action == "retrieve":
            return serializers.TicketDetailSerializer
        if self.action == "create":
            return serializers.TicketCreateSerializer
        if self.action == "messages":
            return serializers.TicketMessageSerializer
        return serializers.TicketSerializer

    @extend_schema(
        request=serializers.TicketCreateSerializer,
        responses={201: serializers.TicketDetailSerializer},
        description="Open a ticket with its first message; `first_response_due_at` follows "
        "the plan's support response time.",
    )
    def create(self, request, *args, **kwargs):
        form = serializers.TicketCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        ticket = services.open_ticket(self.context, **form.validated_data)
        body = serializers.TicketDetailSerializer(ticket).data
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=serializers.TicketMessageSerializer,
        responses={201: serializers.TicketMessageSerializer, **errors(TicketClosed)},
        description="Add a message to the conversation; 409 `ticket_closed` on a closed ticket.",
    )
    @action(detail=True, methods=["post"])
    def messages(self, request, pk=None):
        ticket = self.get_object()
        form = serializers.TicketMessageSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        message = services.reply(self.context, ticket, form.validated_data["body"])
        body = serializers.TicketMessageSerializer(message).data
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: serializers.TicketSerializer})
    @action(detail=True, methods=["post"])
    def close(self, request, pk=None):
        ticket = services.close(self.context, self.get_object())
        return Response(serializers.TicketSerializer(ticket).data)
