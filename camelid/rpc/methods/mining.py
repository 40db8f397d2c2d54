"""Mining RPCs: getmininginfo, submitblock and (regtest only) generatetoaddress."""

from __future__ import annotations

from typing import Any

from camelid.chain.chainstate import ChainState
from camelid.chain.errors import BlockRejected
from camelid.core.serialize import hash_to_hex
from camelid.rpc.context import RPCContext
from camelid.rpc.errors import RPCError, RPCErrorCode
from camelid.rpc.formatting import decode_block, difficulty
from camelid.rpc.methods.control import address_script
from camelid.rpc.registry import MethodRegistry, Param

METHODS = MethodRegistry()  # this module's methods; build_registry merges them

NETWORK_HASHPS_BLOCKS = 120  # as Bitcoin Core's getnetworkhashps default

# submitblock's BIP22 answers for blocks that were not rejected.
_SUBMIT_RESULTS = {"connected": None, "duplicate": "duplicate", "side-chain": "inconclusive", "orphan": "inconclusive"}


def network_hashps(chainstate: ChainState) -> float:
    """Hashes per second the network spent on the last NETWORK_HASHPS_BLOCKS blocks (work / time)."""
    tip = chainstate.tip
    if tip.height == 0:
        return 0.0
    start = chainstate.get_entry(chainstate.get_hash_at_height(max(0, tip.height - NETWORK_HASHPS_BLOCKS)))
    seconds = tip.header.time - start.header.time
    return (tip.chainwork - start.chainwork) / seconds if seconds > 0 else 0.0


@METHODS.method("Mining")
async def getmininginfo(ctx: RPCContext) -> dict[str, Any]:
    """Mining state: height, difficulty, network and local hash rates, mempool size."""
    chain = ctx.chain

    def read(chainstate: ChainState) -> dict[str, Any]:
        return {
            "blocks": chainstate.tip.height,
            "difficulty": difficulty(chainstate.tip.header.bits, chainstate.params),
            "networkhashps": network_hashps(chainstate),
            "pooledtx": len(chain.mempool),
            "chain": chainstate.params.name,
            "warnings": "",
        }

    info = await chain.call(read, chain.chainstate)
    info["mining"] = ctx.mining
    info["localhashps"] = ctx.miner.hashrate
    return info


@METHODS.method("Mining", Param("hexdata", ("string",), "the serialized block as hex"))
async def submitblock(ctx: RPCContext, hexdata: str) -> str | None:
    """Offer a block to the chain: null when it became the tip, else "duplicate", "inconclusive" or the reason."""
    block = decode_block(hexdata)
    try:
        result = await ctx.chain.submit_block(block)
    except BlockRejected as exc:
        return exc.reason
    return _SUBMIT_RESULTS[result.status]


@METHODS.method(
    "Generating",
    Param("nblocks", ("number",), "how many blocks to mine", integer=True),
    Param("address", ("string",), "the address the coinbase pays"),
    Param("maxtries", ("number",), "give up after this many nonces", False, None, integer=True),
)
async def generatetoaddress(ctx: RPCContext, nblocks: int, address: str, maxtries: int | None) -> list[str]:
    """Mine `nblocks` blocks on the tip paying `address` (regtest only); the new block hashes."""
    if ctx.params.name != "regtest":
        raise RPCError(RPCErrorCode.METHOD_NOT_FOUND, "generatetoaddress is only available on regtest")
    if nblocks < 0:
        raise RPCError(RPCErrorCode.INVALID_PARAMETER, f"nblocks must not be negative, got {nblocks}")
    if maxtries is not None and maxtries < 1:
        raise RPCError(RPCErrorCode.INVALID_PARAMETER, f"maxtries must be at least 1, got {maxtries}")
    script = address_script(address, ctx.params.name)
    try:
        hashes = await ctx.miner.generate(nblocks, script, maxtries)
    except BlockRejected as exc:
        raise RPCError(RPCErrorCode.VERIFY_ERROR, f"mined block rejected: {exc}") from None
    return [hash_to_hex(h) for h in hashes]
