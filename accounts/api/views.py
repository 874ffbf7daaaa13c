from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import services
from accounts.api import serializers
from accounts.authentication import request_ip
from accounts.context import TenantContext
from accounts.exceptions import LastOwner
from accounts.models import ApiToken, AuditLog, Membership, SshKey
from accounts.tenancy import TenantScopedViewSet
from dumont.schema import errors
from dumont.throttling import ScopedRateThrottle


def _me_body(membership: Membership) -> dict:
    return serializers.MeSerializer(membership).data


class AnonymousEntryView(APIView):
    """Base of the views a caller uses before having credentials: open, throttled per address."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [ScopedRateThrottle]


class SignupView(AnonymousEntryView):
    """Create an account, its organisation and a first API token (shown once)."""

    throttle_scope = "signup"

    @extend_schema(
        request=serializers.SignupSerializer,
        responses={201: serializers.SignupResponseSerializer},
        tags=["auth"],
    )
    def post(self, request):
        form = serializers.SignupSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        result = services.sign_up(**form.validated_data, ip=request_ip(request))
        body = {
            "user": {"email": result.user.email},
            "tenant": {"id": result.tenant.id, "name": result.tenant.name},
            "token": result.token_plaintext,
        }
        return Response(body, status=status.HTTP_201_CREATED)


class LoginView(AnonymousEntryView):
    """Start a portal session (cookie) with e-mail and password (and `otp` when 2FA is on)."""

    throttle_scope = "login"

    @extend_schema(
        request=serializers.LoginSerializer,
        responses={200: serializers.MeSerializer},
        tags=["auth"],
    )
    def post(self, request):
        form = serializers.LoginSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        membership = services.log_in(
            request._request, **form.validated_data, ip=request_ip(request)
        )
        return Response(_me_body(membership))


class LogoutView(APIView):
    """End the portal session."""

    @extend_schema(request=None, responses={204: None}, tags=["auth"])
    def post(self, request):
        services.log_out(request._request, request.auth)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeView(APIView):
    """Who the caller is, for which organisation, with which role."""

    @extend_schema(responses=serializers.MeSerializer, tags=["auth"])
    def get(self, request):
        return Response(_me_body(request.auth.membership))


class ApiTokenViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    TenantScopedViewSet,
):
    """API tokens. Members see their own; owners and admins see and revoke all of the tenant."""

    queryset = ApiToken.objects.select_related("user")
    serializer_class = serializers.ApiTokenSerializer

    def get_queryset(self):
        queryset = super().get_queryset()
        context: TenantContext | None = self.request.auth
        if context is not None and not context.is_admin:
            queryset = queryset.filter(user=context.user)
        return queryset

    @extend_schema(responses={201: serializers.NewApiTokenSerializer})
    def create(self, request, *args, **kwargs):
        form = self.get_serializer(data=request.data)
        form.is_valid(raise_exception=True)
        token, plaintext = services.create_api_token(
            self.context, form.validated_data["name"], form.validated_data.get("expires_at")
        )
        body = {**serializers.ApiTokenSerializer(token).data, "token": plaintext}
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(description="Revoke the token at once (it stays listed as revoked).")
    def destroy(self, request, *args, **kwargs):
        services.revoke_api_token(self.context, self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class SshKeyViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    TenantScopedViewSet,
):
    """OpenSSH public keys installed on the tenant's instances."""

    queryset = SshKey.objects.all()
    serializer_class = serializers.SshKeySerializer

    # Only the name changes (PATCH); a different key is a new key, so PUT is not offered.
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def create(self, request, *args, **kwargs):
        form = self.get_serializer(data=request.data)
        form.is_valid(raise_exception=True)
        key = services.add_ssh_key(
            self.context, form.validated_data["name"], form.validated_data["public_key"]
        )
        return Response(serializers.SshKeySerializer(key).data, status=status.HTTP_201_CREATED)

    def destroy(self, request, *args, **kwargs):
        services.remove_ssh_key(self.context, self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class MemberViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    TenantScopedViewSet,
):
    """People of the organisation and their roles (owner, admin, member)."""

    queryset = Membership.objects.select_related("user")
    serializer_class = serializers.MemberSerializer
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_serializer_class(self):
        if self.action == "partial_update":
            return serializers.MemberUpdateSerializer
        return serializers.MemberSerializer

    def create(self, request, *args, **kwargs):
        form = self.get_serializer(data=request.data)
        form.is_valid(raise_exception=True)
        membership = services.add_member(
            self.context,
            form.validated_data["user"]["email"],
            form.validated_data.get("role", Membership.Role.MEMBER),
        )
        return Response(self.get_serializer(membership).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={200: serializers.MemberSerializer, **errors(LastOwner)})
    def partial_update(self, request, *args, **kwargs):
        membership = self.get_object()
        form = self.get_serializer(data=request.data)
        form.is_valid(raise_exception=True)
        membership = services.change_role(self.context, membership, form.validated_data["role"])
        return Response(serializers.MemberSerializer(membership).data)

    @extend_schema(responses={204: None, **errors(LastOwner)})
    def destroy(self, request, *args, **kwargs):
        services.remove_member(self.context, self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class AuditLogViewSet(mixins.ListModelMixin, TenantScopedViewSet):
    """Security-relevant actions in the organisation (owners and admins only)."""

    queryset = AuditLog.objects.all()
    serializer_class = serializers.AuditLogSerializer
    filterset_fields = ["action"]

    def list(self, request, *args, **kwargs):
        if not self.context.is_admin:
            raise PermissionDenied("Only owners and admins can read the audit log.")
        return super().list(request, *args, **kwargs)


class StandbySettingsView(APIView):
    """Standby Config: auto-hibernation of idle GPUs (FAQ: < 5 % GPU for 5 minutes)."""

    @extend_schema(responses=serializers.StandbySettingsSerializer, tags=["settings"])
    def get(self, request):
        tenant_settings = services.settings_of(request.auth.tenant)
        return Response(serializers.StandbySettingsSerializer(tenant_settings).data)

    @extend_schema(
        request=serializers.StandbySettingsSerializer,
        responses=serializers.StandbySettingsSerializer,
        tags=["settings"],
    )
    def put(self, request):
        return self._update(request, is_partial=False)

    @extend_schema(
        request=serializers.StandbySettingsSerializer,
        responses={
            200: serializers.StandbySettingsSerializer,
            403: OpenApiResponse(description="Role is member"),
        },
        tags=["settings"],
    )
    def patch(self, request):
        return self._update(request, is_partial=True)

    def _update(self, request, *, is_partial: bool):
        current = services.settings_of(request.auth.tenant)
        form = serializers.StandbySettingsSerializer(current, data=request.data, partial=is_partial)
        form.is_valid(raise_exception=True)
        updated = services.update_standby_settings(request.auth, **form.validated_data)
        return Response(serializers.StandbySettingsSerializer(updated).data)
