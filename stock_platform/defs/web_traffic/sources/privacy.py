"""What of a client's address leaves the raw lake: its network (client_prefix) and a keyed
pseudonym of the address and user agent (visitor_id). Full addresses stay in raw/ and rejected/."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress


def canonical_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The client address (an IPv4-mapped IPv6 address counts as its IPv4), None if not an IP."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def client_network(text: str) -> tuple[str, str] | None:
    """(canonical address, its network: IPv4 /24 or IPv6 /48 in CIDR form), None if not an IP."""
    address = canonical_ip(text)
    if address is None:
        return None
    bits = 24 if address.version == 4 else 48
    network = ipaddress.ip_network(f"{address}/{bits}", strict=False)
    return address.compressed, network.compressed


def visitor_id(salt: bytes, ip: str, user_agent: str | None) -> str:
    """HMAC-SHA256 keyed by `salt` over "ip|user_agent" (UTF-8), first 16 bytes in hex."""
    message = f"{ip}|{user_agent or ''}".encode()
    return hmac.new(salt, message, hashlib.sha256).hexdigest()[:32]
