"""`POST /api/agent/storage-token`: a machine's agent asks for fresh access to its repository.

Commands hand an agent its access with their arguments; a sync or follow loop runs for hours, and
an agent restarted on the same machine keeps no secret on disk, so both ask here, with the
agent token they beat with (`dia_` of an instance, `dsb_` of a standby).
"""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.authentication import get_authorization_header
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from dumont.schema import errors
from instances.exceptions import UnknownAgent
from snapshots import storage_tokens


class StorageAccessSerializer(serializers.Serializer):
    repository = serializers.CharField(help_text="The storage gateway: .../storage/v1/")
    storage_token = serializers.CharField(help_text="`dst_...`, for the gateway only.")
    storage_token_seconds = serializers.IntegerField(help_text="How long the token is valid.")
    secret = serializers.CharField(help_text="The repository secret the engine encrypts with.")


class StorageTokenView(APIView):
    """A new storage token (and the repository secret) for the machine whose agent asks."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        request=None,
        responses={200: StorageAccessSerializer, **errors(UnknownAgent)},
        tags=["agent"],
    )
    def post(self, request):
        header = get_authorization_header(request).split()
        if len(header) != 2 or header[0].lower() != b"bearer":
            raise UnknownAgent()
        found = storage_tokens.machine_of_agent(header[1].decode("ascii", errors="replace"))
        if found is None:
            raise UnknownAgent()
        tenant_id, machine = found
        return Response(storage_tokens.machine_access(tenant_id, machine))
