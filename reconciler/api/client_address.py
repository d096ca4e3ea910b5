"""Who the client is: the direct peer, or what a configured trusted proxy says it forwarded for.

X-Forwarded-For and X-Real-IP are believed only from peers in `--trusted-proxy` (default: none).
A request that carries proxy headers from a loopback peer that is not a trusted proxy came through a
proxy on this host the server was not told about: every client behind it would look local, so its
address is unknown (not local, in no allowlist) rather than the proxy's.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

PROXY_HEADERS = ("x-forwarded-for", "x-real-ip", "forwarded")
LOOPBACK: tuple[Network, ...] = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


def parse_ip(text: str) -> IPAddress | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1:text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":")[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _within(ip: IPAddress, nets: tuple[Network, ...]) -> bool:
    return any(ip.version == net.version and ip in net for net in nets)


def client_ip(peer: str | None, headers: Mapping[str, str], trusted: tuple[Network, ...]) -> IPAddress | None:
    """The client's address, or None when it cannot be known. `headers` is keyed by lower-case name."""
    direct = parse_ip(peer or "")
    if direct is None:
        return None
    if not _within(direct, trusted):
        if direct.is_loopback and any(h in headers for h in PROXY_HEADERS):
            return None  # an unconfigured proxy on this host: the real client is somewhere behind it
        return direct
    # From a trusted proxy: walk the chain right to left, past our own proxies, to the first other hop.
    forwarded = headers.get("x-forwarded-for")
    hops = [h for h in (forwarded.split(",") if forwarded else [headers.get("x-real-ip", "")]) if h.strip()]
    if not hops:
        return direct  # the proxy's host calling directly, not forwarding
    ip: IPAddress | None = None
    for hop in reversed(hops):
        ip = parse_ip(hop)
        if ip is None:
            return None  # garbage in the chain: believe nothing left of it
        if not _within(ip, trusted):
            return ip
    return ip  # every hop is one of our proxies: the first of them is where the request began


def allowed(ip: IPAddress | None, nets: tuple[Network, ...]) -> bool:
    return ip is not None and _within(ip, nets)
