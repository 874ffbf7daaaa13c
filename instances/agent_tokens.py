"""The agent's credential: `dia_...`, valid for one instance and one provisioning attempt.

The token is derived (HMAC of the instance id and its provision key under AGENT_TOKEN_KEY), not
random: a retried or duplicated provision task hands the provider the same token, and the
provider's idempotent create returns the machine made with it, so the agent on that machine is
always the one the database expects. Only the SHA-256 is stored. A new provisioning attempt gets a
new key, so the agent of an abandoned machine stops being accepted.
"""

import hashlib
import hmac

from django.conf import settings

AGENT_TOKEN_PREFIX = "dia_"
STANDBY_TOKEN_PREFIX = "dsb_"  # the agent of an instance's CPU standby


def agent_token(instance_id: str, provision_key: str) -> str:
    key = settings.AGENT_TOKEN_KEY.encode()
    digest = hmac.new(key, f"{instance_id}:{provision_key}".encode(), hashlib.sha256)
    return AGENT_TOKEN_PREFIX + digest.hexdigest()


def standby_token(standby_id: int, provision_key: str) -> str:
    key = settings.AGENT_TOKEN_KEY.encode()
    digest = hmac.new(key, f"standby:{standby_id}:{provision_key}".encode(), hashlib.sha256)
    return STANDBY_TOKEN_PREFIX + digest.hexdigest()


def hash_agent_token(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()
