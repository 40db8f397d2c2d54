"""Script bytes: consensus limits, failure reasons, parsing, script numbers, builders and templates.

Everything here is pure data handling; executing a script lives in
`camelid.core.interpreter`, which is the only place that needs a signature checker.
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple

from camelid.core.opcodes import MAX_DIRECT_PUSH, Opcode

MAX_SCRIPT_SIZE = 10_000
"""Bytes in one scriptSig or scriptPubKey; larger outputs can never be spent."""
MAX_SCRIPT_ELEMENT_SIZE = 520
"""Bytes in one pushed stack element."""
MAX_STACK_SIZE = 1_000
"""Elements on the main stack and the alt stack together."""
MAX_OPS_PER_SCRIPT = 201
"""Non-push opcodes (anything above OP_16) in one script, executed or not."""
MAX_NUM_SIZE = 4
"""Bytes of a script number that arithmetic accepts (results may be one byte longer)."""
MAX_LOCKTIME_NUM_SIZE = 5
"""Bytes of the OP_CHECKLOCKTIMEVERIFY operand, so it can reach 2**32 - 1."""

HASH160_SIZE = 20


class ScriptErrorReason(StrEnum):
    """Why a script failed; values are stable strings, named after Bitcoin Core's ScriptError."""

    EVAL_FALSE = "EVAL_FALSE"
    OP_RETURN = "OP_RETURN"
    BAD_OPCODE = "BAD_OPCODE"
    TRUNCATED_PUSHDATA = "TRUNCATED_PUSHDATA"
    UNBALANCED_CONDITIONAL = "UNBALANCED_CONDITIONAL"
    MINIMALIF = "MINIMALIF"
    MINIMALDATA = "MINIMALDATA"
    SCRIPT_SIZE = "SCRIPT_SIZE"
    PUSH_SIZE = "PUSH_SIZE"
    OP_COUNT = "OP_COUNT"
    STACK_SIZE = "STACK_SIZE"
    INVALID_STACK_OPERATION = "INVALID_STACK_OPERATION"
    INVALID_ALTSTACK_OPERATION = "INVALID_ALTSTACK_OPERATION"
    SCRIPTNUM_OVERFLOW = "SCRIPTNUM_OVERFLOW"
    SCRIPTNUM_MINIMAL = "SCRIPTNUM_MINIMAL"
    VERIFY = "VERIFY"
    EQUALVERIFY = "EQUALVERIFY"
    NUMEQUALVERIFY = "NUMEQUALVERIFY"
    CHECKSIGVERIFY = "CHECKSIGVERIFY"
    NULLFAIL = "NULLFAIL"
    NEGATIVE_LOCKTIME = "NEGATIVE_LOCKTIME"
    UNSATISFIED_LOCKTIME = "UNSATISFIED_LOCKTIME"
    SIG_PUSHONLY = "SIG_PUSHONLY"
    CLEANSTACK = "CLEANSTACK"
    JOB_ESCROW = "JOB_ESCROW"
    JOB_PROOF = "JOB_PROOF"
    JOB_DELIVERY = "JOB_DELIVERY"
    JOB_DELIVERY_PROOF = "JOB_DELIVERY_PROOF"
    JOB_GAME = "JOB_GAME"


class ScriptError(ValueError):
    """A script is malformed or fails; `reason` says which rule, for logs, RPC and tests."""

    def __init__(self, reason: ScriptErrorReason, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else str(reason))
        self.reason = reason


class ScriptOp(NamedTuple):
    """One parsed instruction. `data` is the pushed bytes for OP_0..OP_PUSHDATA4, else None."""

    opcode: int
    data: bytes | None


_PUSHDATA_LENGTH_BYTES = {Opcode.OP_PUSHDATA1: 1, Opcode.OP_PUSHDATA2: 2, Opcode.OP_PUSHDATA4: 4}


def parse_script(script: bytes) -> list[ScriptOp]:
    """Split script bytes into instructions; a push running past the end raises TRUNCATED_PUSHDATA.

    Opcode bytes are not checked here: an undefined one is the interpreter's BAD_OPCODE,
    so a wallet can still take apart an output it cannot spend.
    """
    ops: list[ScriptOp] = []
    pos = 0
    while pos < len(script):
        opcode = script[pos]
        pos += 1
        if opcode > Opcode.OP_PUSHDATA4:
            ops.append(ScriptOp(opcode, None))
            continue
        if opcode <= MAX_DIRECT_PUSH:
            length = opcode
        else:
            width = _PUSHDATA_LENGTH_BYTES[opcode]
            if pos + width > len(script):
                raise ScriptError(ScriptErrorReason.TRUNCATED_PUSHDATA, f"length field cut off at byte {pos}")
            length = int.from_bytes(script[pos : pos + width], "little")
            pos += width
        if pos + length > len(script):
            raise ScriptError(
                ScriptErrorReason.TRUNCATED_PUSHDATA,
                f"push of {length} bytes at byte {pos} has only {len(script) - pos}",
            )
        ops.append(ScriptOp(opcode, script[pos : pos + length]))
        pos += length
    return ops


def is_push_opcode(opcode: int) -> bool:
    """True for opcodes that only push a constant: data pushes, OP_1NEGATE and OP_1..OP_16."""
    return opcode <= Opcode.OP_1NEGATE or Opcode.OP_1 <= opcode <= Opcode.OP_16


def is_push_only(script: bytes) -> bool:
    """True if every instruction only pushes; raises ScriptError if the script does not parse."""
    return all(is_push_opcode(op.opcode) for op in parse_script(script))


def is_minimal_push(opcode: int, data: bytes) -> bool:
    """True if `data` is pushed with the shortest encoding, the one `push_data` emits.

    Requiring it (MINIMALDATA) stops anyone re-encoding a scriptSig push to change the txid.
    """
    return _minimal_push_opcode(data) == opcode


def _minimal_push_opcode(data: bytes) -> int:
    size = len(data)
    if size == 0:
        return Opcode.OP_0
    if size == 1 and 1 <= data[0] <= 16:
        return Opcode.OP_1 + data[0] - 1
    if data == b"\x81":
        return Opcode.OP_1NEGATE
    if size <= MAX_DIRECT_PUSH:
        return size
    if size <= 0xFF:
        return Opcode.OP_PUSHDATA1
    if size <= 0xFFFF:
        return Opcode.OP_PUSHDATA2
    return Opcode.OP_PUSHDATA4


def push_data(data: bytes) -> bytes:
    """Script bytes that push `data` using the minimal encoding."""
    opcode = _minimal_push_opcode(data)
    if opcode in (Opcode.OP_0, Opcode.OP_1NEGATE) or Opcode.OP_1 <= opcode <= Opcode.OP_16:
        return bytes([opcode])
    if opcode <= MAX_DIRECT_PUSH:
        return bytes([opcode]) + data
    return bytes([opcode]) + len(data).to_bytes(_PUSHDATA_LENGTH_BYTES[opcode], "little") + data


def encode_script_num(value: int) -> bytes:
    """Minimal little-endian sign-magnitude encoding of a script number (0 is empty)."""
    magnitude = abs(value)
    out = bytearray()
    while magnitude:
        out.append(magnitude & 0xFF)
        magnitude >>= 8
    if out and out[-1] & 0x80:
        out.append(0x80 if value < 0 else 0x00)
    elif value < 0:
        out[-1] |= 0x80
    return bytes(out)


def decode_script_num(data: bytes, max_size: int = MAX_NUM_SIZE) -> int:
    """Read a script number, rejecting ones longer than `max_size` or not minimally encoded."""
    if len(data) > max_size:
        raise ScriptError(
            ScriptErrorReason.SCRIPTNUM_OVERFLOW, f"{len(data)}-byte number exceeds {max_size} bytes"
        )
    if not data:
        return 0
    if data[-1] & 0x7F == 0 and (len(data) == 1 or data[-2] & 0x80 == 0):
        raise ScriptError(
            ScriptErrorReason.SCRIPTNUM_MINIMAL, f"number {data.hex()} has a redundant top byte"
        )
    magnitude = int.from_bytes(data, "little") & ~(0x80 << (8 * (len(data) - 1)))
    return -magnitude if data[-1] & 0x80 else magnitude


def cast_to_bool(element: bytes) -> bool:
    """Script truth: false is any run of zero bytes, optionally ending in 0x80 (negative zero)."""
    return any(element[:-1]) or (bool(element) and element[-1] not in (0x00, 0x80))


def push_int(value: int) -> bytes:
    """Script bytes that push `value` as a script number, using OP_1NEGATE/OP_0/OP_1..OP_16 when possible."""
    return push_data(encode_script_num(value))


def build_script(*parts: Opcode | bytes | int) -> bytes:
    """Assemble a script: an Opcode is emitted as is, bytes are pushed as data, a plain int as a number."""
    out = bytearray()
    for part in parts:
        if isinstance(part, Opcode):
            out.append(part)
        elif isinstance(part, bytes):
            out += push_data(part)
        elif isinstance(part, int):
            out += push_int(part)
        else:
            raise TypeError(f"cannot put {type(part).__name__} in a script")
    return bytes(out)


def p2pkh_script(pubkey_hash: bytes) -> bytes:
    """scriptPubKey paying to a HASH160 of a public key."""
    if len(pubkey_hash) != HASH160_SIZE:
        raise ValueError(f"P2PKH needs a {HASH160_SIZE}-byte key hash, got {len(pubkey_hash)} bytes")
    return build_script(
        Opcode.OP_DUP, Opcode.OP_HASH160, pubkey_hash, Opcode.OP_EQUALVERIFY, Opcode.OP_CHECKSIG
    )


def p2pkh_script_sig(signature: bytes, pubkey: bytes) -> bytes:
    """scriptSig spending a P2PKH output: the signature (with sighash byte), then the public key."""
    return push_data(signature) + push_data(pubkey)


_P2PKH_PREFIX = bytes([Opcode.OP_DUP, Opcode.OP_HASH160, HASH160_SIZE])
_P2PKH_SUFFIX = bytes([Opcode.OP_EQUALVERIFY, Opcode.OP_CHECKSIG])


def match_p2pkh(script: bytes) -> bytes | None:
    """The key hash if `script` is exactly the P2PKH template, else None."""
    if (
        len(script) == len(_P2PKH_PREFIX) + HASH160_SIZE + len(_P2PKH_SUFFIX)
        and script.startswith(_P2PKH_PREFIX)
        and script.endswith(_P2PKH_SUFFIX)
    ):
        return script[len(_P2PKH_PREFIX) : len(_P2PKH_PREFIX) + HASH160_SIZE]
    return None


def null_data_script(data: bytes) -> bytes:
    """Provably unspendable output carrying `data`: OP_RETURN followed by one push."""
    return bytes([Opcode.OP_RETURN]) + push_data(data)


def is_unspendable(script_pubkey: bytes) -> bool:
    """True if no scriptSig can ever satisfy the output, so it need not enter the UTXO set."""
    return len(script_pubkey) > MAX_SCRIPT_SIZE or script_pubkey[:1] == bytes([Opcode.OP_RETURN])
