"""Raw transaction and mempool RPCs."""

from __future__ import annotations

from typing import Any

from camelid.chain.errors import TxRejected
from camelid.core.serialize import hash_to_hex
from camelid.rpc.context import RPCContext
from camelid.rpc.errors import RPCError, RPCErrorCode
from camelid.rpc.formatting import decode_transaction, parse_hash, transaction_json
from camelid.rpc.jsonenc import amount
from camelid.rpc.registry import MethodRegistry, Param

METHODS = MethodRegistry()  # this module's methods; build_registry merges them

MISSING_INPUTS = "bad-txns-inputs-missingorspent"
ALREADY_CONFIRMED = "txn-already-known"
ALREADY_IN_MEMPOOL = "txn-already-in-mempool"


@METHODS.method("Rawtransactions", Param("hexstring", ("string",), "the serialized transaction as hex"))
async def decoderawtransaction(ctx: RPCContext, hexstring: str) -> dict[str, Any]:
    """The JSON form of a serialized transaction."""
    return transaction_json(decode_transaction(hexstring), ctx.params)


@METHODS.method(
    "Rawtransactions",
    Param("txid", ("string",), "the transaction id"),
    Param("verbose", ("bool", "number"), "false for hex, true for a JSON object", False, False),
    Param("blockhash", ("string",), "look only in this block", False, None),
)
async def getrawtransaction(ctx: RPCContext, txid: str, verbose: bool | int, blockhash: str | None) -> Any:
    """A mempool or confirmed transaction: hex, or with verbose=true a JSON object with its block."""
    tx_hash = parse_hash(txid, "txid")
    block_hash = parse_hash(blockhash, "blockhash") if blockhash is not None else None

    def read(chain) -> tuple[Any, bytes | None]:
        if block_hash is None:
            entry = chain.mempool.get(tx_hash)
            if entry is not None:
                return entry.tx, None
            found = chain.chainstate.find_transaction(tx_hash)
            if found is None:
                raise RPCError(RPCErrorCode.INVALID_ADDRESS_OR_KEY, "No such mempool or blockchain transaction.")
            return found
        block = chain.chainstate.get_block(block_hash)
        if block is None:
            raise RPCError(RPCErrorCode.INVALID_ADDRESS_OR_KEY, "Block hash not found")
        tx = next((t for t in block.transactions if t.hash == tx_hash), None)
        if tx is None:
            raise RPCError(RPCErrorCode.INVALID_ADDRESS_OR_KEY, "No such transaction found in the provided block.")
        return tx, block_hash

    tx, in_block = await ctx.chain.call(read, ctx.chain)
    if not verbose:
        return tx.to_bytes().hex()
    out = transaction_json(tx, ctx.params)
    out["hex"] = tx.to_bytes().hex()
    if in_block is not None:
        out.update(await ctx.chain.call(_block_position, ctx.chain.chainstate, in_block))
    return out


def _block_position(chainstate, block_hash: bytes) -> dict[str, Any]:
    entry = chainstate.get_entry(block_hash)
    active = chainstate.is_in_active_chain(block_hash)
    return {
        "blockhash": hash_to_hex(block_hash),
        "in_active_chain": active,
        "confirmations": chainstate.tip.height - entry.height + 1 if active else 0,
        "time": entry.header.time,
        "blocktime": entry.header.time,
    }


@METHODS.method("Rawtransactions", Param("hexstring", ("string",), "the signed transaction as hex"))
async def sendrawtransaction(ctx: RPCContext, hexstring: str) -> str:
    """Submit a signed transaction to the mempool; its txid.

    Errors: -22 undecodable, -25 missing or spent inputs, -26 rejected by a rule
    (the reason is in the message), -27 already confirmed.
    """
    tx = decode_transaction(hexstring)
    try:
        await ctx.chain.submit_transaction(tx)
    except TxRejected as exc:
        if exc.reason == ALREADY_IN_MEMPOOL:
            return tx.txid()  # resubmitting is harmless, as in Bitcoin Core
        if exc.reason == ALREADY_CONFIRMED:
            raise RPCError(RPCErrorCode.VERIFY_ALREADY_IN_CHAIN, "Transaction already in block chain") from None
        code = RPCErrorCode.VERIFY_ERROR if exc.reason == MISSING_INPUTS else RPCErrorCode.VERIFY_REJECTED
        raise RPCError(code, str(exc)) from None
    return tx.txid()


def _entry_json(entry) -> dict[str, Any]:
    return {
        "size": entry.size,
        "fee": amount(entry.fee),
        "time": entry.time,
        "height": entry.height,
        "depends": sorted(hash_to_hex(txid) for txid in entry.parents),
        "spentby": sorted(hash_to_hex(txid) for txid in entry.children),
    }


@METHODS.method(
    "Blockchain", Param("verbose", ("bool",), "true for an object keyed by txid, false for a txid list", False, False)
)
async def getrawmempool(ctx: RPCContext, verbose: bool) -> Any:
    """Transactions in the mempool: their txids, or with verbose=true each one's size, fee, time and links."""
    entries = await ctx.chain.call(ctx.chain.mempool.entries)
    if not verbose:
        return [entry.tx.txid() for entry in entries]
    return {entry.tx.txid(): _entry_json(entry) for entry in entries}


@METHODS.method("Blockchain")
async def getmempoolinfo(ctx: RPCContext) -> dict[str, Any]:
    """Mempool size, memory use, limit and the fee rate a new transaction must pay; `orphans`: transactions
    held until their parents arrive (camelid.p2p.tx_orphans), outside the mempool."""
    mempool = ctx.chain.mempool
    info = await ctx.chain.call(mempool.info)
    p2p = ctx.p2p_service
    return {
        "loaded": True,
        "size": info["size"],
        "bytes": info["bytes"],
        "usage": info["usage"],
        "total_fee": amount(int(info["total_fee"])),
        "maxmempool": mempool.max_bytes,
        "mempoolminfee": amount(int(info["min_fee_rate"] * 1000)),  # per kB, as Bitcoin Core
        "orphans": 0 if p2p is None else len(p2p.relay.orphans),
    }
