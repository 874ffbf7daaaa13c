import django_filters
from django_filters.utils import translate_validation
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.tenancy import TenantScopedViewSet
from dumont.schema import errors
from webhooks import services
from webhooks.api import serializers
from webhooks.exceptions import EndpointInactive
from webhooks.models import WebhookDelivery, WebhookEndpoint


class DeliveryFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=WebhookDelivery.Status.choices)
    event = django_filters.CharFilter()

    class Meta:
        model = WebhookDelivery
        fields = ["status", "event"]


class WebhookEndpointViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    TenantScopedViewSet,
):
    """URLs that receive the organisation's events, signed (owners and admins manage them)."""

    queryset = WebhookEndpoint.objects.all()
    serializer_class = serializers.WebhookEndpointSerializer
    # Endpoints change field by field (PATCH); PUT is not offered.
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_serializer_class(self):
        if self.action == "deliveries":
            return serializers.WebhookDeliverySerializer
        return serializers.WebhookEndpointSerializer

    @extend_schema(responses={201: serializers.WebhookEndpointWithSecretSerializer})
    def create(self, request, *args, **kwargs):
        form = self.get_serializer(data=request.data)
        form.is_valid(raise_exception=True)
        endpoint = services.create_endpoint(self.context, **form.validated_data)
        body = serializers.WebhookEndpointWithSecretSerializer(endpoint).data
        return Response(body, status=status.HTTP_201_CREATED)

    def partial_update(self, request, *args, **kwargs):
        endpoint = self.get_object()
        form = self.get_serializer(endpoint, data=request.data, partial=True)
        form.is_valid(raise_exception=True)
        endpoint = services.update_endpoint(self.context, endpoint, **form.validated_data)
        return Response(serializers.WebhookEndpointSerializer(endpoint).data)

    def destroy(self, request, *args, **kwargs):
        services.delete_endpoint(self.context, self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        request=None,
        responses={200: serializers.WebhookEndpointWithSecretSerializer},
        description="Replace the signing secret at once; the new one is shown only here.",
    )
    @action(detail=True, methods=["post"], url_path="rotate-secret", url_name="rotate-secret")
    def rotate_secret(self, request, pk=None):
        endpoint = services.rotate_secret(self.context, self.get_object())
        return Response(serializers.WebhookEndpointWithSecretSerializer(endpoint).data)

    @extend_schema(
        request=None,
        responses={202: serializers.WebhookDeliverySerializer, **errors(EndpointInactive)},
        description="Send a `ping` test event to this endpoint now; poll the delivery returned.",
    )
    @action(detail=True, methods=["post"])
    def ping(self, request, pk=None):
        delivery = services.send_ping(self.context, self.get_object())
        body = serializers.WebhookDeliverySerializer(delivery).data
        return Response(body, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        parameters=[
            OpenApiParameter("status", enum=WebhookDelivery.Status.values),
            OpenApiParameter("event", str, description="An event name, or `ping`."),
        ],
        responses={200: serializers.WebhookDeliverySerializer(many=True)},
        description="This endpoint's deliveries, newest first.",
    )
    @action(detail=True, methods=["get"], filter_backends=[])
    def deliveries(self, request, pk=None):
        endpoint = self.get_object()
        found = DeliveryFilter(
            request.query_params, queryset=endpoint.deliveries.order_by("-created_at", "-id")
        )
        if not found.is_valid():
            raise translate_validation(found.errors)
        page = self.paginate_queryset(found.qs)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)


class WebhookDeliveryViewSet(mixins.RetrieveModelMixin, TenantScopedViewSet):
    """One delivery of an event to an endpoint: its attempts' outcome, and a manual resend."""

    queryset = WebhookDelivery.objects.select_related("endpoint")
    serializer_class = serializers.WebhookDeliverySerializer

    @extend_schema(
        request=None,
        responses={202: serializers.WebhookDeliverySerializer, **errors(EndpointInactive)},
        description=(
            "Send this delivery's event again now, as a new delivery with the same event id "
            "(receivers drop duplicates by id). Returns the new delivery."
        ),
    )
    @action(detail=True, methods=["post"])
    def redeliver(self, request, pk=None):
        resent = services.redeliver(self.context, self.get_object())
        body = serializers.WebhookDeliverySerializer(resent).data
        return Response(body, status=status.HTTP_202_ACCEPTED)
