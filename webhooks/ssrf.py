"""Which URLs webhooks may reach: public http(s) addresses only, unless allowlisted.

A customer chooses the URL and we POST to it from inside our network, so without this check a
webhook could reach our database, Redis, the cloud metadata service (169.254.169.254) or a
neighbour's machine. Every address a host name resolves to must be public; `resolve_target`
returns those addresses and the delivery connects to one of them (not to the name again), so a
DNS answer that changes between the check and the connection (DNS rebinding) changes nothing.

settings.WEBHOOK_ALLOWED_HOSTS (host names or CIDRs) lets development and tests reach
127.0.0.1 and the like.
"""

import ipaddress
import socket
from dataclasses import dataclass

import httpx
from django.conf import settings

from webhooks.exceptions import InvalidUrl, UrlNotAllowed

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

SCHEMES = ("http", "https")
# Names of cloud metadata services; they resolve to link-local addresses, which are refused
# anyway, but a resolver we do not control could answer otherwise.
METADATA_HOSTS = frozenset(
    {
        "metadata.google.internal",
        "metadata.goog",
        "metadata",
        "instance-data",
        "instance-data.ec2.internal",
    }
)
# Not public, beyond what ipaddress's is_private/is_global already say (they call CGNAT,
# multicast and deprecated site-local addresses "global").
REFUSED_NETWORKS: tuple[IPNetwork, ...] = (
    ipaddress.ip_network("100.64.0.0/10"),  # carrier-grade NAT
    ipaddress.ip_network("fec0::/10"),  # deprecated site-local
    ipaddress.ip_network("2001::/32"),  # Teredo tunnels to an arbitrary IPv4 address
)
NAT64 = ipaddress.ip_network("64:ff9b::/96")


class HostNotFound(InvalidUrl):
    default_detail = "The URL's host name does not resolve."


@dataclass(frozen=True)
class Target:
    """A checked URL and the addresses its host resolved to, every one of them allowed."""

    url: httpx.URL
    addresses: tuple[IPAddress, ...]


def parse_url(url: str) -> httpx.URL:
    """The URL if it is http(s) with a host and no credentials; InvalidUrl otherwise."""
    try:
        parsed = httpx.URL(url.strip())
    except (httpx.InvalidURL, TypeError, ValueError) as error:
        raise InvalidUrl(f"Not a valid URL: {error}.") from error
    if parsed.scheme not in SCHEMES:
        raise InvalidUrl("Only http:// and https:// URLs can receive webhooks.")
    if not parsed.host:
        raise InvalidUrl("The URL has no host name.")
    if parsed.userinfo:
        raise InvalidUrl("Put no user name or password in the URL; verify the signature instead.")
    return parsed


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, NAT64), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in NAT64:
        return ipaddress.IPv4Address(address.packed[-4:])
    return None


def is_public_address(address: IPAddress) -> bool:
    """True for a globally routable unicast address (and any IPv4 address inside it is too)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return is_public_address(embedded)
    if any(
        address in network for network in REFUSED_NETWORKS if network.version == address.version
    ):
        return False
    return address.is_global and not (
        address.is_multicast or address.is_reserved or address.is_unspecified
    )


def _allowlist() -> tuple[frozenset[str], tuple[IPNetwork, ...]]:
    names, networks = set(), []
    for entry in settings.WEBHOOK_ALLOWED_HOSTS:
        entry = entry.strip().strip("[]").lower()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            names.add(entry.rstrip("."))
    return frozenset(names), tuple(networks)


def _is_allowlisted(address: IPAddress, networks: tuple[IPNetwork, ...]) -> bool:
    candidates = [address]
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        candidates.append(address.ipv4_mapped)
    return any(
        candidate in network
        for candidate in candidates
        for network in networks
        if network.version == candidate.version
    )


def _resolve(host: str, port: int) -> tuple[IPAddress, ...]:
    try:
        return (ipaddress.ip_address(host),)
    except ValueError:
        pass
    try:
        answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise HostNotFound(f"The host name {host} does not resolve.") from error
    addresses = []
    for _, _, _, _, socket_address in answers:
        # An IPv6 link-local answer may carry a scope ("fe80::1%eth0").
        address = ipaddress.ip_address(socket_address[0].split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise HostNotFound(f"The host name {host} does not resolve.")
    return tuple(addresses)


def resolve_target(url: str) -> Target:
    """Parse `url`, resolve its host once and check every address; raise when any is refused."""
    parsed = parse_url(url)
    host = parsed.host.lower().rstrip(".")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    allowed_names, allowed_networks = _allowlist()
    is_named_in_allowlist = host in allowed_names
    if host in METADATA_HOSTS and not is_named_in_allowlist:
        raise UrlNotAllowed(f"{host} is a cloud metadata service; webhooks cannot reach it.")
    addresses = _resolve(host, port)
    if not is_named_in_allowlist:
        for address in addresses:
            if not (is_public_address(address) or _is_allowlisted(address, allowed_networks)):
                raise UrlNotAllowed(
                    f"{host} resolves to {address}, a loopback, private, link-local or "
                    "otherwise non-public address; webhooks can only reach public addresses."
                )
    return Target(parsed, addresses)


def check_url(url: str) -> str:
    """The URL, normalised, if webhooks may reach it now; InvalidUrl or UrlNotAllowed if not."""
    return str(resolve_target(url).url)
