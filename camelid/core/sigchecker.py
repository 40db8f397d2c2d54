"""The signature checker the script interpreter consults while validating one transaction input.

It owns what the interpreter must not know: the sighash-type byte (only SIGHASH_ALL
exists), the signature hash of this input, the transaction's lock-time fields for
OP_CHECKLOCKTIMEVERIFY, its version and this input's sequence for OP_CHECKSEQUENCEVERIFY,
and the job-contract conditions: the escrow spend, delivery and game-opening rules (which need
only the transaction) and dispute-game moves (which also need the chain's GameRules: the move
timeout and the injected referee).
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

from camelid.core.consensus import (
    LOCKTIME_THRESHOLD,
    RELATIVE_LOCK_VERSION,
    SEQUENCE_FINAL,
    SEQUENCE_LOCKTIME_DISABLE_FLAG,
    SEQUENCE_LOCKTIME_MASK,
    SEQUENCE_LOCKTIME_TYPE_FLAG,
)
from camelid.core.jobgame import GameRules, match_game, move_problem, opening_problem
from camelid.core.jobscripts import (
    JOB_PAYOUT_FEE_CAP,
    FraudProof,
    commitment_signature_digest,
    job_lock_script,
    match_job_lock,
)
from camelid.core.serialize import compact_size, var_bytes
from camelid.core.transaction import SIGHASH_ALL, Transaction
from camelid.crypto.keys import PublicKey, verify_signature

_HASH_TYPE_BYTES = SIGHASH_ALL.to_bytes(4, "little")
_RELATIVE_LOCK_BITS = SEQUENCE_LOCKTIME_TYPE_FLAG | SEQUENCE_LOCKTIME_MASK


class SighashCache:
    """Transaction.signature_hash for every input of one transaction, without reserializing it each time.

    The preimage of input i is the transaction with every scriptSig empty ("blank"),
    except that input i carries the script code; so it is hashed as three pieces of
    one blank serialization -- up to input i's empty script, the script code, the rest --
    with no copy and no Python loop over the other inputs (the legacy sighash still
    hashes the whole transaction per input). Tests check the result equals signature_hash.
    """

    __slots__ = ("_blank", "_script_at")

    def __init__(self, tx: Transaction) -> None:
        raw = tx.to_bytes()
        position = 4 + len(compact_size(len(tx.inputs)))
        parts = [raw[:position]]
        self._script_at: list[int] = []  # where each input's (empty) script length byte sits in _blank
        blank_position = position
        for txin in tx.inputs:
            sequence = txin.sequence.to_bytes(4, "little")
            parts += (txin.prev_txid, txin.prev_index.to_bytes(4, "little"), b"\x00", sequence)
            self._script_at.append(blank_position + 36)
            blank_position += 41
            position += 40 + len(var_bytes(txin.script_sig))
        parts.append(raw[position:])  # outputs, lock time, job id
        self._blank = memoryview(b"".join(parts))

    def digest(self, index: int, script_code: bytes, amount: int) -> bytes:
        if not 0 <= index < len(self._script_at):
            raise ValueError(f"input index {index} out of range for {len(self._script_at)} inputs")
        at = self._script_at[index]
        hasher = hashlib.sha256(self._blank[:at])
        hasher.update(var_bytes(script_code))
        hasher.update(self._blank[at + 1 :])
        hasher.update(amount.to_bytes(8, "little", signed=True) + _HASH_TYPE_BYTES)
        return hashlib.sha256(hasher.digest()).digest()

    def signature_check(
        self, index: int, sig: bytes, pubkey: bytes, script_code: bytes, amount: int
    ) -> SignatureCheck | None:
        """What CHECKSIG verifies for input `index`, to run now or on another thread; None where the
        answer is false without a verification (no SIGHASH_ALL byte)."""
        if len(sig) < 2 or sig[-1] != SIGHASH_ALL:
            return None
        return SignatureCheck(pubkey, sig[:-1], self.digest(index, script_code, amount))


class SignatureCheck(NamedTuple):
    """The one ECDSA verification a CHECKSIG comes down to once the hash type and sighash are settled.

    It needs nothing from the transaction any more, so block validation can run it on
    another thread (camelid.chain.checkqueue).
    """

    pubkey: bytes
    signature: bytes  # DER, without the hash-type byte
    digest: bytes

    def verify(self) -> bool:
        return verify_signature(self.pubkey, self.signature, self.digest)


class TransactionSignatureChecker:
    """Answers the interpreter's questions for input `input_index` spending an output worth `amount`.

    Without `game` (the chain's GameRules) no game opens and no move holds, so a caller that did
    not pass the chain's rules can never let one through.
    """

    __slots__ = ("tx", "input_index", "amount", "game", "_sighashes")

    def __init__(
        self,
        tx: Transaction,
        input_index: int,
        amount: int,
        sighashes: SighashCache | None = None,
        game: GameRules | None = None,
    ) -> None:
        if not 0 <= input_index < len(tx.inputs):
            raise ValueError(f"input index {input_index} out of range for {len(tx.inputs)} inputs")
        self.tx = tx
        self.input_index = input_index
        self.amount = amount
        self.game = game
        self._sighashes = sighashes if sighashes is not None else SighashCache(tx)

    def check_sig(self, sig: bytes, pubkey: bytes, script_code: bytes) -> bool:
        """True if `sig` is a DER signature plus the SIGHASH_ALL byte over this input's sighash."""
        check = self._sighashes.signature_check(self.input_index, sig, pubkey, script_code, self.amount)
        return check is not None and check.verify()

    def check_locktime(self, locktime: int) -> bool:
        """BIP65: same kind (height or time) as the transaction's lock time, not above it, and not disabled."""
        tx_locktime = self.tx.lock_time
        if (locktime < LOCKTIME_THRESHOLD) != (tx_locktime < LOCKTIME_THRESHOLD):
            return False
        if locktime > tx_locktime:
            return False
        # A final sequence would make the lock time itself ineffective (IsFinalTx ignores it).
        return self.tx.inputs[self.input_index].sequence != SEQUENCE_FINAL

    def check_sequence(self, sequence: int) -> bool:
        """BIP112: this input's sequence is a relative lock (BIP68 applies: version >= 2, not disabled) of the
        same kind as `sequence` (blocks or time) and at least as long; bits outside the lock are ignored."""
        if self.tx.version < RELATIVE_LOCK_VERSION:
            return False
        tx_sequence = self.tx.inputs[self.input_index].sequence
        # A disabled input lock is not enforced by BIP68, so it could not honour any relative lock.
        if tx_sequence & SEQUENCE_LOCKTIME_DISABLE_FLAG:
            return False
        tx_lock, lock = tx_sequence & _RELATIVE_LOCK_BITS, sequence & _RELATIVE_LOCK_BITS
        if (tx_lock < SEQUENCE_LOCKTIME_TYPE_FLAG) != (lock < SEQUENCE_LOCKTIME_TYPE_FLAG):
            return False
        return lock <= tx_lock

    def check_job_escrow(self, job_id: bytes, t0: int, refund_time: int) -> bool:
        """A refund (lock time at least `refund_time`, as CLTV) or a payout: this transaction carries
        `job_id` and its output 0 is a PAYOUT for the same job and t0 worth at least the escrow
        minus JOB_PAYOUT_FEE_CAP."""
        if self.check_locktime(refund_time):
            return True
        if self.tx.job_id != job_id or not self.tx.outputs:
            return False
        payout = self.tx.outputs[0]
        lock = match_job_lock(payout.script_pubkey)
        return (
            lock is not None
            and lock.job_id == job_id
            and lock.t0 == t0
            and payout.value >= self.amount - JOB_PAYOUT_FEE_CAP
        )

    def check_job_delivery(self, stake_script: bytes, blob: bytes) -> bool:
        """This transaction carries the STAKE's job id and its output 0 is the STAKE's DELIVERED lock for
        `blob`, worth at least the stake minus JOB_PAYOUT_FEE_CAP."""
        stake = match_job_lock(stake_script)
        if stake is None or not stake.is_stake or self.tx.job_id != stake.job_id or not self.tx.outputs:
            return False
        delivered = self.tx.outputs[0]
        return (
            delivered.script_pubkey == job_lock_script(stake.delivered(blob))
            and delivered.value >= self.amount - JOB_PAYOUT_FEE_CAP
        )

    def check_job_proof(self, lock_script: bytes, proof_items: list[bytes]) -> str | None:
        """Move 0: None if the proof's tokens give the lock's commitment, the node signed it, and output 0 is the
        GAME it opens (GameRules give n_move; without them nothing passes); else why not. No model runs."""
        lock = match_job_lock(lock_script)
        if lock is None:
            return "the script being run is not a job lock"
        try:
            proof = FraudProof.from_items(proof_items)
            key = PublicKey.from_bytes(lock.node_pubkey)
        except ValueError as exc:
            return f"malformed fraud proof: {exc}"
        if proof.commitment(lock.model_id) != lock.commitment:
            return "the proof's tokens and job fields are not the output the node committed to"
        if not key.verify(proof.node_signature, commitment_signature_digest(lock.commitment)):
            return "the proof's testament is not the node's signature of the commitment"
        if self.game is None:
            return "this checker has no game rules: it opens no game"
        return opening_problem(lock, proof, self.tx.job_id, self.tx.outputs, self.game.n_move)

    def check_job_game(self, game_script: bytes, data: bytes) -> str | None:
        """A move on the GAME `game_script` (the script being run) with move data `data`: None if valid."""
        game = match_game(game_script)
        if game is None:
            return "the script being run is not a GAME"
        if self.game is None:
            return "this checker has no game rules: it judges no move"
        return move_problem(game, data, self.tx.job_id, self.tx.outputs, self.amount, self.game.referee)
