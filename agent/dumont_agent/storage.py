"""This machine's access to its tenant's snapshot repository, through the storage gateway.

The API hands it out with each command that reads or writes the repository (`repository`: the
gateway's address, `storage_token`: a `dst_` token valid about an hour, `secret`: what the engine
encrypts with) and on request (`POST /api/agent/storage-token`, with this agent's own token). The
token is renewed here before it expires, and when the gateway refuses it, so a sync loop runs for
days; none of it is ever written to disk: a loop's saved settings keep only what `without_access`
leaves, and a restarted agent asks the API again.
"""

import json
import logging
import threading
import time
import urllib.error
import urllib.request

logger = logging.getLogger("dumont-agent")

# Command arguments that open the repository: never saved (and the API's newest answer wins).
ACCESS_ARGUMENTS = (
    "repository",
    "secret",
    "storage_token",
    "storage_token_seconds",
    "endpoint_url",
    "region",
    "access_key_id",
    "secret_access_key",
)


def without_access(args: dict) -> dict:
    """A loop's settings that may be written to disk: everything but the repository's access."""
    return {name: value for name, value in args.items() if name not in ACCESS_ARGUMENTS}


class StorageUnavailable(OSError):
    """No storage token to be had: the API refused this agent or did not answer. An OSError,
    like the network failures it mostly is, so a job reports it as its one-line failure."""


class StorageAccess:
    """The current storage token (and repository, secret) of this machine, renewed on demand.

    Thread-safe: the engine's upload threads all ask `token()` before each request."""

    def __init__(self, api_url: str = "", agent_token: str = "", *, user_agent: str = ""):
        self.api_url = api_url.rstrip("/")
        self.agent_token = agent_token
        self.user_agent = user_agent or "dumont-agent"
        self.lock = threading.Lock()
        self.repository = ""
        self.secret = ""
        self.current = ""
        self.renew_at = 0.0  # monotonic: past half its life, a token is renewed
        self.expires_at = 0.0
        self.fetched_at = -1e9
        self.offered: set[str] = set()  # handed-out tokens already taken (args are reused)

    def complete(self, args: dict) -> dict:
        """`args` with the repository's access: a handed-out token is taken as the current one
        (once); args without access (a loop resumed from disk) get the API's."""
        token = args.get("storage_token")
        with self.lock:
            if token and token not in self.offered:
                self.offered.add(token)
                self._adopt(
                    str(args.get("repository", "")),
                    str(args.get("secret", "")),
                    str(token),
                    float(args.get("storage_token_seconds") or 0),
                )
        if args.get("repository") and args.get("secret"):
            return args
        if not self.api_url:
            return args  # nothing to ask: the engine says what is missing
        with self.lock:
            if not self.current:
                self._fetch()
            return {**args, "repository": self.repository, "secret": self.secret}

    def token(self, refresh: bool = False) -> str:
        """The token to send now (HttpStore's token provider); with `refresh`, the gateway
        refused the last one: a new one, unless another thread has just got it."""
        with self.lock:
            now = time.monotonic()
            stale = refresh and now - self.fetched_at > 1.0
            if self.api_url and (stale or not self.current or now >= self.renew_at):
                try:
                    self._fetch()
                except StorageUnavailable:
                    if not self.current or now >= self.expires_at or stale:
                        raise
                    logger.warning("could not renew the storage token; using the current one")
            if not self.current:
                raise StorageUnavailable("no storage token for this machine")
            return self.current

    def _adopt(self, repository: str, secret: str, token: str, lifetime_seconds: float) -> None:
        now = time.monotonic()
        # Without a lifetime (an older API), renew at the next chance the gateway refuses it.
        lifetime = lifetime_seconds or 1e9
        self.repository = repository or self.repository
        self.secret = secret or self.secret
        self.current = token
        self.renew_at = now + lifetime / 2
        self.expires_at = now + lifetime

    def _fetch(self) -> None:
        """Ask the API for a new token (and the repository and secret). Under `self.lock`."""
        request = urllib.request.Request(
            f"{self.api_url}/api/agent/storage-token",
            data=b"{}",
            headers={
                "Authorization": f"Bearer {self.agent_token}",
                "Content-Type": "application/json",
                "User-Agent": self.user_agent,
            },
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                access = json.loads(response.read())
        except urllib.error.HTTPError as error:
            raise StorageUnavailable(
                f"the API refused a storage token (HTTP {error.code})"
            ) from None
        except (OSError, ValueError) as error:
            raise StorageUnavailable(f"could not get a storage token: {error}") from None
        self.fetched_at = time.monotonic()
        self._adopt(
            str(access["repository"]),
            str(access["secret"]),
            str(access["storage_token"]),
            float(access.get("storage_token_seconds") or 0),
        )
