"""OP_CHECKSEQUENCEVERIFY against Bitcoin Core's transaction vectors (tests/vectors/bip112_csv_tx.json).

Each case spends one output whose script uses CSV with a Bitcoin-serialized transaction, which is
this chain's layout without the trailing Job ID. The cases run under Core's flags for them
(P2SH,CHECKSEQUENCEVERIFY): no clean-stack rule, so the scripts' trailing `1` decides. Where this
chain's stricter consensus (minimal script numbers from block 0) refuses a case Core accepts,
DIVERGES names the reason.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from camelid.core.interpreter import eval_script
from camelid.core.opcodes import Opcode
from camelid.core.script import ScriptError, ScriptErrorReason, build_script, cast_to_bool
from camelid.core.sigchecker import TransactionSignatureChecker
from camelid.core.transaction import OutPoint, Transaction

VECTORS = json.loads((Path(__file__).parent / "vectors" / "bip112_csv_tx.json").read_text())

DIVERGES = {"0x05 0x0000000000 CHECKSEQUENCEVERIFY 1": ScriptErrorReason.SCRIPTNUM_MINIMAL}
"""Valid for Bitcoin Core, invalid here, by script: the reason this chain gives."""


def _cases(kind: str) -> list[tuple[str, str, str]]:
    """(prevout txid hex, prevout script, transaction hex) of every case; one-string rows are comments."""
    cases = []
    for row in VECTORS[kind]:
        if len(row) == 1:
            continue
        [[txid, _, script]], tx_hex, flags = row
        assert flags == "P2SH,CHECKSEQUENCEVERIFY"
        cases.append((txid, script, tx_hex))
    return cases


def parse_core_script(text: str) -> bytes:
    """Core's test notation: decimal numbers are pushed, 0x... is raw bytes, other words are opcodes."""
    out = bytearray()
    for word in text.split():
        if word.lstrip("-").isdigit():
            out += build_script(int(word))
        elif word.startswith("0x"):
            out += bytes.fromhex(word[2:])
        else:
            out += build_script(Opcode[f"OP_{word}"])
    return bytes(out)


def run_case(txid: str, script: str, tx_hex: str) -> None:
    """Raise ScriptError unless input 0 of the transaction satisfies `script` (Core's flags: no clean stack)."""
    tx = Transaction.from_bytes(bytes.fromhex(tx_hex) + bytes(32))  # a zero Job ID
    assert tx.inputs[0].prevout == OutPoint(bytes.fromhex(txid)[::-1], 0)
    checker = TransactionSignatureChecker(tx, 0, 0)
    stack: list[bytes] = []
    eval_script(tx.inputs[0].script_sig, stack, checker)
    eval_script(parse_core_script(script), stack, checker)
    if not stack or not cast_to_bool(stack[-1]):
        raise ScriptError(ScriptErrorReason.EVAL_FALSE)


def test_the_vectors_are_all_there():
    assert (len(_cases("valid")), len(_cases("invalid"))) == (28, 14)


@pytest.mark.parametrize(("txid", "script", "tx_hex"), _cases("valid"))
def test_core_valid_csv_spends(txid, script, tx_hex):
    if script in DIVERGES:
        with pytest.raises(ScriptError) as caught:
            run_case(txid, script, tx_hex)
        assert caught.value.reason == DIVERGES[script]
    else:
        run_case(txid, script, tx_hex)


@pytest.mark.parametrize(("txid", "script", "tx_hex"), _cases("invalid"))
def test_core_invalid_csv_spends(txid, script, tx_hex):
    with pytest.raises(ScriptError) as caught:
        run_case(txid, script, tx_hex)
    assert caught.value.reason in {
        ScriptErrorReason.UNSATISFIED_LOCKTIME,
        ScriptErrorReason.NEGATIVE_LOCKTIME,
        ScriptErrorReason.INVALID_STACK_OPERATION,
        ScriptErrorReason.SCRIPTNUM_OVERFLOW,
    }
