"""Turning RPC arguments into chain objects and chain objects into Bitcoin Core shaped JSON."""

from __future__ import annotations

from typing import Any

from camelid.core.block import Block, BlockHeader
from camelid.core.opcodes import Opcode
from camelid.core.params import ChainParams
from camelid.core.script import ScriptError, decode_script_num, match_p2pkh, parse_script
from camelid.core.serialize import hash_to_hex
from camelid.core.transaction import Transaction
from camelid.crypto.address import hash160_to_address
from camelid.rpc.errors import RPCError, RPCErrorCode
from camelid.rpc.jsonenc import amount


def parse_hash(value: str, name: str) -> bytes:
    """A 64-digit displayed hash argument in internal byte order; -8 naming `name` otherwise."""
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise RPCError(RPCErrorCode.INVALID_PARAMETER, f"{name} must be hexadecimal string (not '{value}')") from None
    if len(raw) != 32:
        raise RPCError(
            RPCErrorCode.INVALID_PARAMETER, f"{name} must be of length 64 (not {len(value)}, for '{value}')"
        )
    return raw[::-1]


def decode_transaction(hexstring: str) -> Transaction:
    try:
        return Transaction.from_bytes(bytes.fromhex(hexstring))
    except ValueError as exc:
        raise RPCError(RPCErrorCode.DESERIALIZATION_ERROR, f"TX decode failed: {exc}") from None


def decode_block(hexdata: str) -> Block:
    try:
        return Block.from_bytes(bytes.fromhex(hexdata))
    except ValueError as exc:
        raise RPCError(RPCErrorCode.DESERIALIZATION_ERROR, f"Block decode failed: {exc}") from None


def difficulty(bits: int, params: ChainParams) -> float:
    """How many times harder than the network's easiest target (1.0 at the proof-of-work limit)."""
    return params.pow_limit / BlockHeader(0, b"", b"", 0, bits, 0).target


def script_asm(script: bytes) -> str:
    """Human-readable script, as Bitcoin Core's ScriptToAsmStr ("[error]" for a truncated push)."""
    try:
        ops = parse_script(script)
    except ScriptError:
        return "[error]"
    words = []
    for op in ops:
        if op.data is not None and op.opcode not in (Opcode.OP_0,):
            words.append(_push_word(op.data))
        elif op.opcode in Opcode._value2member_map_:
            name = Opcode(op.opcode).name
            words.append({"OP_0": "0", "OP_1NEGATE": "-1"}.get(name, name))
        else:
            words.append("OP_UNKNOWN")
    return " ".join(words)


def _push_word(data: bytes) -> str:
    if len(data) <= 4:
        try:
            return str(decode_script_num(data, max_size=4))
        except ScriptError:
            pass
    return data.hex()


def script_pubkey_json(script: bytes, params: ChainParams) -> dict[str, Any]:
    out: dict[str, Any] = {"asm": script_asm(script), "hex": script.hex()}
    h160 = match_p2pkh(script)
    if h160 is not None:
        out["type"] = "pubkeyhash"
        out["address"] = hash160_to_address(h160, params.name)
    elif script[:1] == bytes([Opcode.OP_RETURN]):
        out["type"] = "nulldata"
    else:
        out["type"] = "nonstandard"
    return out


def transaction_json(tx: Transaction, params: ChainParams) -> dict[str, Any]:
    """decoderawtransaction's object; `jobid` is the 32-byte job id (all zeros for a plain payment)."""
    vin: list[dict[str, Any]] = []
    for txin in tx.inputs:
        if tx.is_coinbase():
            vin.append({"coinbase": txin.script_sig.hex(), "sequence": txin.sequence})
        else:
            vin.append(
                {
                    "txid": hash_to_hex(txin.prev_txid),
                    "vout": txin.prev_index,
                    "scriptSig": {"asm": script_asm(txin.script_sig), "hex": txin.script_sig.hex()},
                    "sequence": txin.sequence,
                }
            )
    vout = [
        {"value": amount(out.value), "n": n, "scriptPubKey": script_pubkey_json(out.script_pubkey, params)}
        for n, out in enumerate(tx.outputs)
    ]
    return {
        "txid": tx.txid(),
        "hash": tx.txid(),
        "version": tx.version,
        "size": tx.size,
        "locktime": tx.lock_time,
        "jobid": hash_to_hex(tx.job_id),
        "vin": vin,
        "vout": vout,
    }
