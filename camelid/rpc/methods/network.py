"""Network RPCs: peers, connections and bans, in Bitcoin Core's shapes (plus each peer's node id and models).

Bans are per IP address; Bitcoin Core's subnets are accepted only as a single
address ("1.2.3.4/32", "::1/128") and listed that way.
"""

from __future__ import annotations

import time
from typing import Any

from camelid.p2p.addrbook import AddressKey
from camelid.p2p.messages import PROTOCOL_VERSION, Ping
from camelid.p2p.peer import Direction, PeerInfo
from camelid.p2p.peer_address import parse_peer_address
from camelid.p2p.schema import canonical_ip
from camelid.rpc.context import RPCContext
from camelid.rpc.errors import RPCError, RPCErrorCode
from camelid.rpc.registry import MethodRegistry, Param

METHODS = MethodRegistry()  # this module's methods; build_registry merges them

DEFAULT_BAN_SECONDS = 24 * 60 * 60


def _peer_json(peer: PeerInfo) -> dict[str, Any]:
    host = f"[{peer.host}]" if ":" in peer.host else peer.host
    out: dict[str, Any] = {
        "id": peer.id,
        "addr": f"{host}:{peer.port}",
        "services": f"{peer.services:016x}",
        "nodeid": peer.node_id.hex(),
        "models": [model.hex() for model in peer.models],
        "bytessent": peer.bytes_sent,
        "bytesrecv": peer.bytes_received,
        "conntime": int(peer.connected_since),
        "version": peer.protocol_version,
        "subver": peer.user_agent,
        "inbound": peer.direction is Direction.INBOUND,
        "bestheight": peer.best_height,  # announced in its version, raised as its blocks reach us
    }
    if peer.latency is not None:
        out["pingtime"] = round(peer.latency, 6)
    return out


def _peer_address(ctx: RPCContext, text: str) -> AddressKey:
    try:
        ip, port = parse_peer_address(text)
    except ValueError as exc:
        raise RPCError(RPCErrorCode.INVALID_PARAMETER, f"Error: {exc}") from None
    return ip, ctx.params.default_port if port is None else port


def _ban_target(text: str) -> str:
    """The IP of "IP" or "IP/32" ("IP/128" for IPv6): a single-address subnet is all a ban can name."""
    ip_text, _, prefix = text.partition("/")
    try:
        ip = canonical_ip(ip_text)
    except ValueError:
        raise RPCError(RPCErrorCode.CLIENT_INVALID_IP_OR_SUBNET, "Error: Invalid IP/Subnet") from None
    if prefix and prefix != ("128" if ":" in ip else "32"):
        raise RPCError(RPCErrorCode.CLIENT_INVALID_IP_OR_SUBNET, "Error: only single addresses can be banned")
    return ip


def _as_subnet(ip: str) -> str:
    return f"{ip}/128" if ":" in ip else f"{ip}/32"


@METHODS.method("Network")
async def getconnectioncount(ctx: RPCContext) -> int:
    """The number of connected peers (handshake completed)."""
    return len(ctx.p2p.manager.peers())


@METHODS.method("Network")
async def getpeerinfo(ctx: RPCContext) -> list[dict[str, Any]]:
    """Every connected peer: address, direction, traffic, ping time in seconds (once measured), node id."""
    return [_peer_json(peer) for peer in ctx.p2p.manager.peers()]


@METHODS.method("Network")
async def getnetworkinfo(ctx: RPCContext) -> dict[str, Any]:
    """This node's P2P state: versions, services, identity, listening port and connection counts."""
    manager = ctx.p2p.manager
    peers = manager.peers()
    inbound = sum(peer.direction is Direction.INBOUND for peer in peers)
    return {
        "subversion": manager.settings.user_agent,
        "protocolversion": PROTOCOL_VERSION,
        "localservices": f"{manager.settings.services:016x}",
        "nodeid": manager.node_id.hex(),
        "networkactive": True,
        "listening": manager.listen_port is not None,
        "port": manager.listen_port,
        "connections": len(peers),
        "connections_in": inbound,
        "connections_out": len(peers) - inbound,
    }


@METHODS.method(
    "Network",
    Param("node", ("string",), "the peer's IP[:port]"),
    Param("command", ("string",), "'add' to keep it connected, 'remove' to stop redialling it"),
)
async def addnode(ctx: RPCContext, node: str, command: str) -> None:
    """Add a peer to, or remove it from, the list of peers the node keeps connected."""
    address = _peer_address(ctx, node)
    if command == "add":
        if not ctx.p2p.add_node(address):
            raise RPCError(RPCErrorCode.CLIENT_NODE_ALREADY_ADDED, "Error: Node already added")
    elif command == "remove":
        if not ctx.p2p.remove_node(address):
            raise RPCError(
                RPCErrorCode.CLIENT_NODE_NOT_ADDED,
                "Error: Node could not be removed. It has not been added previously.",
            )
    else:
        raise RPCError(RPCErrorCode.INVALID_PARAMETER, f"command must be 'add' or 'remove', got {command!r}")


@METHODS.method(
    "Network",
    Param("address", ("string",), "the peer's IP:port, as getpeerinfo's addr", False, ""),
    Param("nodeid", ("number",), "the peer's id in getpeerinfo, instead of address", False, None, integer=True),
)
async def disconnectnode(ctx: RPCContext, address: str, nodeid: int | None) -> None:
    """Close the connection to one peer, named by address or by id (not both)."""
    manager = ctx.p2p.manager
    if bool(address) == (nodeid is not None):
        raise RPCError(RPCErrorCode.INVALID_PARAMETER, "Only one of address and nodeid should be provided.")
    if nodeid is None:
        wanted = _peer_address(ctx, address)
        nodeid = next((p.id for p in manager.peers() if (p.host, p.port) == wanted), None)
    if nodeid is None or not manager.disconnect(nodeid):
        raise RPCError(RPCErrorCode.CLIENT_NODE_NOT_CONNECTED, "Node not found in connected nodes")


@METHODS.method(
    "Network",
    Param("subnet", ("string",), "the IP (or IP/32, IP/128) to ban or unban"),
    Param("command", ("string",), "'add' or 'remove'"),
    Param("bantime", ("number",), "seconds to ban for (0: a day), or with absolute an epoch time", False, 0, True),
    Param("absolute", ("bool",), "bantime is an absolute epoch time", False, False),
)
async def setban(ctx: RPCContext, subnet: str, command: str, bantime: int, absolute: bool) -> None:
    """Refuse an address (dropping any connection to it), or lift such a ban; bans survive restarts."""
    manager = ctx.p2p.manager
    ip = _ban_target(subnet)
    if command == "add":
        if ip in manager.banned():
            raise RPCError(RPCErrorCode.CLIENT_NODE_ALREADY_ADDED, "Error: IP/Subnet already banned")
        seconds = bantime - time.time() if absolute else bantime or DEFAULT_BAN_SECONDS
        if seconds <= 0:
            raise RPCError(RPCErrorCode.INVALID_PARAMETER, "Error: ban time must lie in the future")
        manager.ban(ip, seconds)
    elif command == "remove":
        if not manager.unban(ip):
            raise RPCError(
                RPCErrorCode.CLIENT_INVALID_IP_OR_SUBNET,
                "Error: Unban failed. Requested address/subnet was not previously manually banned.",
            )
    else:
        raise RPCError(RPCErrorCode.INVALID_PARAMETER, f"command must be 'add' or 'remove', got {command!r}")


@METHODS.method("Network")
async def listbanned(ctx: RPCContext) -> list[dict[str, Any]]:
    """Every current ban with its expiry (seconds since the epoch)."""
    now = time.time()
    return [
        {"address": _as_subnet(ip), "banned_until": int(until), "time_remaining": int(until - now)}
        for ip, until in sorted(ctx.p2p.manager.banned().items())
    ]


@METHODS.method("Network")
async def clearbanned(ctx: RPCContext) -> None:
    """Lift every ban."""
    manager = ctx.p2p.manager
    for ip in manager.banned():
        manager.unban(ip)


@METHODS.method("Network")
async def ping(ctx: RPCContext) -> None:
    """Ping every peer now; getpeerinfo's pingtime shows the round trip once the pong is back."""
    manager = ctx.p2p.manager
    for info in manager.peers():
        peer = manager.peer(info.id)
        if peer is not None and not peer.awaiting_pong:
            manager.send(peer, Ping(peer.start_ping()))


@METHODS.method(
    "Network",
    Param("nodeid", ("string",), "the recipient's identity key (getnetworkinfo's nodeid), hex"),
    Param("command", ("string",), "the inner command"),
    Param("payload", ("string",), "the inner payload, hex", False, ""),
)
async def senddirected(ctx: RPCContext, nodeid: str, command: str, payload: str) -> str:
    """Route a directed message to a node that need not be a peer (regtest only: a test hook); its message id."""
    if ctx.params.name != "regtest":
        raise RPCError(RPCErrorCode.METHOD_NOT_FOUND, "senddirected is only available on regtest")
    try:
        message_id = ctx.p2p.manager.send_directed(bytes.fromhex(nodeid), command, bytes.fromhex(payload))
    except ValueError as exc:
        raise RPCError(RPCErrorCode.INVALID_PARAMETER, f"Error: {exc}") from None
    return message_id.hex()
