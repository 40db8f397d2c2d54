"""The text form of a peer's address that users type: --connect, --addnode, --seednode and the addnode RPC.

It lives in the P2P layer, below both the node's configuration and its RPC
methods, so that neither has to import the other (or the P2P service) to read one.
"""

from __future__ import annotations

from camelid.p2p.schema import canonical_ip


def parse_peer_address(text: str) -> tuple[str, int | None]:
    """Parse "IP", "IP:port" or "[IPv6]:port" into (canonical IP, port or None for the network's default)."""
    text = text.strip()
    host, port_text = text, ""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise ValueError(f"expected [IPv6]:port, got {text!r}")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    try:
        ip = canonical_ip(host)
    except ValueError:
        raise ValueError(f"expected IP or IP:port (host names are not resolved), got {text!r}") from None
    if not port_text:
        return ip, None
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"bad port in {text!r}")
    return ip, int(port_text)
