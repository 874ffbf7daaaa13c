"""DRF authentication of agents: `Authorization: Bearer dia_...`, one instance per token."""

from django.contrib.auth.models import AnonymousUser
from django.db.models import F, Value
from django.db.models.functions import Coalesce
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed

from instances.agent_tokens import AGENT_TOKEN_PREFIX, hash_agent_token
from instances.models import Instance

# The heartbeat needs these and the tenant's busy threshold: one indexed query, one join.
HEARTBEAT_FIELDS = ("id", "tenant_id", "status", "has_queued_commands")
DEFAULT_BUSY_PERCENT = 5  # TenantSettings' default idle threshold


class AgentTokenAuthentication(BaseAuthentication):
    def authenticate(self, request):
        header = get_authorization_header(request).split()
        if len(header) != 2 or header[0].lower() != b"bearer":
            return None
        plaintext = header[1].decode("ascii", errors="replace")
        if not plaintext.startswith(AGENT_TOKEN_PREFIX):
            return None
        instance = (
            Instance.objects.filter(agent_token_hash=hash_agent_token(plaintext))
            .exclude(status=Instance.Status.DELETED)
            .annotate(
                busy_threshold_percent=Coalesce(
                    F("tenant__settings__idle_threshold_percent"), Value(DEFAULT_BUSY_PERCENT)
                )
            )
            .only(*HEARTBEAT_FIELDS)
            .first()
        )
        if instance is None:
            raise AuthenticationFailed("Unknown or retired agent token.", code="invalid_token")
        return AnonymousUser(), instance

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="agent"'
