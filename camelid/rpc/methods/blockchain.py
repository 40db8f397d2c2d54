"""Blockchain RPCs: tip, blocks, headers, coins and the UTXO set, in Bitcoin Core's shapes."""

from __future__ import annotations

from typing import Any

from camelid.chain.chainstate import ChainState
from camelid.core.serialize import hash_to_hex
from camelid.core.transaction import OutPoint
from camelid.rpc.context import RPCContext
from camelid.rpc.errors import RPCError, RPCErrorCode
from camelid.rpc.formatting import difficulty, parse_hash, script_pubkey_json, transaction_json
from camelid.rpc.jsonenc import amount
from camelid.rpc.registry import MethodRegistry, Param

METHODS = MethodRegistry()  # this module's methods; build_registry merges them

BLOCKHASH = Param("blockhash", ("string",), "the block hash")


def _entry(chainstate: ChainState, block_hash: bytes):
    entry = chainstate.get_entry(block_hash)
    if entry is None:
        raise RPCError(RPCErrorCode.INVALID_ADDRESS_OR_KEY, "Block not found")
    return entry


def _confirmations(chainstate: ChainState, entry) -> int:
    if not chainstate.is_in_active_chain(entry.hash):
        return -1
    return chainstate.tip.height - entry.height + 1


def _header_json(chainstate: ChainState, entry) -> dict[str, Any]:
    header = entry.header
    out: dict[str, Any] = {
        "hash": hash_to_hex(entry.hash),
        "confirmations": _confirmations(chainstate, entry),
        "height": entry.height,
        "version": header.version,
        "versionHex": f"{header.version:08x}",
        "merkleroot": hash_to_hex(header.merkle_root),
        "time": header.time,
        "mediantime": chainstate.median_time_past(entry),
        "nonce": header.nonce,
        "bits": f"{header.bits:08x}",
        "difficulty": difficulty(header.bits, chainstate.params),
        "chainwork": f"{entry.chainwork:064x}",
    }
    if entry.height > 0:
        out["previousblockhash"] = hash_to_hex(header.prev_hash)
    if out["confirmations"] > 0 and entry.height < chainstate.tip.height:
        out["nextblockhash"] = hash_to_hex(chainstate.get_hash_at_height(entry.height + 1))
    return out


@METHODS.method("Blockchain")
async def getblockcount(ctx: RPCContext) -> int:
    """Height of the most-work fully validated chain (the genesis block has height 0)."""
    return ctx.chain.chainstate.tip.height


@METHODS.method("Blockchain")
async def getbestblockhash(ctx: RPCContext) -> str:
    """Hash of the tip of the most-work fully validated chain."""
    return hash_to_hex(ctx.chain.tip_hash)


@METHODS.method("Blockchain")
async def getdifficulty(ctx: RPCContext) -> float:
    """Proof-of-work difficulty of the tip, as a multiple of the network's minimum difficulty."""
    return difficulty(ctx.chain.chainstate.tip.header.bits, ctx.chain.params)


@METHODS.method("Blockchain")
async def getblockchaininfo(ctx: RPCContext) -> dict[str, Any]:
    """State of the block chain: network, height, tip, difficulty, median time and chain work."""

    def read(chainstate: ChainState) -> dict[str, Any]:
        tip = chainstate.tip
        return {
            "chain": chainstate.params.name,
            "blocks": tip.height,
            "headers": tip.height,
            "bestblockhash": hash_to_hex(tip.hash),
            "difficulty": difficulty(tip.header.bits, chainstate.params),
            "time": tip.header.time,
            "mediantime": chainstate.median_time_past(tip),
            "verificationprogress": 1,
            "initialblockdownload": False,
            "chainwork": f"{tip.chainwork:064x}",
            "pruned": False,
            "warnings": "",
        }

    return await ctx.chain.call(read, ctx.chain.chainstate)


@METHODS.method("Blockchain", Param("height", ("number",), "height in the active chain", integer=True))
async def getblockhash(ctx: RPCContext, height: int) -> str:
    """Hash of the block at `height` in the active chain."""

    def read(chainstate: ChainState) -> bytes:
        if not 0 <= height <= chainstate.tip.height:
            raise RPCError(RPCErrorCode.INVALID_PARAMETER, "Block height out of range")
        return chainstate.get_hash_at_height(height)

    return hash_to_hex(await ctx.chain.call(read, ctx.chain.chainstate))


@METHODS.method(
    "Blockchain",
    BLOCKHASH,
    Param("verbose", ("bool",), "true for a JSON object, false for the 80-byte header as hex", False, True),
)
async def getblockheader(ctx: RPCContext, blockhash: str, verbose: bool) -> Any:
    """A block header: a JSON object, or with verbose=false the serialized header as hex."""
    block_hash = parse_hash(blockhash, "blockhash")

    def read(chainstate: ChainState) -> Any:
        entry = _entry(chainstate, block_hash)
        return _header_json(chainstate, entry) if verbose else entry.header.to_bytes().hex()

    return await ctx.chain.call(read, ctx.chain.chainstate)


@METHODS.method(
    "Blockchain",
    BLOCKHASH,
    Param("verbosity", ("number", "bool"), "0 for hex, 1 for an object with txids, 2 with decoded txs", False, 1),
)
async def getblock(ctx: RPCContext, blockhash: str, verbosity: int | bool) -> Any:
    """A block: hex-encoded (verbosity 0), a JSON object (1), or with every transaction decoded (2)."""
    block_hash = parse_hash(blockhash, "blockhash")
    level = int(verbosity)
    if level not in (0, 1, 2):
        raise RPCError(RPCErrorCode.INVALID_PARAMETER, f"verbosity must be 0, 1 or 2, got {verbosity}")

    def read(chainstate: ChainState) -> Any:
        entry = _entry(chainstate, block_hash)
        block = chainstate.get_block(block_hash)
        if block is None:
            raise RPCError(RPCErrorCode.MISC_ERROR, "Block not available (not fully downloaded)")
        if level == 0:
            return block.to_bytes().hex()
        out = _header_json(chainstate, entry)
        out["size"] = block.size
        out["nTx"] = len(block.transactions)
        if level == 1:
            out["tx"] = [tx.txid() for tx in block.transactions]
        else:
            out["tx"] = [transaction_json(tx, chainstate.params) for tx in block.transactions]
        return out

    return await ctx.chain.call(read, ctx.chain.chainstate)


@METHODS.method(
    "Blockchain",
    Param("txid", ("string",), "the transaction id"),
    Param("n", ("number",), "the output number", integer=True),
    Param("include_mempool", ("bool",), "whether to see the mempool's spends and outputs", False, True),
)
async def gettxout(ctx: RPCContext, txid: str, n: int, include_mempool: bool) -> dict[str, Any] | None:
    """An unspent transaction output, or null when it is spent or never existed."""
    outpoint = OutPoint(parse_hash(txid, "txid"), n)
    if not 0 <= n <= 0xFFFFFFFF:
        raise RPCError(RPCErrorCode.INVALID_PARAMETER, f"n must be a 32-bit output index, got {n}")

    def read(chain) -> dict[str, Any] | None:
        chainstate, mempool = chain.chainstate, chain.mempool
        tip = chainstate.tip
        if include_mempool:
            if any(txin.prevout == outpoint for entry in mempool.entries() for txin in entry.tx.inputs):
                return None
            mempool_tx = mempool.get(outpoint.txid)
            if mempool_tx is not None:
                if n >= len(mempool_tx.tx.outputs):
                    return None
                txout, confirmations, coinbase = mempool_tx.tx.outputs[n], 0, False
                return _txout_json(chainstate, tip, txout, confirmations, coinbase)
        coin = chainstate.get_coin(outpoint)
        if coin is None:
            return None
        return _txout_json(chainstate, tip, coin.tx_out, tip.height - coin.height + 1, coin.is_coinbase)

    return await ctx.chain.call(read, ctx.chain)


def _txout_json(chainstate: ChainState, tip, txout, confirmations: int, coinbase: bool) -> dict[str, Any]:
    return {
        "bestblock": hash_to_hex(tip.hash),
        "confirmations": confirmations,
        "value": amount(txout.value),
        "scriptPubKey": script_pubkey_json(txout.script_pubkey, chainstate.params),
        "coinbase": coinbase,
    }


@METHODS.method("Blockchain")
async def gettxoutsetinfo(ctx: RPCContext) -> dict[str, Any]:
    """Statistics of the UTXO set at the tip; `hash_serialized` commits to every unspent output."""

    def read(chainstate: ChainState) -> dict[str, Any]:
        count, total, utxo_hash = chainstate.utxo_set_stats()
        return {
            "height": chainstate.tip.height,
            "bestblock": hash_to_hex(chainstate.tip.hash),
            "txouts": count,
            "hash_serialized": utxo_hash.hex(),
            "total_amount": amount(total),
        }

    return await ctx.chain.call(read, ctx.chain.chainstate)
