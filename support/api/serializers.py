from rest_framework import serializers

from support.models import Ticket, TicketMessage


class BoundedCharField(serializers.CharField):
    """A CharField whose max_length holds for the text as sent, not only once trimmed (the
    schema's maxLength is about what the client sends)."""

    def to_internal_value(self, data):
        if isinstance(data, str) and self.max_length is not None and len(data) > self.max_length:
            self.fail("max_length", max_length=self.max_length, length=len(data))
        return super().to_internal_value(data)


class TicketMessageSerializer(serializers.ModelSerializer):
    body = BoundedCharField(max_length=20_000, trim_whitespace=True)

    class Meta:
        model = TicketMessage
        fields = ["id", "author_email", "body", "is_staff", "created_at"]
        read_only_fields = ["id", "author_email", "is_staff", "created_at"]


class TicketSerializer(serializers.ModelSerializer):
    is_overdue = serializers.BooleanField(read_only=True)

    class Meta:
        model = Ticket
        fields = [
            "id",
            "subject",
            "status",
            "priority",
            "created_at",
            "updated_at",
            "first_response_due_at",
            "first_responded_at",
            "closed_at",
            "is_overdue",
        ]
        read_only_fields = fields


class TicketDetailSerializer(TicketSerializer):
    messages = TicketMessageSerializer(many=True, read_only=True)

    class Meta(TicketSerializer.Meta):
        fields = [*TicketSerializer.Meta.fields, "messages"]
        read_only_fields = fields


class TicketCreateSerializer(serializers.Serializer):
    subject = BoundedCharField(max_length=200)
    body = BoundedCharField(max_length=20_000, help_text="The first message.")
    priority = serializers.ChoiceField(
        choices=Ticket.Priority.choices, default=Ticket.Priority.NORMAL
    )
