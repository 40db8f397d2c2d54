"""Script execution: verify that a scriptSig satisfies a scriptPubKey.

As in Bitcoin Core, the interpreter knows nothing about transactions. Signature
and lock-time questions go to a `SignatureChecker` supplied by the caller, which
owns the signature hash, the sighash type byte and the transaction's lock-time
and sequence fields.

Rules beyond Bitcoin's legacy consensus, adopted as consensus from block 0
because CamelidCoin has no old outputs to keep spendable: push-only scriptSig,
minimal pushes (MINIMALDATA), minimal IF/NOTIF conditions (MINIMALIF), NULLFAIL
and a clean stack. Together they leave a third party no way to alter a valid
scriptSig, so txids of signed transactions cannot be malleated through scripts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from camelid.core.consensus import SEQUENCE_LOCKTIME_DISABLE_FLAG
from camelid.core.deliveryproof import bad_delivery_unproven, is_bad_delivery_proof
from camelid.core.jobgame import GAME_CHUNKS, MAX_GAME_SCRIPT_SIG, match_game, move_data
from camelid.core.jobscripts import DELIVERY_CHUNKS, PROOF_ITEMS, delivery_blob
from camelid.core.opcodes import UPGRADABLE_NOPS, Opcode
from camelid.core.script import (
    MAX_LOCKTIME_NUM_SIZE,
    MAX_NUM_SIZE,
    MAX_OPS_PER_SCRIPT,
    MAX_SCRIPT_ELEMENT_SIZE,
    MAX_SCRIPT_SIZE,
    MAX_STACK_SIZE,
    ScriptError,
    ScriptErrorReason,
    cast_to_bool,
    decode_script_num,
    encode_script_num,
    is_minimal_push,
    is_push_only,
    parse_script,
)
from camelid.crypto.hashes import hash160, ripemd160, sha256, sha256d

_TRUE = b"\x01"
_FALSE = b""


class SignatureChecker(Protocol):
    """What the interpreter asks of the transaction being validated."""

    def check_sig(self, sig: bytes, pubkey: bytes, script_code: bytes) -> bool:
        """True if `sig` (DER plus trailing sighash-type byte) signs this input under `pubkey`.

        `script_code` is the whole scriptPubKey being executed. Returning False for a
        malformed signature or key is fine; the interpreter turns it into NULLFAIL.
        """
        ...

    def check_locktime(self, locktime: int) -> bool:
        """OP_CHECKLOCKTIMEVERIFY: True if the transaction's lock time (same kind, height or
        time) is at least `locktime` and this input's sequence does not disable it."""
        ...

    def check_sequence(self, sequence: int) -> bool:
        """OP_CHECKSEQUENCEVERIFY: True if this input's sequence is an enforced relative lock (BIP68) of the
        same kind as `sequence` (blocks or time) and at least as long (BIP112)."""
        ...

    def check_job_escrow(self, job_id: bytes, t0: int, refund_time: int) -> bool:
        """OP_CHECKJOBESCROWVERIFY: True if the transaction is a refund after `refund_time` or pays job
        `job_id` (created at `t0`) out through a PAYOUT output. A checker without job context says False."""
        ...

    def check_job_proof(self, lock_script: bytes, proof_items: list[bytes]) -> str | None:
        """OP_CHECKJOBPROOFVERIFY's RASTiC branch (move 0): None if the fraud proof in `proof_items`
        (FraudProof.to_items layout) stands against the node's signed commitment in `lock_script` (the script
        being run) and the transaction opens its GAME; else why not. A checker without game rules says no."""
        ...

    def check_job_game(self, game_script: bytes, data: bytes) -> str | None:
        """OP_CHECKJOBGAMEVERIFY: None if `data` is a valid move on the GAME `game_script` (the script being run)
        by this transaction; else why not. A checker without game rules or referee says no."""
        ...

    def check_job_delivery(self, stake_script: bytes, blob: bytes) -> bool:
        """OP_CHECKJOBDELIVERYVERIFY: True if the transaction moves the STAKE `stake_script` (the script
        being run) into the DELIVERED lock committing to `blob`, keeping its value less the fee cap."""
        ...


@dataclass
class _Machine:
    """Stacks and context of one script evaluation."""

    stack: list[bytes]
    checker: SignatureChecker
    script_code: bytes
    altstack: list[bytes] = field(default_factory=list)

    def require(self, count: int) -> None:
        if len(self.stack) < count:
            raise ScriptError(
                ScriptErrorReason.INVALID_STACK_OPERATION,
                f"needs {count} stack items, has {len(self.stack)}",
            )

    def pop(self) -> bytes:
        self.require(1)
        return self.stack.pop()

    def pop_num(self) -> int:
        return decode_script_num(self.pop(), MAX_NUM_SIZE)

    def push_num(self, value: int) -> None:
        self.stack.append(encode_script_num(value))

    def push_bool(self, value: bool) -> None:
        self.stack.append(_TRUE if value else _FALSE)


# Stack manipulation.


def _op_toaltstack(m: _Machine) -> None:
    m.altstack.append(m.pop())


def _op_fromaltstack(m: _Machine) -> None:
    if not m.altstack:
        raise ScriptError(ScriptErrorReason.INVALID_ALTSTACK_OPERATION, "alt stack is empty")
    m.stack.append(m.altstack.pop())


def _op_2drop(m: _Machine) -> None:
    m.require(2)
    del m.stack[-2:]


def _copy_from(depth: int, count: int) -> Callable[[_Machine], None]:
    """Handler pushing copies of `count` items starting `depth` from the top (DUP, OVER, 2DUP, ...)."""

    def run(m: _Machine) -> None:
        m.require(depth)
        m.stack.extend(m.stack[-depth : len(m.stack) - depth + count])

    return run


def _move_to_top(depth: int, count: int) -> Callable[[_Machine], None]:
    """Handler moving `count` items starting `depth` from the top to the top (SWAP, ROT, 2ROT, ...)."""

    def run(m: _Machine) -> None:
        m.require(depth)
        start = len(m.stack) - depth
        moved = m.stack[start : start + count]
        del m.stack[start : start + count]
        m.stack.extend(moved)

    return run


def _op_ifdup(m: _Machine) -> None:
    m.require(1)
    if cast_to_bool(m.stack[-1]):
        m.stack.append(m.stack[-1])


def _op_depth(m: _Machine) -> None:
    m.push_num(len(m.stack))


def _op_drop(m: _Machine) -> None:
    m.pop()


def _op_nip(m: _Machine) -> None:
    m.require(2)
    del m.stack[-2]


def _op_tuck(m: _Machine) -> None:
    m.require(2)
    m.stack.insert(-2, m.stack[-1])


def _pick_or_roll(remove: bool) -> Callable[[_Machine], None]:
    """OP_PICK copies, OP_ROLL moves, the item n below the top (n popped first) to the top."""

    def run(m: _Machine) -> None:
        depth = m.pop_num()
        if not 0 <= depth < len(m.stack):
            raise ScriptError(
                ScriptErrorReason.INVALID_STACK_OPERATION, f"depth {depth} with {len(m.stack)} items"
            )
        index = len(m.stack) - 1 - depth
        m.stack.append(m.stack.pop(index) if remove else m.stack[index])

    return run


# Flow control, comparison and size.


def _op_verify(m: _Machine) -> None:
    if not cast_to_bool(m.pop()):
        raise ScriptError(ScriptErrorReason.VERIFY)


def _op_return(m: _Machine) -> None:
    raise ScriptError(ScriptErrorReason.OP_RETURN)


def _op_size(m: _Machine) -> None:
    m.require(1)
    m.push_num(len(m.stack[-1]))


def _equal(m: _Machine) -> bool:
    m.require(2)
    return m.stack.pop() == m.stack.pop()


def _op_equal(m: _Machine) -> None:
    m.push_bool(_equal(m))


def _op_equalverify(m: _Machine) -> None:
    if not _equal(m):
        raise ScriptError(ScriptErrorReason.EQUALVERIFY)


# Arithmetic: operands are at most MAX_NUM_SIZE bytes, booleans come back as 1 or 0.

_UNARY_ARITHMETIC: dict[int, Callable[[int], int]] = {
    Opcode.OP_1ADD: lambda a: a + 1,
    Opcode.OP_1SUB: lambda a: a - 1,
    Opcode.OP_NEGATE: lambda a: -a,
    Opcode.OP_ABS: abs,
    Opcode.OP_NOT: lambda a: int(a == 0),
    Opcode.OP_0NOTEQUAL: lambda a: int(a != 0),
}

_BINARY_ARITHMETIC: dict[int, Callable[[int, int], int]] = {
    Opcode.OP_ADD: lambda a, b: a + b,
    Opcode.OP_SUB: lambda a, b: a - b,
    Opcode.OP_BOOLAND: lambda a, b: int(a != 0 and b != 0),
    Opcode.OP_BOOLOR: lambda a, b: int(a != 0 or b != 0),
    Opcode.OP_NUMEQUAL: lambda a, b: int(a == b),
    Opcode.OP_NUMNOTEQUAL: lambda a, b: int(a != b),
    Opcode.OP_LESSTHAN: lambda a, b: int(a < b),
    Opcode.OP_GREATERTHAN: lambda a, b: int(a > b),
    Opcode.OP_LESSTHANOREQUAL: lambda a, b: int(a <= b),
    Opcode.OP_GREATERTHANOREQUAL: lambda a, b: int(a >= b),
    Opcode.OP_MIN: min,
    Opcode.OP_MAX: max,
}


def _unary(operation: Callable[[int], int]) -> Callable[[_Machine], None]:
    def run(m: _Machine) -> None:
        m.push_num(operation(m.pop_num()))

    return run


def _binary(operation: Callable[[int, int], int]) -> Callable[[_Machine], None]:
    def run(m: _Machine) -> None:
        m.require(2)
        second = m.pop_num()
        m.push_num(operation(m.pop_num(), second))

    return run


def _op_numequalverify(m: _Machine) -> None:
    m.require(2)
    if m.pop_num() != m.pop_num():
        raise ScriptError(ScriptErrorReason.NUMEQUALVERIFY)


def _op_within(m: _Machine) -> None:
    m.require(3)
    upper = m.pop_num()
    lower = m.pop_num()
    m.push_bool(lower <= m.pop_num() < upper)


# Crypto and lock time.

_HASHES: dict[int, Callable[[bytes], bytes]] = {
    Opcode.OP_RIPEMD160: ripemd160,
    Opcode.OP_SHA256: sha256,
    Opcode.OP_HASH160: hash160,
    Opcode.OP_HASH256: sha256d,
}


def _hash(function: Callable[[bytes], bytes]) -> Callable[[_Machine], None]:
    def run(m: _Machine) -> None:
        m.stack.append(function(m.pop()))

    return run


def _checksig(m: _Machine) -> bool:
    """Pop pubkey and signature; an empty signature is a plain false, any other failure is NULLFAIL."""
    m.require(2)
    pubkey = m.stack.pop()
    sig = m.stack.pop()
    if not sig:
        return False
    if not m.checker.check_sig(sig, pubkey, m.script_code):
        raise ScriptError(ScriptErrorReason.NULLFAIL, "a failing signature must be empty")
    return True


def _op_checksig(m: _Machine) -> None:
    m.push_bool(_checksig(m))


def _op_checksigverify(m: _Machine) -> None:
    if not _checksig(m):
        raise ScriptError(ScriptErrorReason.CHECKSIGVERIFY)


def _op_checklocktimeverify(m: _Machine) -> None:
    """Leaves its operand on the stack (it was a NOP once), so scripts follow it with OP_DROP."""
    m.require(1)
    locktime = decode_script_num(m.stack[-1], MAX_LOCKTIME_NUM_SIZE)
    if locktime < 0:
        raise ScriptError(ScriptErrorReason.NEGATIVE_LOCKTIME, str(locktime))
    if not m.checker.check_locktime(locktime):
        raise ScriptError(ScriptErrorReason.UNSATISFIED_LOCKTIME, str(locktime))


def _op_checksequenceverify(m: _Machine) -> None:
    """Leaves its operand on the stack (it was NOP3). An operand with the disable flag set passes unchecked,
    keeping those values free for a later soft fork to give a meaning (BIP112)."""
    m.require(1)
    sequence = decode_script_num(m.stack[-1], MAX_LOCKTIME_NUM_SIZE)
    if sequence < 0:
        raise ScriptError(ScriptErrorReason.NEGATIVE_LOCKTIME, str(sequence))
    if sequence & SEQUENCE_LOCKTIME_DISABLE_FLAG:
        return
    if not m.checker.check_sequence(sequence):
        raise ScriptError(ScriptErrorReason.UNSATISFIED_LOCKTIME, f"relative lock {sequence:#x}")


def _op_checkjobescrowverify(m: _Machine) -> None:
    """<t0> <refund_time> <job_id> stay on the stack (this opcode was NOP5), so scripts drop them."""
    m.require(3)
    job_id = m.stack[-1]
    refund_time = decode_script_num(m.stack[-2], MAX_LOCKTIME_NUM_SIZE)
    t0 = decode_script_num(m.stack[-3], MAX_LOCKTIME_NUM_SIZE)
    if len(job_id) != 32 or refund_time < 0 or t0 < 0:
        raise ScriptError(ScriptErrorReason.JOB_ESCROW, "operands must be a 32-byte job id and two times")
    if not m.checker.check_job_escrow(job_id, t0, refund_time):
        raise ScriptError(ScriptErrorReason.JOB_ESCROW, "neither a refund after its time nor a payout for the job")


def _op_checkjobproofverify(m: _Machine) -> None:
    """<node_pubkey> <commitment> <model_id> on top of the proof items; all stay (this opcode was NOP4)."""
    m.require(3 + PROOF_ITEMS)
    model_id, commitment = m.stack[-1], m.stack[-2]
    if len(model_id) != 32 or len(commitment) != 32:
        raise ScriptError(ScriptErrorReason.JOB_PROOF, "model id and commitment must be 32 bytes each")
    proof_items = m.stack[-3 - PROOF_ITEMS : -3]
    if is_bad_delivery_proof(proof_items):  # decided from the items and the lock alone: no model, no policy
        problem = bad_delivery_unproven(m.script_code, proof_items)
        if problem is not None:
            raise ScriptError(ScriptErrorReason.JOB_DELIVERY_PROOF, problem)
        return
    problem = m.checker.check_job_proof(m.script_code, proof_items)
    if problem is not None:
        raise ScriptError(ScriptErrorReason.JOB_PROOF, problem)


def _op_checkjobgameverify(m: _Machine) -> None:
    """The GAME_CHUNKS move-data pushes stay on the stack (this opcode was NOP6); the GAME drops them.

    The GAME's fields come from the script being run; the checker judges the move against it."""
    m.require(GAME_CHUNKS)
    try:
        data = move_data(m.stack[-GAME_CHUNKS:])
    except ValueError as exc:
        raise ScriptError(ScriptErrorReason.JOB_GAME, str(exc)) from None
    problem = m.checker.check_job_game(m.script_code, data)
    if problem is not None:
        raise ScriptError(ScriptErrorReason.JOB_GAME, problem)


def _op_checkjobdeliveryverify(m: _Machine) -> None:
    """The DELIVERY_CHUNKS blob pushes stay on the stack (this opcode was NOP8); the script drops them.

    The STAKE's fields come from the script being run, so the opcode needs no operands of its own.
    """
    m.require(DELIVERY_CHUNKS)
    try:
        blob = delivery_blob(m.stack[-DELIVERY_CHUNKS:])
    except ValueError as exc:
        raise ScriptError(ScriptErrorReason.JOB_DELIVERY, str(exc)) from None
    if not m.checker.check_job_delivery(m.script_code, blob):
        raise ScriptError(
            ScriptErrorReason.JOB_DELIVERY, "output 0 is not the DELIVERED lock of this stake for the blob it carries"
        )


def _push_constant(value: bytes) -> Callable[[_Machine], None]:
    def run(m: _Machine) -> None:
        m.stack.append(value)

    return run


def _no_op(m: _Machine) -> None:
    """OP_NOP and the upgradable NOPs."""


_HANDLERS: dict[int, Callable[[_Machine], None]] = {
    Opcode.OP_1NEGATE: _push_constant(encode_script_num(-1)),
    **{
        opcode: _push_constant(bytes([opcode - Opcode.OP_1 + 1]))
        for opcode in range(Opcode.OP_1, Opcode.OP_16 + 1)
    },
    Opcode.OP_NOP: _no_op,
    **dict.fromkeys(UPGRADABLE_NOPS, _no_op),
    Opcode.OP_VERIFY: _op_verify,
    Opcode.OP_RETURN: _op_return,
    Opcode.OP_TOALTSTACK: _op_toaltstack,
    Opcode.OP_FROMALTSTACK: _op_fromaltstack,
    Opcode.OP_2DROP: _op_2drop,
    Opcode.OP_2DUP: _copy_from(2, 2),
    Opcode.OP_3DUP: _copy_from(3, 3),
    Opcode.OP_2OVER: _copy_from(4, 2),
    Opcode.OP_2ROT: _move_to_top(6, 2),
    Opcode.OP_2SWAP: _move_to_top(4, 2),
    Opcode.OP_IFDUP: _op_ifdup,
    Opcode.OP_DEPTH: _op_depth,
    Opcode.OP_DROP: _op_drop,
    Opcode.OP_DUP: _copy_from(1, 1),
    Opcode.OP_NIP: _op_nip,
    Opcode.OP_OVER: _copy_from(2, 1),
    Opcode.OP_PICK: _pick_or_roll(remove=False),
    Opcode.OP_ROLL: _pick_or_roll(remove=True),
    Opcode.OP_ROT: _move_to_top(3, 1),
    Opcode.OP_SWAP: _move_to_top(2, 1),
    Opcode.OP_TUCK: _op_tuck,
    Opcode.OP_SIZE: _op_size,
    Opcode.OP_EQUAL: _op_equal,
    Opcode.OP_EQUALVERIFY: _op_equalverify,
    **{opcode: _unary(operation) for opcode, operation in _UNARY_ARITHMETIC.items()},
    **{opcode: _binary(operation) for opcode, operation in _BINARY_ARITHMETIC.items()},
    Opcode.OP_NUMEQUALVERIFY: _op_numequalverify,
    Opcode.OP_WITHIN: _op_within,
    **{opcode: _hash(function) for opcode, function in _HASHES.items()},
    Opcode.OP_CHECKSIG: _op_checksig,
    Opcode.OP_CHECKSIGVERIFY: _op_checksigverify,
    Opcode.OP_CHECKLOCKTIMEVERIFY: _op_checklocktimeverify,
    Opcode.OP_CHECKSEQUENCEVERIFY: _op_checksequenceverify,
    Opcode.OP_CHECKJOBESCROWVERIFY: _op_checkjobescrowverify,
    Opcode.OP_CHECKJOBPROOFVERIFY: _op_checkjobproofverify,
    Opcode.OP_CHECKJOBDELIVERYVERIFY: _op_checkjobdeliveryverify,
    Opcode.OP_CHECKJOBGAMEVERIFY: _op_checkjobgameverify,
}
"""Every defined opcode except data pushes and IF/NOTIF/ELSE/ENDIF, which the loop handles."""


def _require_size(script: bytes, limit: int = MAX_SCRIPT_SIZE) -> None:
    if len(script) > limit:
        raise ScriptError(ScriptErrorReason.SCRIPT_SIZE, f"{len(script)} bytes exceeds {limit}")


def _branch_condition(m: _Machine, opcode: int) -> bool:
    """Pop the IF/NOTIF operand, which must be exactly empty or 0x01 (MINIMALIF)."""
    condition = m.pop()
    if condition not in (_FALSE, _TRUE):
        raise ScriptError(ScriptErrorReason.MINIMALIF, f"condition {condition.hex()} is not empty or 01")
    return (condition == _TRUE) != (opcode == Opcode.OP_NOTIF)


class _Branches:
    """Open IF/NOTIF branches; opcodes execute only while none of them is being skipped."""

    def __init__(self) -> None:
        self._taken: list[bool] = []
        self._skipped = 0  # how many entries of _taken are False

    @property
    def executing(self) -> bool:
        return self._skipped == 0

    @property
    def open_count(self) -> int:
        return len(self._taken)

    def open(self, taken: bool) -> None:
        self._taken.append(taken)
        self._skipped += not taken

    def flip(self) -> None:
        """OP_ELSE: switch the innermost branch between executed and skipped."""
        self._require_open(Opcode.OP_ELSE)
        self._skipped += 1 if self._taken[-1] else -1
        self._taken[-1] = not self._taken[-1]

    def close(self) -> None:
        self._require_open(Opcode.OP_ENDIF)
        self._skipped -= not self._taken.pop()

    def _require_open(self, opcode: Opcode) -> None:
        if not self._taken:
            raise ScriptError(ScriptErrorReason.UNBALANCED_CONDITIONAL, f"{opcode.name} without IF")


def eval_script(
    script: bytes, stack: list[bytes], checker: SignatureChecker, max_size: int = MAX_SCRIPT_SIZE
) -> None:
    """Run one script on `stack` (modified in place), raising ScriptError on any failure.

    Undefined opcodes fail even inside an unexecuted branch, and every opcode above
    OP_16 counts toward MAX_OPS_PER_SCRIPT whether executed or not (as in Bitcoin).
    """
    _require_size(script, max_size)
    machine = _Machine(stack, checker, script)
    branches = _Branches()
    op_count = 0
    for opcode, data in parse_script(script):
        if data is not None:
            if len(data) > MAX_SCRIPT_ELEMENT_SIZE:
                raise ScriptError(
                    ScriptErrorReason.PUSH_SIZE, f"{len(data)} bytes exceeds {MAX_SCRIPT_ELEMENT_SIZE}"
                )
            if branches.executing:
                if not is_minimal_push(opcode, data):
                    raise ScriptError(ScriptErrorReason.MINIMALDATA, f"push of {data.hex()} is not minimal")
                stack.append(data)
        else:
            if opcode > Opcode.OP_16:
                op_count += 1
                if op_count > MAX_OPS_PER_SCRIPT:
                    raise ScriptError(ScriptErrorReason.OP_COUNT, f"more than {MAX_OPS_PER_SCRIPT} opcodes")
            if opcode in (Opcode.OP_IF, Opcode.OP_NOTIF):
                branches.open(branches.executing and _branch_condition(machine, opcode))
            elif opcode == Opcode.OP_ELSE:
                branches.flip()
            elif opcode == Opcode.OP_ENDIF:
                branches.close()
            else:
                handler = _HANDLERS.get(opcode)
                if handler is None:
                    raise ScriptError(ScriptErrorReason.BAD_OPCODE, f"undefined opcode 0x{opcode:02x}")
                if branches.executing:
                    handler(machine)
        if len(stack) + len(machine.altstack) > MAX_STACK_SIZE:
            raise ScriptError(ScriptErrorReason.STACK_SIZE, f"more than {MAX_STACK_SIZE} stack items")
    if branches.open_count:
        raise ScriptError(ScriptErrorReason.UNBALANCED_CONDITIONAL, f"{branches.open_count} IF without ENDIF")


def verify_script(script_sig: bytes, script_pubkey: bytes, checker: SignatureChecker) -> None:
    """Raise ScriptError unless `script_sig` satisfies `script_pubkey`.

    The scriptSig must be push-only; it runs first, the scriptPubKey then runs on the
    stack it left, and success means exactly one item remains and it is true. A scriptSig
    spending a GAME may be MAX_GAME_SCRIPT_SIG bytes (a move's data), any other MAX_SCRIPT_SIZE.
    """
    game = len(script_sig) > MAX_SCRIPT_SIZE and match_game(script_pubkey) is not None
    limit = MAX_GAME_SCRIPT_SIG if game else MAX_SCRIPT_SIZE
    _require_size(script_sig, limit)
    if not is_push_only(script_sig):
        raise ScriptError(ScriptErrorReason.SIG_PUSHONLY)
    stack: list[bytes] = []
    eval_script(script_sig, stack, checker, limit)
    eval_script(script_pubkey, stack, checker)
    if not stack or not cast_to_bool(stack[-1]):
        raise ScriptError(ScriptErrorReason.EVAL_FALSE)
    if len(stack) != 1:
        raise ScriptError(ScriptErrorReason.CLEANSTACK, f"{len(stack)} items left, expected 1")
