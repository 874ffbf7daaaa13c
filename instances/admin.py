"""Support staff's view of instances: filters, search, the event trail, and audited actions."""

from django.contrib import admin, messages
from django.db import transaction

from accounts.models import AuditLog
from accounts.services import record_audit
from instances import moves
from instances.exceptions import InvalidTransition
from instances.models import AgentCommand, Failover, Instance, InstanceEvent, Standby


class InstanceEventInline(admin.TabularInline):
    model = InstanceEvent
    extra = 0
    can_delete = False
    fields = ["created_at", "from_status", "to_status", "reason", "actor"]
    readonly_fields = fields
    ordering = ["-created_at", "-id"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class FailoverInline(admin.TabularInline):
    """Each interruption with what it cost: RPO and the two RTOs (measured)."""

    model = Failover
    extra = 0
    can_delete = False
    fields = [
        "interrupted_at",
        "status",
        "reason",
        "rpo_seconds",
        "rto_standby_seconds",
        "rto_gpu_seconds",
        "failed_region",
        "new_region",
    ]
    readonly_fields = fields
    ordering = ["-interrupted_at"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class StandbyInline(admin.TabularInline):
    model = Standby
    extra = 0
    can_delete = False
    fields = ["status", "region", "provider", "provider_id", "last_heartbeat_at", "followed_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


def _support_action(description: str, audit_action: str, apply):
    """An admin action that applies a service to each selected instance and audits it."""

    def run(modeladmin, request, queryset):
        actor = f"admin:{request.user.email}"
        done, refused = 0, []
        for instance in queryset:
            try:
                with transaction.atomic():
                    apply(instance, actor)
                    record_audit(
                        audit_action,
                        tenant=instance.tenant,
                        actor=request.user,
                        ip=request.META.get("REMOTE_ADDR"),
                        target=f"instance {instance.pk}",
                        status=instance.status,
                    )
                done += 1
            except InvalidTransition as error:
                refused.append(f"{instance.pk}: {error.detail}")
        if done:
            modeladmin.message_user(request, f"{description}: {done} instance(s).")
        for text in refused:
            modeladmin.message_user(request, text, level=messages.WARNING)

    run.short_description = description
    run.__name__ = audit_action
    return run


force_stop = _support_action(
    "Force stop (hibernate)",
    AuditLog.Action.INSTANCE_FORCE_STOPPED,
    lambda instance, actor: moves.hibernate_instance(
        instance, actor=actor, reason="stopped by support"
    ),
)
retry_provision = _support_action(
    "Retry provisioning",
    AuditLog.Action.INSTANCE_PROVISION_RETRIED,
    lambda instance, actor: moves.retry_provision(instance, actor=actor),
)
mark_error = _support_action(
    "Mark error",
    AuditLog.Action.INSTANCE_MARKED_ERROR,
    lambda instance, actor: moves.mark_error(instance, actor=actor, reason="marked by support"),
)


@admin.register(Instance)
class InstanceAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "name",
        "tenant",
        "gpu",
        "gpu_count",
        "region",
        "status",
        "price_micros",
        "last_heartbeat_at",
        "created_at",
    ]
    list_filter = ["status", "gpu", "region", "provider", "tenant"]
    search_fields = ["id", "name", "provider_id", "tenant__name"]
    list_select_related = ["tenant"]
    inlines = [InstanceEventInline, FailoverInline, StandbyInline]
    actions = [force_stop, retry_provision, mark_error]
    # Status moves only through the actions (the one transition function), never a form field.
    readonly_fields = [f.name for f in Instance._meta.fields if f.name != "agent_token_hash"]
    readonly_fields += ["ssh_keys"]
    exclude = ["agent_token_hash"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(AgentCommand)
class AgentCommandAdmin(admin.ModelAdmin):
    list_display = ["id", "instance", "kind", "state", "created_at", "finished_at"]
    list_filter = ["state", "kind"]
    search_fields = ["instance__id"]
    readonly_fields = [field.name for field in AgentCommand._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False
