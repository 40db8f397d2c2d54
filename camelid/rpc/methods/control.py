"""Control and utility RPCs: help, stop, uptime, getresourceinfo, validateaddress."""

from __future__ import annotations

import time
from typing import Any

from camelid.core.script import p2pkh_script
from camelid.crypto.address import address_to_hash160
from camelid.node.events import ShutdownRequested
from camelid.rpc.context import RPCContext
from camelid.rpc.errors import RPCError, RPCErrorCode
from camelid.rpc.registry import MethodRegistry, Param

METHODS = MethodRegistry()  # this module's methods; build_registry merges them

STOP_MESSAGE = "CamelidCoin server stopping"


@METHODS.method(
    "Control", Param("command", ("string",), "the method to explain", False, None), during_warmup=True
)
async def help(ctx: RPCContext, command: str | None) -> str:
    """List all methods, or explain one in detail."""
    if command is not None:
        method = ctx.methods.get(command)
        if method is None:
            return f"help: unknown command: {command}"
        return method.help_text()
    lines: list[str] = []
    category = None
    for method in ctx.methods:
        if method.category != category:
            if lines:
                lines.append("")
            category = method.category
            lines.append(f"== {category} ==")
        lines.append(method.usage)
    return "\n".join(lines)


@METHODS.method("Control", during_warmup=True)
async def stop(ctx: RPCContext) -> str:
    """Shut the node down cleanly: stop mining, flush and close the chain state, remove the cookie."""
    await ctx.bus.publish(ShutdownRequested("stop RPC"))
    return STOP_MESSAGE


@METHODS.method("Control", during_warmup=True)
async def uptime(ctx: RPCContext) -> int:
    """Seconds since the node started."""
    return int(time.monotonic() - ctx.started)


@METHODS.method("Control")
async def getresourceinfo(ctx: RPCContext) -> dict[str, dict[str, dict[str, int]]]:
    """How full each table a peer can grow is, by service (p2p, chain, jobs, models): per table `size` entries
    of at most `limit` (absent where only bytes bound it), and `bytes` of at most `byte_limit` where it holds
    bytes (connections: their unsent send buffers). docs/operations.md's Limits table says why each is bounded."""
    groups = {
        "p2p": ctx.p2p.fill(),
        "chain": await ctx.chain.fill(),
        "jobs": ctx.jobs.fill(),
        "models": ctx.models.fill(),
    }
    return {group: {name: fill.to_json() for name, fill in fills.items()} for group, fills in groups.items()}


@METHODS.method("Util", Param("address", ("string",), "the address to check"))
async def validateaddress(ctx: RPCContext, address: str) -> dict[str, Any]:
    """Whether `address` is a valid address of this node's network, and the script paying it."""
    try:
        _, h160 = address_to_hash160(address, ctx.params.name)
    except ValueError as exc:
        return {"isvalid": False, "error": str(exc)}
    return {
        "isvalid": True,
        "address": address,
        "scriptPubKey": p2pkh_script(h160).hex(),
        "isscript": False,
        "iswitness": False,
    }


def address_script(address: str, network: str) -> bytes:
    """scriptPubKey paying `address`; -5 "Invalid address" when it is not one of `network`'s."""
    try:
        _, h160 = address_to_hash160(address, network)
    except ValueError as exc:
        raise RPCError(RPCErrorCode.INVALID_ADDRESS_OR_KEY, f"Error: Invalid address: {exc}") from None
    return p2pkh_script(h160)
