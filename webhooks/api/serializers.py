from rest_framework import serializers

from webhooks.events import EVENTS
from webhooks.models import WebhookDelivery, WebhookEndpoint


class EventNameField(serializers.ChoiceField):
    """A catalog event name; anything else is refused with the code `unknown_event`."""

    default_error_messages = {"unknown_event": '"{input}" is not a webhook event.'}

    def __init__(self, **kwargs):
        super().__init__(choices=EVENTS, **kwargs)

    def to_internal_value(self, data):
        if data not in self.choice_strings_to_values:
            self.fail("unknown_event", input=data)
        return self.choice_strings_to_values[data]


class WebhookEndpointSerializer(serializers.ModelSerializer):
    # Format only here; whether the URL may be reached (SSRF rules) is checked by the service.
    url = serializers.CharField(max_length=2000)
    events = serializers.ListField(child=EventNameField(), allow_empty=False, max_length=50)
    secret_prefix = serializers.CharField(
        read_only=True, help_text="The first characters of the signing secret."
    )

    class Meta:
        model = WebhookEndpoint
        fields = [
            "id",
            "url",
            "description",
            "events",
            "is_active",
            "secret_prefix",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]


class WebhookEndpointWithSecretSerializer(WebhookEndpointSerializer):
    secret = serializers.CharField(
        read_only=True,
        help_text="The signing secret; shown only on create and on rotate-secret.",
    )

    class Meta(WebhookEndpointSerializer.Meta):
        fields = [*WebhookEndpointSerializer.Meta.fields, "secret"]


class WebhookDeliverySerializer(serializers.ModelSerializer):
    endpoint = serializers.PrimaryKeyRelatedField(read_only=True)

    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "endpoint",
            "event",
            "event_id",
            "status",
            "attempt_count",
            "next_attempt_at",
            "last_attempt_at",
            "response_status_code",
            "last_error",
            "response_body_excerpt",
            "payload",
            "created_at",
            "delivered_at",
        ]
        read_only_fields = fields
