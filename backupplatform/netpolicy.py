"""One network policy for every outbound target a tenant configures.

Servers, storage endpoints (S3/MinIO/GCS/Azure URLs, SFTP hosts), the Acronis base URL and
notification or webhook URLs are addresses that a tenant types and the platform then
connects to from inside its own network. Without a policy a tenant could reach the cloud
metadata service, the platform's own database or Redis, or anything on the operator's
private network (SSRF). The rules:

- link-local, metadata, multicast, broadcast and unspecified addresses: always refused;
- the platform's own database and Redis (host and port): always refused, unless the
  operator sets ``OUTBOUND_ALLOW_PLATFORM_SERVICES`` (the test suite backs up databases
  on its own PostgreSQL server);
- loopback and private ranges (RFC 1918, CGNAT, unique-local IPv6): refused unless inside
  ``OUTBOUND_ALLOWED_NETWORKS`` (``make run``'s local mode allows loopback and private
  ranges; production allows none until the operator lists its networks);
- everything else (public addresses): allowed.

A name is checked by every address it resolves to, when it is saved (a name that does not
resolve yet is accepted then) and again right before each connection, so a name that
resolves elsewhere later is refused at connect time.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings

from backupplatform.errors import ValidationFailed

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud metadata services that are not in a link-local range (Alibaba, Oracle legacy).
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200", "192.0.0.192")
)


class OutboundRefused(ValidationFailed):
    """A configured target that the network policy does not allow (a validation error of
    the field that names it, so every facade shows it in its own validation format)."""


def _allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(n, strict=False) for n in getattr(settings, "OUTBOUND_ALLOWED_NETWORKS", [])]


def _unmapped(address: Address) -> Address:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def address_refusal(address: Address) -> str | None:
    """Why ``address`` may not be connected to (``None`` if it may)."""
    address = _unmapped(address)
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address is never a target"
    if address.is_link_local:
        return "link-local addresses are never targets"
    if address.is_multicast or address.is_unspecified or address == ipaddress.ip_address("255.255.255.255"):
        return "not a unicast address"
    restricted = address.is_loopback or address.is_private or address in ipaddress.ip_network("100.64.0.0/10")
    if restricted and not any(address in net for net in _allowed_networks()):
        kind = "loopback" if address.is_loopback else "private"
        return (
            f"{kind} addresses are not allowed here (the operator lists allowed networks in OUTBOUND_ALLOWED_NETWORKS)"
        )
    return None


def _resolve(host: str) -> tuple[Address, ...]:
    try:
        return (ipaddress.ip_address(host.strip("[]")),)
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError, OSError):
        return ()
    return tuple(dict.fromkeys(ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos))


def _platform_endpoints() -> set[tuple[Address, int]]:
    """The platform's own database and Redis, as (address, port) pairs."""
    endpoints: list[tuple[str, int]] = []
    for db in settings.DATABASES.values():
        if db.get("HOST") and "sqlite" not in db.get("ENGINE", ""):
            default = 3306 if "mysql" in db["ENGINE"] else 5432
            endpoints.append((db["HOST"], int(db.get("PORT") or default)))
    redis_url = getattr(settings, "REDIS_URL", "")
    if redis_url:
        parts = urlsplit(redis_url)
        if parts.hostname:
            endpoints.append((parts.hostname, parts.port or 6379))
    found = set()
    for host, port in endpoints:
        for address in _resolve(host):
            found.add((_unmapped(address), port))
    return found


def host_refusal(host: str, port: int | None = None) -> str | None:
    """Why a connection to ``host``:``port`` is refused, or ``None``.

    A name that does not resolve is not refused here (the connection will fail on its own,
    and it is checked again when it does resolve).
    """
    if not isinstance(host, str) or not host or any(ord(c) < 33 for c in host):
        return "not a valid host name"
    addresses = _resolve(host)
    for address in addresses:
        if reason := address_refusal(address):
            return reason
    if port is not None and not getattr(settings, "OUTBOUND_ALLOW_PLATFORM_SERVICES", False):
        own = _platform_endpoints()
        if any((_unmapped(a), int(port)) in own for a in addresses):
            return "the platform's own database and Redis are never targets"
    return None


def url_refusal(url: str) -> str | None:
    """Why an http(s) URL may not be called, or ``None``."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return "not a valid URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "not an http(s) URL"
    return host_refusal(parts.hostname, port)


def check_host(host: str, port: int | None = None, *, field: str = "host") -> None:
    """Raise ``OutboundRefused`` (a validation error naming ``field``) if refused."""
    if reason := host_refusal(host, port):
        raise OutboundRefused(details={field: [f"{host}: {reason}."]})


def check_url(url: str, *, field: str = "url") -> None:
    if reason := url_refusal(url):
        raise OutboundRefused(details={field: [f"{reason}."]})
