from django.utils import timezone
from rest_framework import serializers

from accounts.models import ApiToken, AuditLog, Membership, SshKey, TenantSettings
from accounts.ssh_keys import InvalidSshKey, parse_public_key


class TenantRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class UserRefSerializer(serializers.Serializer):
    email = serializers.EmailField()


class SignupSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(write_only=True, trim_whitespace=False, max_length=512)
    organization = serializers.CharField(max_length=100)


class SignupResponseSerializer(serializers.Serializer):
    user = UserRefSerializer()
    tenant = TenantRefSerializer()
    token = serializers.CharField(help_text="The first API token; shown only once.")


class LoginSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(write_only=True, trim_whitespace=False, max_length=512)
    otp = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        max_length=64,
        help_text=(
            "Accounts with two-factor authentication: the authenticator app's current code, or "
            "an unused recovery code. Without it such a login answers 400 `otp_required`."
        ),
    )


class MeSerializer(serializers.Serializer):
    email = serializers.EmailField(source="user.email")
    tenant = TenantRefSerializer()
    role = serializers.ChoiceField(choices=Membership.Role.choices)


class ApiTokenSerializer(serializers.ModelSerializer):
    user = serializers.EmailField(source="user.email", read_only=True)
    is_active = serializers.BooleanField(read_only=True)

    class Meta:
        model = ApiToken
        fields = [
            "id",
            "name",
            "prefix",
            "user",
            "is_active",
            "created_at",
            "last_used_at",
            "expires_at",
            "revoked_at",
        ]
        read_only_fields = ["prefix", "created_at", "last_used_at", "revoked_at"]

    def validate_expires_at(self, value):
        if value is not None and value <= timezone.now():
            raise serializers.ValidationError("Must be in the future.", code="expired")
        return value


class NewApiTokenSerializer(ApiTokenSerializer):
    token = serializers.CharField(read_only=True, help_text="The plaintext; shown only once.")

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "token"]


class SshKeySerializer(serializers.ModelSerializer):
    public_key = serializers.CharField(max_length=16 * 1024, trim_whitespace=True)

    class Meta:
        model = SshKey
        fields = ["id", "name", "public_key", "fingerprint", "key_type", "bits", "created_at"]
        read_only_fields = ["fingerprint", "key_type", "bits", "created_at"]

    def validate_public_key(self, value: str):
        if self.instance is not None:
            raise serializers.ValidationError(
                "A key cannot be replaced; add the new key and delete this one.",
                code="immutable",
            )
        try:
            return parse_public_key(value)
        except InvalidSshKey as error:
            raise serializers.ValidationError(str(error), code=error.code) from error


class MemberSerializer(serializers.ModelSerializer):
    email = serializers.EmailField(source="user.email", max_length=254)

    class Meta:
        model = Membership
        fields = ["id", "email", "role", "created_at"]
        read_only_fields = ["created_at"]


class MemberUpdateSerializer(serializers.ModelSerializer):
    class Meta:
        model = Membership
        fields = ["role"]
        extra_kwargs = {"role": {"required": True}}


class StandbySettingsSerializer(serializers.ModelSerializer):
    class Meta:
        model = TenantSettings
        fields = ["auto_hibernate", "idle_threshold_percent", "idle_minutes", "updated_at"]
        read_only_fields = ["updated_at"]


class AuditLogSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditLog
        fields = ["id", "action", "actor_email", "target", "ip", "metadata", "created_at"]
        read_only_fields = fields
