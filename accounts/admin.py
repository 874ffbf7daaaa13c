from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from accounts.models import ApiToken, AuditLog, Membership, SshKey, Tenant, TenantSettings, User


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


class TenantSettingsInline(admin.StackedInline):
    model = TenantSettings
    can_delete = False


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "created_at"]
    search_fields = ["name", "memberships__user__email"]
    inlines = [MembershipInline, TenantSettingsInline]


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    ordering = ["email"]
    list_display = ["email", "is_active", "is_staff", "date_joined", "last_login"]
    search_fields = ["email"]
    list_filter = ["is_active", "is_staff", "is_superuser"]
    fieldsets = [
        (None, {"fields": ["email", "password"]}),
        (
            "Permissions",
            {"fields": ["is_active", "is_staff", "is_superuser", "groups", "user_permissions"]},
        ),
        ("Dates", {"fields": ["last_login", "date_joined"]}),
    ]
    add_fieldsets = [(None, {"classes": ["wide"], "fields": ["email", "password1", "password2"]})]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    # The plaintext is never stored; the admin shows only the display prefix.
    list_display = [
        "name",
        "prefix",
        "tenant",
        "user",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    ]
    list_filter = ["revoked_at"]
    search_fields = ["name", "prefix", "user__email", "tenant__name"]
    readonly_fields = ["prefix", "created_at", "last_used_at"]
    fields = [
        "tenant",
        "user",
        "name",
        "prefix",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    ]
    raw_id_fields = ["tenant", "user"]

    def has_add_permission(self, request) -> bool:
        return False  # tokens are issued through the API so the plaintext is shown once


@admin.register(SshKey)
class SshKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "fingerprint", "key_type", "bits", "tenant", "created_at"]
    search_fields = ["name", "fingerprint", "tenant__name"]
    readonly_fields = ["fingerprint", "key_type", "bits", "public_key", "created_at"]
    raw_id_fields = ["tenant"]

    def has_add_permission(self, request) -> bool:
        return False  # keys are validated and fingerprinted by the API


@admin.register(AuditLog)
class AuditLogAdmin(admin.ModelAdmin):
    list_display = ["created_at", "action", "actor_email", "tenant", "target", "ip"]
    list_filter = ["action"]
    search_fields = ["actor_email", "target", "tenant__name", "ip"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
