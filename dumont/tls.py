"""One TLS context for every outgoing HTTPS client (providers, webhook deliveries).

httpx builds a fresh `ssl.SSLContext` (loading certifi's CA bundle) for each Client unless it is
given one: about 29 ms of CPU on this machine, paid on every provider call before this
(bench/load.py's profile of POST /api/instances). Contexts are safe to share between clients
and threads once configured.
"""

import ssl
from functools import cache

import certifi


@cache
def tls_context() -> ssl.SSLContext:
    """Certificate and host-name verification against certifi's CA bundle, as httpx does."""
    return ssl.create_default_context(cafile=certifi.where())
