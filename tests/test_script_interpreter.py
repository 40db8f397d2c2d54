"""Script interpreter: every opcode, every failure reason, limits, P2PKH with real ECDSA, CLTV and CSV."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import coincurve
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from camelid.core.interpreter import eval_script, verify_script
from camelid.core.jobgame import GAME_CHUNKS
from camelid.core.jobscripts import DELIVERY_CHUNKS, PROOF_ITEMS
from camelid.core.opcodes import UPGRADABLE_NOPS, Opcode
from camelid.core.script import (
    MAX_OPS_PER_SCRIPT,
    MAX_SCRIPT_ELEMENT_SIZE,
    MAX_SCRIPT_SIZE,
    MAX_STACK_SIZE,
    ScriptError,
    ScriptErrorReason,
    build_script,
    encode_script_num,
    p2pkh_script,
    p2pkh_script_sig,
)
from camelid.crypto.hashes import hash160, ripemd160, sha256, sha256d

Op = Opcode
R = ScriptErrorReason
SIGHASH = hashlib.sha256(b"stand-in for a transaction's signature hash").digest()
SIGHASH_ALL = b"\x01"


class EcdsaChecker:
    """Real secp256k1 verification over a fixed digest, the way the transaction checker will work;
    lock times up to `tx_locktime` and relative locks up to `tx_sequence` count as reached. It has no job
    context, so job conditions fail."""

    def __init__(self, tx_locktime: int = 0, tx_sequence: int = 0) -> None:
        self.tx_locktime = tx_locktime
        self.tx_sequence = tx_sequence
        self.script_codes: list[bytes] = []

    def check_sig(self, sig: bytes, pubkey: bytes, script_code: bytes) -> bool:
        self.script_codes.append(script_code)
        try:
            return coincurve.PublicKey(pubkey).verify(sig[:-1], SIGHASH, hasher=None)
        except ValueError:
            return False

    def check_locktime(self, locktime: int) -> bool:
        return locktime <= self.tx_locktime

    def check_sequence(self, sequence: int) -> bool:
        return sequence <= self.tx_sequence

    def check_job_escrow(self, job_id: bytes, t0: int, refund_time: int) -> bool:
        return False

    def check_job_proof(self, lock_script: bytes, items: list[bytes]) -> str | None:
        return "no job context"

    def check_job_game(self, game_script: bytes, data: bytes) -> str | None:
        return "no job context"

    def check_job_delivery(self, stake_script: bytes, blob: bytes) -> bool:
        return False


@dataclass
class LockTimeChecker:
    """Test double for the transaction side of CHECKLOCKTIMEVERIFY and CHECKSEQUENCEVERIFY: answers
    `satisfied`, records questions (as ("cltv" or "csv", operand))."""

    satisfied: bool = True
    asked: list[tuple[str, int]] = field(default_factory=list)

    def check_sig(self, sig: bytes, pubkey: bytes, script_code: bytes) -> bool:
        raise AssertionError("no signature in this script")

    def check_locktime(self, locktime: int) -> bool:
        self.asked.append(("cltv", locktime))
        return self.satisfied

    def check_sequence(self, sequence: int) -> bool:
        self.asked.append(("csv", sequence))
        return self.satisfied


KEY = coincurve.PrivateKey(hashlib.sha256(b"alice").digest())
PUBKEY = KEY.public_key.format()
SIGNATURE = KEY.sign(SIGHASH, hasher=None) + SIGHASH_ALL
OTHER_SIGNATURE = (
    coincurve.PrivateKey(hashlib.sha256(b"mallory").digest()).sign(SIGHASH, hasher=None) + SIGHASH_ALL
)


SPEND_CHECKER = EcdsaChecker(tx_locktime=999)


def run(*parts, checker=None) -> list[bytes]:
    """Evaluate build_script(*parts) on an empty stack and return the stack."""
    stack: list[bytes] = []
    eval_script(build_script(*parts), stack, checker or LockTimeChecker())
    return stack


def nums(*values: int) -> list[bytes]:
    return [encode_script_num(value) for value in values]


def reason_of(action) -> ScriptErrorReason:
    with pytest.raises(ScriptError) as caught:
        action()
    return caught.value.reason


# Constants and pushes.


@pytest.mark.parametrize("n", range(1, 17))
def test_small_integer_opcodes(n):
    assert run(Opcode(Op.OP_1 + n - 1)) == [bytes([n])]


def test_op_0_and_1negate():
    assert run(Op.OP_0, Op.OP_1NEGATE) == [b"", b"\x81"]


@pytest.mark.parametrize(
    ("size", "prefix"), [(1, b"\x01"), (75, b"\x4b"), (76, b"\x4c\x4c"), (256, b"\x4d\x00\x01")]
)
def test_data_pushes(size, prefix):
    data = b"\xee" * size
    stack: list[bytes] = []
    eval_script(prefix + data, stack, LockTimeChecker())
    assert stack == [data]


@pytest.mark.parametrize(
    "script",
    [
        b"\x4c\x01\xee",
        b"\x4d\x01\x00\xee",
        b"\x4e\x01\x00\x00\x00\xee",
        b"\x01\x05",
        b"\x4c\x00",
        b"\x01\x81",
    ],
)
def test_non_minimal_pushes_fail_when_executed(script):
    assert reason_of(lambda: eval_script(script, [], LockTimeChecker())) == R.MINIMALDATA
    skipped = bytes([Op.OP_0, Op.OP_IF]) + script + bytes([Op.OP_ENDIF])
    stack: list[bytes] = []
    eval_script(skipped, stack, LockTimeChecker())
    assert stack == []


# Flow control.


@pytest.mark.parametrize("nop", sorted({Op.OP_NOP, *UPGRADABLE_NOPS}))
def test_nops_do_nothing(nop):
    assert run(7, nop) == nums(7)


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        ((1, Op.OP_IF, 2, Op.OP_ENDIF), [2]),
        ((0, Op.OP_IF, 2, Op.OP_ENDIF), []),
        ((1, Op.OP_IF, 2, Op.OP_ELSE, 3, Op.OP_ENDIF), [2]),
        ((0, Op.OP_IF, 2, Op.OP_ELSE, 3, Op.OP_ENDIF), [3]),
        ((0, Op.OP_NOTIF, 2, Op.OP_ELSE, 3, Op.OP_ENDIF), [2]),
        ((1, Op.OP_NOTIF, 2, Op.OP_ELSE, 3, Op.OP_ENDIF), [3]),
        ((1, 0, Op.OP_IF, 2, Op.OP_ELSE, Op.OP_IF, 3, Op.OP_ELSE, 4, Op.OP_ENDIF, Op.OP_ENDIF), [3]),
        ((0, 0, Op.OP_IF, 2, Op.OP_ELSE, Op.OP_IF, 3, Op.OP_ELSE, 4, Op.OP_ENDIF, Op.OP_ENDIF), [4]),
        ((0, Op.OP_IF, 1, Op.OP_IF, 2, Op.OP_ELSE, 3, Op.OP_ENDIF, Op.OP_ELSE, 4, Op.OP_ENDIF), [4]),
        ((1, Op.OP_IF, 0, Op.OP_IF, 2, Op.OP_ELSE, 3, Op.OP_ENDIF, 5, Op.OP_ENDIF), [3, 5]),
        ((1, Op.OP_IF, 2, Op.OP_ELSE, 3, Op.OP_ELSE, 4, Op.OP_ENDIF), [2, 4]),
        ((0, Op.OP_IF, Op.OP_RETURN, Op.OP_ENDIF, 6), [6]),
    ],
)
def test_conditionals(parts, expected):
    assert run(*parts) == nums(*expected)


def test_unexecuted_branch_takes_no_condition_from_the_stack():
    assert run(7, 0, Op.OP_IF, Op.OP_IF, Op.OP_ENDIF, Op.OP_ENDIF) == nums(7)


@pytest.mark.parametrize("condition", [b"\x02", b"\x00", b"\x01\x00", b"\x81"])
def test_if_condition_must_be_minimal(condition):
    assert reason_of(lambda: run(condition, Op.OP_IF, Op.OP_ENDIF)) == R.MINIMALIF
    assert reason_of(lambda: run(condition, Op.OP_NOTIF, Op.OP_ENDIF)) == R.MINIMALIF


@pytest.mark.parametrize(
    "parts",
    [
        (1, Op.OP_IF),
        (Op.OP_ENDIF,),
        (Op.OP_ELSE,),
        (1, Op.OP_IF, Op.OP_ENDIF, Op.OP_ENDIF),
        (0, Op.OP_IF, 1, Op.OP_IF, Op.OP_ENDIF),
    ],
)
def test_unbalanced_conditionals(parts):
    assert reason_of(lambda: run(*parts)) == R.UNBALANCED_CONDITIONAL


def test_verify():
    assert run(1, 1, Op.OP_VERIFY) == nums(1)
    assert reason_of(lambda: run(1, 0, Op.OP_VERIFY)) == R.VERIFY


def test_op_return_fails_only_when_executed():
    assert reason_of(lambda: run(1, Op.OP_RETURN)) == R.OP_RETURN
    assert run(0, Op.OP_IF, Op.OP_RETURN, Op.OP_ENDIF) == []


# Stack manipulation: each row starts from the stack 1 2 3 4 5 6 (6 on top).


@pytest.mark.parametrize(
    ("opcode", "expected"),
    [
        (Op.OP_2DROP, [1, 2, 3, 4]),
        (Op.OP_2DUP, [1, 2, 3, 4, 5, 6, 5, 6]),
        (Op.OP_3DUP, [1, 2, 3, 4, 5, 6, 4, 5, 6]),
        (Op.OP_2OVER, [1, 2, 3, 4, 5, 6, 3, 4]),
        (Op.OP_2ROT, [3, 4, 5, 6, 1, 2]),
        (Op.OP_2SWAP, [1, 2, 5, 6, 3, 4]),
        (Op.OP_IFDUP, [1, 2, 3, 4, 5, 6, 6]),
        (Op.OP_DEPTH, [1, 2, 3, 4, 5, 6, 6]),
        (Op.OP_DROP, [1, 2, 3, 4, 5]),
        (Op.OP_DUP, [1, 2, 3, 4, 5, 6, 6]),
        (Op.OP_NIP, [1, 2, 3, 4, 6]),
        (Op.OP_OVER, [1, 2, 3, 4, 5, 6, 5]),
        (Op.OP_ROT, [1, 2, 3, 5, 6, 4]),
        (Op.OP_SWAP, [1, 2, 3, 4, 6, 5]),
        (Op.OP_TUCK, [1, 2, 3, 4, 6, 5, 6]),
    ],
)
def test_stack_opcodes(opcode, expected):
    assert run(1, 2, 3, 4, 5, 6, opcode) == nums(*expected)


@pytest.mark.parametrize(
    ("opcode", "needed"),
    [
        (Op.OP_2DROP, 2),
        (Op.OP_2DUP, 2),
        (Op.OP_3DUP, 3),
        (Op.OP_2OVER, 4),
        (Op.OP_2ROT, 6),
        (Op.OP_2SWAP, 4),
        (Op.OP_IFDUP, 1),
        (Op.OP_DROP, 1),
        (Op.OP_DUP, 1),
        (Op.OP_NIP, 2),
        (Op.OP_OVER, 2),
        (Op.OP_ROT, 3),
        (Op.OP_SWAP, 2),
        (Op.OP_TUCK, 2),
        (Op.OP_SIZE, 1),
        (Op.OP_EQUAL, 2),
        (Op.OP_VERIFY, 1),
        (Op.OP_TOALTSTACK, 1),
        (Op.OP_SHA256, 1),
        (Op.OP_CHECKSIG, 2),
        (Op.OP_CHECKLOCKTIMEVERIFY, 1),
        (Op.OP_CHECKSEQUENCEVERIFY, 1),
        (Op.OP_ADD, 2),
        (Op.OP_WITHIN, 3),
        (Op.OP_NUMEQUALVERIFY, 2),
        (Op.OP_IF, 1),
    ],
)
def test_opcodes_fail_cleanly_on_a_short_stack(opcode, needed):
    items = [1] * (needed - 1)
    tail = [Op.OP_ENDIF] if opcode == Op.OP_IF else []
    assert reason_of(lambda: run(*items, opcode, *tail)) == R.INVALID_STACK_OPERATION


def test_ifdup_leaves_false_alone():
    assert run(0, Op.OP_IFDUP) == [b""]


def test_depth_of_empty_stack():
    assert run(Op.OP_DEPTH) == [b""]


@pytest.mark.parametrize(("depth", "picked"), [(0, 6), (2, 4), (5, 1)])
def test_pick_and_roll(depth, picked):
    assert run(1, 2, 3, 4, 5, 6, depth, Op.OP_PICK) == nums(1, 2, 3, 4, 5, 6, picked)
    rest = [v for v in (1, 2, 3, 4, 5, 6) if v != picked]
    assert run(1, 2, 3, 4, 5, 6, depth, Op.OP_ROLL) == nums(*rest, picked)


@pytest.mark.parametrize("opcode", [Op.OP_PICK, Op.OP_ROLL])
@pytest.mark.parametrize("depth", [-1, 3])
def test_pick_and_roll_out_of_range(opcode, depth):
    assert reason_of(lambda: run(1, 2, 3, depth, opcode)) == R.INVALID_STACK_OPERATION


def test_altstack_round_trip():
    assert run(1, 2, Op.OP_TOALTSTACK, 3, Op.OP_FROMALTSTACK) == nums(1, 3, 2)


def test_fromaltstack_on_empty_altstack():
    assert reason_of(lambda: run(1, Op.OP_FROMALTSTACK)) == R.INVALID_ALTSTACK_OPERATION


# Size, equality, arithmetic, hashes.


def test_size_keeps_the_item():
    assert run(b"abc", Op.OP_SIZE) == [b"abc", b"\x03"]
    assert run(0, Op.OP_SIZE) == [b"", b""]


def test_equal_and_equalverify():
    assert run(b"ab", b"ab", Op.OP_EQUAL) == [b"\x01"]
    assert run(b"ab", b"ac", Op.OP_EQUAL) == [b""]
    assert run(b"ab", b"ab", Op.OP_EQUALVERIFY) == []
    assert reason_of(lambda: run(b"ab", b"ac", Op.OP_EQUALVERIFY)) == R.EQUALVERIFY


@pytest.mark.parametrize(
    ("operands", "opcode", "result"),
    [
        ((5,), Op.OP_1ADD, 6),
        ((-1,), Op.OP_1ADD, 0),
        ((5,), Op.OP_1SUB, 4),
        ((5,), Op.OP_NEGATE, -5),
        ((-5,), Op.OP_ABS, 5),
        ((0,), Op.OP_NOT, 1),
        ((7,), Op.OP_NOT, 0),
        ((0,), Op.OP_0NOTEQUAL, 0),
        ((-7,), Op.OP_0NOTEQUAL, 1),
        ((2, 3), Op.OP_ADD, 5),
        ((2, 3), Op.OP_SUB, -1),
        ((2, 0), Op.OP_BOOLAND, 0),
        ((2, 3), Op.OP_BOOLAND, 1),
        ((0, 3), Op.OP_BOOLOR, 1),
        ((0, 0), Op.OP_BOOLOR, 0),
        ((4, 4), Op.OP_NUMEQUAL, 1),
        ((4, 5), Op.OP_NUMEQUAL, 0),
        ((4, 5), Op.OP_NUMNOTEQUAL, 1),
        ((4, 5), Op.OP_LESSTHAN, 1),
        ((5, 4), Op.OP_LESSTHAN, 0),
        ((5, 4), Op.OP_GREATERTHAN, 1),
        ((4, 4), Op.OP_LESSTHANOREQUAL, 1),
        ((5, 4), Op.OP_LESSTHANOREQUAL, 0),
        ((4, 4), Op.OP_GREATERTHANOREQUAL, 1),
        ((3, 4), Op.OP_GREATERTHANOREQUAL, 0),
        ((3, -4), Op.OP_MIN, -4),
        ((3, -4), Op.OP_MAX, 3),
        ((2, 2, 5), Op.OP_WITHIN, 1),
        ((5, 2, 5), Op.OP_WITHIN, 0),
        ((1, 2, 5), Op.OP_WITHIN, 0),
        ((2**31 - 1, 2**31 - 1), Op.OP_ADD, 2**32 - 2),
    ],
)
def test_arithmetic(operands, opcode, result):
    assert run(*operands, opcode) == nums(result)


def test_numequalverify():
    assert run(3, 3, Op.OP_NUMEQUALVERIFY) == []
    assert reason_of(lambda: run(3, 4, Op.OP_NUMEQUALVERIFY)) == R.NUMEQUALVERIFY


def test_arithmetic_rejects_five_byte_operands_even_its_own_results():
    assert reason_of(lambda: run(2**31 - 1, 1, Op.OP_ADD, 1, Op.OP_ADD)) == R.SCRIPTNUM_OVERFLOW
    assert reason_of(lambda: run(b"\x00\x00\x00\x80\x00", Op.OP_1ADD)) == R.SCRIPTNUM_OVERFLOW


def test_arithmetic_rejects_non_minimal_operands():
    assert reason_of(lambda: run(b"\x01\x00", Op.OP_1ADD)) == R.SCRIPTNUM_MINIMAL


@pytest.mark.parametrize(
    ("opcode", "function"),
    [
        (Op.OP_RIPEMD160, ripemd160),
        (Op.OP_SHA256, sha256),
        (Op.OP_HASH160, hash160),
        (Op.OP_HASH256, sha256d),
    ],
)
def test_hash_opcodes(opcode, function):
    assert run(b"camelid", opcode) == [function(b"camelid")]


def test_hash_values_are_the_standard_digests():
    assert run(b"abc", Op.OP_SHA256) == [hashlib.sha256(b"abc").digest()]
    assert run(0, Op.OP_RIPEMD160)[0].hex() == "9c1185a5c5e9fc54612808977ee8f548b2258d31"


# Signatures.


def test_p2pkh_spends_with_the_right_key():
    checker = EcdsaChecker()
    script_pubkey = p2pkh_script(hash160(PUBKEY))
    verify_script(p2pkh_script_sig(SIGNATURE, PUBKEY), script_pubkey, checker)
    assert checker.script_codes == [script_pubkey]


def test_p2pkh_rejects_another_key():
    other_pubkey = coincurve.PrivateKey(hashlib.sha256(b"mallory").digest()).public_key.format()
    script_pubkey = p2pkh_script(hash160(PUBKEY))
    spend = p2pkh_script_sig(OTHER_SIGNATURE, other_pubkey)
    assert reason_of(lambda: verify_script(spend, script_pubkey, EcdsaChecker())) == R.EQUALVERIFY


def test_p2pkh_rejects_a_signature_by_someone_else():
    spend = p2pkh_script_sig(OTHER_SIGNATURE, PUBKEY)
    assert (
        reason_of(lambda: verify_script(spend, p2pkh_script(hash160(PUBKEY)), EcdsaChecker())) == R.NULLFAIL
    )


def test_p2pkh_rejects_a_signature_over_another_digest():
    wrong = KEY.sign(hashlib.sha256(b"other tx").digest(), hasher=None) + SIGHASH_ALL
    spend = p2pkh_script_sig(wrong, PUBKEY)
    assert (
        reason_of(lambda: verify_script(spend, p2pkh_script(hash160(PUBKEY)), EcdsaChecker())) == R.NULLFAIL
    )


def test_checksig_with_empty_signature_is_false_without_asking_the_checker():
    checker = EcdsaChecker()
    assert run(b"", PUBKEY, Op.OP_CHECKSIG, checker=checker) == [b""]
    assert checker.script_codes == []
    script_pubkey = build_script(PUBKEY, Op.OP_CHECKSIG, Op.OP_NOT)
    verify_script(build_script(0), script_pubkey, checker)


def test_checksig_pushes_true_for_a_good_signature():
    assert run(SIGNATURE, PUBKEY, Op.OP_CHECKSIG, checker=EcdsaChecker()) == [b"\x01"]


@pytest.mark.parametrize("pubkey", [b"", b"\x02" * 33, b"not a key"])
def test_checksig_with_a_bad_key_is_nullfail(pubkey):
    assert reason_of(lambda: run(SIGNATURE, pubkey, Op.OP_CHECKSIG, checker=EcdsaChecker())) == R.NULLFAIL


def test_checksigverify():
    assert run(SIGNATURE, PUBKEY, Op.OP_CHECKSIGVERIFY, checker=EcdsaChecker()) == []
    assert (
        reason_of(lambda: run(b"", PUBKEY, Op.OP_CHECKSIGVERIFY, checker=EcdsaChecker())) == R.CHECKSIGVERIFY
    )
    assert reason_of(lambda: run(OTHER_SIGNATURE, PUBKEY, Op.OP_CHECKSIGVERIFY, checker=EcdsaChecker())) == (
        R.NULLFAIL
    )


# Lock time.


LOCK_OPCODES = pytest.mark.parametrize(
    ("opcode", "kind"), [(Op.OP_CHECKLOCKTIMEVERIFY, "cltv"), (Op.OP_CHECKSEQUENCEVERIFY, "csv")]
)


@LOCK_OPCODES
def test_lock_opcodes_ask_the_checker_and_leave_the_operand(opcode, kind):
    checker = LockTimeChecker(satisfied=True)
    assert run(500_000, opcode, checker=checker) == nums(500_000)
    assert checker.asked == [(kind, 500_000)]


@LOCK_OPCODES
def test_lock_opcodes_unsatisfied(opcode, kind):
    checker = LockTimeChecker(satisfied=False)
    assert reason_of(lambda: run(100, opcode, checker=checker)) == R.UNSATISFIED_LOCKTIME
    assert checker.asked == [(kind, 100)]


@LOCK_OPCODES
def test_lock_opcodes_negative_never_reaches_the_checker(opcode, kind):
    checker = LockTimeChecker()
    assert reason_of(lambda: run(-1, opcode, checker=checker)) == R.NEGATIVE_LOCKTIME
    assert checker.asked == []


@LOCK_OPCODES
def test_lock_opcodes_in_unexecuted_branch_are_not_checked(opcode, kind):
    checker = LockTimeChecker(satisfied=False)
    assert run(0, Op.OP_IF, 100, opcode, Op.OP_ENDIF, checker=checker) == []
    assert checker.asked == []


def test_cltv_accepts_five_byte_lock_times():
    checker = LockTimeChecker(satisfied=True)
    run(2**32 - 1, Op.OP_CHECKLOCKTIMEVERIFY, Op.OP_DROP, checker=checker)
    assert checker.asked == [("cltv", 2**32 - 1)]
    assert reason_of(lambda: run(2**40, Op.OP_CHECKLOCKTIMEVERIFY)) == R.SCRIPTNUM_OVERFLOW


@pytest.mark.parametrize("operand", [2**31, 2**32 - 1, 2**31 | 10, 3 << 31])
def test_csv_with_the_disable_flag_set_passes_without_asking(operand):
    """BIP112 keeps operands with bit 31 set free for a later soft fork: CSV is a NOP for them."""
    checker = LockTimeChecker(satisfied=False)
    assert run(operand, Op.OP_CHECKSEQUENCEVERIFY, checker=checker) == nums(operand)
    assert checker.asked == []


def test_csv_operands_are_five_byte_minimal_numbers():
    checker = LockTimeChecker()
    assert reason_of(lambda: run(2**40, Op.OP_CHECKSEQUENCEVERIFY, checker=checker)) == R.SCRIPTNUM_OVERFLOW
    assert reason_of(lambda: run(b"\x05\x00", Op.OP_CHECKSEQUENCEVERIFY, checker=checker)) == R.SCRIPTNUM_MINIMAL
    assert checker.asked == []


def test_relative_timelocked_p2pkh_spend():
    script_pubkey = build_script(
        20, Op.OP_CHECKSEQUENCEVERIFY, Op.OP_DROP, Op.OP_DUP, Op.OP_HASH160, hash160(PUBKEY), Op.OP_EQUALVERIFY,
        Op.OP_CHECKSIG,
    )
    spend = p2pkh_script_sig(SIGNATURE, PUBKEY)
    verify_script(spend, script_pubkey, EcdsaChecker(tx_sequence=20))
    assert reason_of(lambda: verify_script(spend, script_pubkey, EcdsaChecker(tx_sequence=19))) == (
        R.UNSATISFIED_LOCKTIME
    )


def test_timelocked_p2pkh_spend():
    script_pubkey = build_script(
        700,
        Op.OP_CHECKLOCKTIMEVERIFY,
        Op.OP_DROP,
        Op.OP_DUP,
        Op.OP_HASH160,
        hash160(PUBKEY),
        Op.OP_EQUALVERIFY,
        Op.OP_CHECKSIG,
    )
    spend = p2pkh_script_sig(SIGNATURE, PUBKEY)
    verify_script(spend, script_pubkey, EcdsaChecker(tx_locktime=700))
    assert reason_of(lambda: verify_script(spend, script_pubkey, EcdsaChecker(tx_locktime=699))) == (
        R.UNSATISFIED_LOCKTIME
    )


# Every failure reason, through verify_script.

FAILING_SPENDS: dict[ScriptErrorReason, tuple[bytes, bytes]] = {
    R.EVAL_FALSE: (b"", build_script(0)),
    R.OP_RETURN: (b"", build_script(Op.OP_RETURN, 1)),
    R.BAD_OPCODE: (b"", bytes([0x51, 0xAB])),  # Bitcoin's OP_CODESEPARATOR is undefined here
    R.TRUNCATED_PUSHDATA: (b"", bytes([0x51, 0x4C, 0x05, 0x01])),
    R.UNBALANCED_CONDITIONAL: (b"", build_script(1, Op.OP_IF, 1)),
    R.MINIMALIF: (build_script(2), build_script(Op.OP_IF, 1, Op.OP_ENDIF)),
    R.MINIMALDATA: (bytes([0x4C, 0x01, 0x07]), build_script(7, Op.OP_EQUAL)),
    R.SCRIPT_SIZE: (b"", b"\x51" * (MAX_SCRIPT_SIZE + 1)),
    R.PUSH_SIZE: (b"", build_script(b"\x00" * (MAX_SCRIPT_ELEMENT_SIZE + 1))),
    R.OP_COUNT: (b"", build_script(1, *[Op.OP_NOP] * (MAX_OPS_PER_SCRIPT + 1))),
    R.STACK_SIZE: (b"\x51" * 500, b"\x51" * 501),
    R.INVALID_STACK_OPERATION: (b"", build_script(Op.OP_DUP)),
    R.INVALID_ALTSTACK_OPERATION: (build_script(1), build_script(Op.OP_FROMALTSTACK)),
    R.SCRIPTNUM_OVERFLOW: (build_script(b"\x01\x02\x03\x04\x05"), build_script(Op.OP_1ADD)),
    R.SCRIPTNUM_MINIMAL: (build_script(b"\x05\x00"), build_script(5, Op.OP_NUMEQUAL)),
    R.VERIFY: (build_script(0), build_script(Op.OP_VERIFY, 1)),
    R.EQUALVERIFY: (build_script(b"x"), build_script(b"y", Op.OP_EQUALVERIFY, 1)),
    R.NUMEQUALVERIFY: (build_script(3), build_script(4, Op.OP_NUMEQUALVERIFY, 1)),
    R.CHECKSIGVERIFY: (build_script(0), build_script(PUBKEY, Op.OP_CHECKSIGVERIFY, 1)),
    R.NULLFAIL: (build_script(OTHER_SIGNATURE), build_script(PUBKEY, Op.OP_CHECKSIG, Op.OP_NOT)),
    R.NEGATIVE_LOCKTIME: (b"", build_script(-5, Op.OP_CHECKLOCKTIMEVERIFY)),
    R.UNSATISFIED_LOCKTIME: (b"", build_script(10**6, Op.OP_CHECKLOCKTIMEVERIFY)),
    R.SIG_PUSHONLY: (build_script(1, Op.OP_DUP), build_script(Op.OP_EQUAL)),
    R.CLEANSTACK: (build_script(1, 1), b""),
    R.JOB_ESCROW: (b"", build_script(1, 2, bytes(32), Op.OP_CHECKJOBESCROWVERIFY)),
    R.JOB_PROOF: (build_script(*[0] * PROOF_ITEMS), build_script(PUBKEY, b"c", b"m", Op.OP_CHECKJOBPROOFVERIFY)),
    R.JOB_DELIVERY: (build_script(*[0] * DELIVERY_CHUNKS), build_script(Op.OP_CHECKJOBDELIVERYVERIFY)),
    R.JOB_DELIVERY_PROOF: (  # a bad-delivery proof (a 97-byte reveal on top) against a script that is no DELIVERED
        build_script(*[0] * (PROOF_ITEMS - 1), bytes(97)),
        build_script(PUBKEY, bytes(32), bytes(32), Op.OP_CHECKJOBPROOFVERIFY),
    ),
    R.JOB_GAME: (build_script(*[0] * GAME_CHUNKS), build_script(Op.OP_CHECKJOBGAMEVERIFY)),
}


@pytest.mark.parametrize("reason", list(ScriptErrorReason))
def test_every_failure_reason_has_a_triggering_spend(reason):
    script_sig, script_pubkey = FAILING_SPENDS[reason]
    assert reason_of(lambda: verify_script(script_sig, script_pubkey, SPEND_CHECKER)) == reason


def test_script_sig_size_is_limited_too():
    assert (
        reason_of(lambda: verify_script(b"\x51" * (MAX_SCRIPT_SIZE + 1), b"", SPEND_CHECKER)) == R.SCRIPT_SIZE
    )


def test_empty_stack_at_the_end_is_eval_false():
    assert reason_of(lambda: verify_script(b"", b"", SPEND_CHECKER)) == R.EVAL_FALSE


def test_truthy_top_with_extra_items_is_cleanstack_not_success():
    assert reason_of(lambda: verify_script(build_script(0), build_script(1), SPEND_CHECKER)) == R.CLEANSTACK


def test_undefined_opcodes_fail_even_when_not_executed():
    for opcode in (0x50, 0x62, 0x65, 0x7E, 0xA7, 0xAE, 0xBA, 0xFF):
        script = build_script(0, Op.OP_IF) + bytes([opcode]) + build_script(Op.OP_ENDIF, 1)
        assert reason_of(lambda script=script: verify_script(b"", script, SPEND_CHECKER)) == R.BAD_OPCODE


# Limits at the boundary.


def _script_of_size(size: int) -> bytes:
    """A script of exactly `size` bytes that leaves 1: skipped pushes fill it without touching the stack."""
    filler = size - 4
    pushes = build_script(*[b"\xee" * 75] * (filler // 76))
    rest = filler - len(pushes)
    tail = build_script(b"\xee" * (rest - 1)) if rest else b""
    script = build_script(0, Op.OP_IF) + pushes + tail + build_script(Op.OP_ENDIF, 1)
    assert len(script) == size
    return script


def test_script_size_boundary():
    verify_script(b"", _script_of_size(MAX_SCRIPT_SIZE), EcdsaChecker())
    too_big = _script_of_size(MAX_SCRIPT_SIZE + 1)
    assert reason_of(lambda: verify_script(b"", too_big, EcdsaChecker())) == R.SCRIPT_SIZE


def test_op_count_boundary():
    verify_script(b"", build_script(1, *[Op.OP_NOP] * MAX_OPS_PER_SCRIPT), SPEND_CHECKER)
    pushes_do_not_count = build_script(*[Op.OP_1] * 300, *[Op.OP_2DROP] * 150, 1, *[Op.OP_NOP] * 50)
    verify_script(b"", pushes_do_not_count, SPEND_CHECKER)


def test_unexecuted_opcodes_count_toward_the_limit():
    script = build_script(1, 0, Op.OP_IF, *[Op.OP_NOP] * (MAX_OPS_PER_SCRIPT - 1), Op.OP_ENDIF)
    assert reason_of(lambda: verify_script(b"", script, SPEND_CHECKER)) == R.OP_COUNT


def test_push_size_boundary():
    element = b"\x07" * MAX_SCRIPT_ELEMENT_SIZE
    verify_script(build_script(element), build_script(element, Op.OP_EQUAL), SPEND_CHECKER)


def test_push_size_applies_in_unexecuted_branches():
    script = build_script(0, Op.OP_IF, b"\x00" * (MAX_SCRIPT_ELEMENT_SIZE + 1), Op.OP_ENDIF, 1)
    assert reason_of(lambda: verify_script(b"", script, SPEND_CHECKER)) == R.PUSH_SIZE


def test_stack_size_boundary():
    stack: list[bytes] = []
    eval_script(b"\x51" * MAX_STACK_SIZE, stack, SPEND_CHECKER)
    assert len(stack) == MAX_STACK_SIZE
    assert reason_of(lambda: eval_script(b"\x51" * (MAX_STACK_SIZE + 1), [], SPEND_CHECKER)) == R.STACK_SIZE


def test_altstack_counts_toward_the_stack_limit():
    script = build_script(*[Op.OP_1] * MAX_STACK_SIZE, *[Op.OP_TOALTSTACK] * 200)
    eval_script(script, [], SPEND_CHECKER)
    assert reason_of(lambda: eval_script(script + bytes([Op.OP_1]), [], SPEND_CHECKER)) == R.STACK_SIZE


def test_stack_from_script_sig_counts_in_script_pubkey():
    script_sig = b"\x51" * MAX_STACK_SIZE
    assert reason_of(lambda: verify_script(script_sig, b"\x51", EcdsaChecker())) == R.STACK_SIZE


# Fuzzing: any input fails with ScriptError, never another exception.

_OPCODE_BYTES = st.sampled_from(sorted({int(op) for op in Opcode} | {0xAB, 0xBA}))
_PIECES = st.one_of(
    _OPCODE_BYTES.map(lambda op: bytes([op])),
    st.binary(max_size=6).map(build_script),
    st.integers(-(2**40), 2**40).map(build_script),
    st.sampled_from([SIGNATURE, PUBKEY, OTHER_SIGNATURE]).map(build_script),
)
_SCRIPTS = st.lists(_PIECES, max_size=40).map(b"".join)


def _verify_or_script_error(script_sig: bytes, script_pubkey: bytes) -> None:
    try:
        verify_script(script_sig, script_pubkey, SPEND_CHECKER)
    except ScriptError as error:
        assert error.reason in set(ScriptErrorReason)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.binary(max_size=200))
def test_random_bytes_only_raise_script_error(script_sig, script_pubkey):
    _verify_or_script_error(script_sig, script_pubkey)


@settings(max_examples=300, deadline=None)
@given(_SCRIPTS, _SCRIPTS)
def test_random_opcode_sequences_only_raise_script_error(script_sig, script_pubkey):
    _verify_or_script_error(script_sig, script_pubkey)
