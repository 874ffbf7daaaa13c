from django.contrib import admin, messages

from accounts.authentication import request_ip
from webhooks import services
from webhooks.exceptions import EndpointInactive
from webhooks.models import WebhookDelivery, WebhookEndpoint


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    # The secret is never shown in the admin, only its prefix.
    list_display = ["url", "tenant", "is_active", "events", "created_at"]
    list_filter = ["is_active", ("tenant", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["url", "description", "tenant__name"]
    fields = [
        "tenant",
        "url",
        "description",
        "events",
        "is_active",
        "secret_prefix",
        "created_at",
        "updated_at",
    ]
    readonly_fields = [
        "tenant",
        "url",
        "description",
        "events",
        "is_active",
        "secret_prefix",
        "created_at",
        "updated_at",
    ]

    def has_add_permission(self, request) -> bool:
        return False  # created through the API, where the URL is checked and the secret shown

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "event",
        "status",
        "attempt_count",
        "response_status_code",
        "endpoint",
        "tenant",
        "created_at",
        "next_attempt_at",
    ]
    list_filter = ["status", "event"]
    search_fields = ["=event_id", "endpoint__url", "tenant__name"]
    list_select_related = ["endpoint", "tenant"]
    date_hierarchy = "created_at"
    actions = ["redeliver"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Redeliver now (same event id; audited)")
    def redeliver(self, request, queryset):
        resent = skipped = 0
        for delivery in queryset.select_related("endpoint", "tenant"):
            try:
                services.redeliver_as_staff(delivery, staff=request.user, ip=request_ip(request))
            except EndpointInactive:
                skipped += 1
            else:
                resent += 1
        self.message_user(request, f"Queued {resent} redeliveries.", messages.SUCCESS)
        if skipped:
            self.message_user(
                request, f"Skipped {skipped}: their endpoint is disabled.", messages.WARNING
            )
