"""Platform endpoints that belong to no app: GET /api/health, /api/health/live and /ready."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from dumont.health import run_checks, run_readiness_checks


class HealthCheckSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["ok", "failing"])
    detail = serializers.CharField()


class HealthSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["ok", "failing"])
    checks = serializers.DictField(child=HealthCheckSerializer())


class LivenessSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["ok"])


def _checks_response(checks) -> Response:
    is_healthy = all(check.ok for check in checks.values())
    body = {
        "status": "ok" if is_healthy else "failing",
        "checks": {name: check.as_json() for name, check in checks.items()},
    }
    code = status.HTTP_200_OK if is_healthy else status.HTTP_503_SERVICE_UNAVAILABLE
    return Response(body, status=code)


class HealthView(APIView):
    """200 when the database answers and a worker and beat ran recently; 503 otherwise."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(responses={200: HealthSerializer, 503: HealthSerializer}, tags=["platform"])
    def get(self, request):
        return _checks_response(run_checks())


class LivenessView(APIView):
    """200 whenever this process answers: restart it only when this fails (no dependency)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []

    @extend_schema(responses={200: LivenessSerializer}, tags=["platform"])
    def get(self, request):
        return Response({"status": "ok"})


class ReadinessView(APIView):
    """200 when this process can serve: the database and the broker answer; 503 otherwise."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []

    @extend_schema(responses={200: HealthSerializer, 503: HealthSerializer}, tags=["platform"])
    def get(self, request):
        return _checks_response(run_readiness_checks())
