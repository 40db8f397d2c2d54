"""Every job contract and transaction, built from one terms object (whitepaper 2.4, docs/jobs-design.md).

A job's scripts (ESCROW, STAKE, PAYOUT, DELIVERED, GAME) and the transactions that move them (payment, delivery,
refund, release, non-delivery claim, bad-delivery slash, the dispute game's moves and timeouts) all follow from
the job's parameters, the network's dispute window and, once a node has committed, its key Pn and commitment C.
`JobTerms` holds those and builds each of them, so the client, the compute node and the tests cannot disagree on
a field. Nothing here holds a key: each builder returns the transaction and signs its inputs through a
`JobSigner` (the wallet).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from camelid.core.deliveryproof import BadDeliveryProof, bad_delivery_script_sig
from camelid.core.job import JobParams
from camelid.core.jobgame import Game, game_script, move_script_sig, timeout_script_sig
from camelid.core.jobscripts import (
    FraudProof,
    JobLock,
    claim_script_sig,
    delivery_script_sig,
    escrow_script_sig,
    fraud_proof_script_sig,
    job_lock_script,
    release_script_sig,
)
from camelid.core.jobscripts import escrow_script as build_escrow_script
from camelid.core.opcodes import Opcode
from camelid.core.script import build_script
from camelid.core.transaction import SIGHASH_ALL, OutPoint, Transaction, TxIn, TxOut

NON_FINAL = 0xFFFFFFFE
"""Input sequence that lets the lock time (and so CHECKLOCKTIMEVERIFY) apply."""
FINAL = 0xFFFFFFFF
CSV_VERSION = 2
"""A GAME's timeout branch (OP_CHECKSEQUENCEVERIFY) needs a version-2 transaction whose input sequence is n_move."""


class JobSigner(Protocol):
    """Who holds the job keys (the wallet): signs with a key it made by public key; the key never leaves it."""

    def sign_job_digest(self, public_key: bytes, digest: bytes) -> bytes:
        """A DER signature of `digest` by the job key `public_key`."""


@dataclass(frozen=True)
class Spent:
    """An output a job transaction spends: where it is and what it holds."""

    outpoint: OutPoint
    out: TxOut


@dataclass(frozen=True)
class JobTerms:
    """A job's parameters and the network's dispute window: everything its contracts depend on."""

    params: JobParams
    dispute_window: int
    job_id: bytes = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "job_id", self.params.job_id())

    @property
    def t0(self) -> int:
        return self.params.timestamp

    @property
    def deadline(self) -> int:
        """D: the node must deliver by then; the client's non-delivery claim opens."""
        return self.params.timestamp + self.params.timelock

    def deliver_by(self, margin: int) -> int:
        """The last median time past at which a node starts to deliver: D less `margin`, so that the delivery
        is mined while the median time past is still before D (jobrules.check_delivery_deadline)."""
        return self.deadline - margin

    @property
    def refund_time(self) -> int:
        """D + W: the client may refund an unpaid escrow, the node reclaim its stake."""
        return self.deadline + self.dispute_window

    @property
    def escrow_script(self) -> bytes:
        return build_escrow_script(self.job_id, self.params.client_pubkey, self.t0, self.refund_time)

    def stake_lock(self, node_pubkey: bytes, commitment: bytes) -> JobLock:
        p = self.params
        return JobLock(
            self.job_id, self.t0, node_pubkey, p.client_pubkey, commitment, p.model_id, self.refund_time, self.deadline
        )

    def stake_script(self, node_pubkey: bytes, commitment: bytes) -> bytes:
        return job_lock_script(self.stake_lock(node_pubkey, commitment))

    def payout_lock(self, node_pubkey: bytes, commitment: bytes) -> JobLock:
        """The node's PAYOUT: claimable with its STAKE from D, the node's from D + W as the stake is."""
        return replace(self.stake_lock(node_pubkey, commitment), payout=True)

    def payout_script(self, node_pubkey: bytes, commitment: bytes) -> bytes:
        return job_lock_script(self.payout_lock(node_pubkey, commitment))

    # -- transactions ------------------------------------------------------------------------------

    def payment(self, escrow: Spent, node_pubkey: bytes, commitment: bytes, fee: int, signer: JobSigner) -> Transaction:
        """The client's move of the escrow to the node's PAYOUT (value less `fee`), signed with Pc."""
        outputs = (TxOut(escrow.out.value - fee, self.payout_script(node_pubkey, commitment)),)
        return self._signed((escrow,), outputs, 0, self.params.client_pubkey, signer, lambda _: escrow_script_sig)

    def delivery(self, stake: Spent, lock: JobLock, blob: bytes, fee: int, signer: JobSigner) -> Transaction:
        """The node's move of its STAKE (`lock`) into the DELIVERED lock for the sealed output `blob`, signed with
        Pn; valid only in a block whose median time past is before D. ValueError for a blob too large."""
        outputs = (TxOut(stake.out.value - fee, job_lock_script(lock.delivered(blob))),)
        return self._signed(
            (stake,), outputs, 0, lock.node_pubkey, signer, lambda _: lambda sig: delivery_script_sig(sig, blob)
        )

    def refund(self, escrow: Spent, pay_to: bytes, fee: int, signer: JobSigner) -> Transaction:
        """The client's refund of an escrow never paid, valid from the refund time."""
        outputs = (TxOut(escrow.out.value - fee, pay_to),)
        return self._signed(
            (escrow,), outputs, self.refund_time, self.params.client_pubkey, signer, lambda _: escrow_script_sig
        )

    def claim(self, stake: Spent, payout: Spent, pay_to: bytes, fee: int, signer: JobSigner) -> Transaction:
        """The client's non-delivery claim on a STAKE and its PAYOUT together, valid by consensus from D unless the
        node's delivery was mined before it, and only with a PAYOUT mined before D - W (jobrules.check_job_claims)."""
        outputs = (TxOut(stake.out.value + payout.out.value - fee, pay_to),)
        return self._signed(
            (stake, payout), outputs, self.deadline, self.params.client_pubkey, signer, lambda _: claim_script_sig
        )

    def release(self, locked: Spent, lock: JobLock, pay_to: bytes, fee: int, signer: JobSigner) -> Transaction:
        """The node's spend of its STAKE, PAYOUT or DELIVERED through the time-locked branch, from its release time."""
        outputs = (TxOut(locked.out.value - fee, pay_to),)
        return self._signed(
            (locked,), outputs, lock.release_time, lock.node_pubkey, signer,
            lambda _: lambda sig: release_script_sig(sig, lock),
        )

    def slash(
        self, delivered: Spent, proof: BadDeliveryProof, pay_to: bytes, fee: int, signer: JobSigner
    ) -> Transaction:
        """The client's bad-delivery proof taking the DELIVERED output, less `fee` (a RASTiC failure is disputed in
        the game instead: open_game)."""
        outputs = (TxOut(delivered.out.value - fee, pay_to),)
        unlock = lambda sig: bad_delivery_script_sig(sig, proof)  # noqa: E731
        return self._signed((delivered,), outputs, 0, self.params.client_pubkey, signer, lambda _: unlock)

    def open_game(
        self, locks: Sequence[Spent], bond: Spent, bond_key: bytes, proof: FraudProof, game: Game, fee: int,
        signer: JobSigner,
    ) -> Transaction:
        """Move 0: the client's fraud-proof spend of job locks `locks` (STAKE, and PAYOUT if there) and its `bond`
        coin (`p2pk_script` of the job key `bond_key`) into `game`, output 0, worth all of them less `fee`."""
        outputs = (TxOut(sum(s.out.value for s in (*locks, bond)) - fee, game_script(game)),)
        keys = [self.params.client_pubkey] * len(locks) + [bond_key]
        unlocks = [lambda sig: fraud_proof_script_sig(sig, proof)] * len(locks) + [_p2pk]
        return self._sign_each((*locks, bond), keys, unlocks, outputs, signer)

    def game_move(
        self, game_in: Spent, game: Game, data: bytes, after: Game, fee_coin: Spent, fee_key: bytes, signer: JobSigner
    ) -> Transaction:
        """Move 1 or 2: the mover's spend of the GAME `game_in` (in state `game`) with its move `data` into the next
        state `after`, worth as much; the fee is all of `fee_coin` (`p2pk_script` of the job key `fee_key`)."""
        outputs = (TxOut(game_in.out.value, game_script(after)),)
        unlocks = [lambda sig: move_script_sig(sig, data), _p2pk]
        return self._sign_each((game_in, fee_coin), [game.mover, fee_key], unlocks, outputs, signer)

    def game_win(
        self, game_in: Spent, game: Game, data: bytes, pay_to: bytes, fee: int, signer: JobSigner
    ) -> Transaction:
        """A move that ends the game for the accused (a refutation, or a step that holds): the GAME to `pay_to`."""
        outputs = (TxOut(game_in.out.value - fee, pay_to),)
        return self._sign_each((game_in,), [game.mover], [lambda sig: move_script_sig(sig, data)], outputs, signer)

    def game_timeout(self, game_in: Spent, game: Game, pay_to: bytes, fee: int, signer: JobSigner) -> Transaction:
        """The waiter's take of a GAME whose mover let n_move blocks pass: version 2, input sequence n_move."""
        outputs = (TxOut(game_in.out.value - fee, pay_to),)
        return self._sign_each(
            (game_in,), [game.waiter], [timeout_script_sig], outputs, signer, sequence=game.n_move, version=CSV_VERSION,
        )

    def sweep(self, coin: Spent, key: bytes, pay_to: bytes, fee: int, signer: JobSigner) -> Transaction:
        """A fee or bond coin (`p2pk_script` of the job key `key`) that no move used, back to `pay_to` (the wallet)."""
        return self._sign_each((coin,), [key], [_p2pk], (TxOut(coin.out.value - fee, pay_to),), signer)

    def _sign_each(
        self,
        spent: Sequence[Spent],
        keys: Sequence[bytes],
        unlocks: Sequence[Callable[[bytes], bytes]],
        outputs: tuple[TxOut, ...],
        signer: JobSigner,
        sequence: int = FINAL,
        version: int = 1,
        lock_time: int = 0,
    ) -> Transaction:
        """A transaction carrying J spending `spent` into `outputs`, input i signed by `keys[i]` (SIGHASH_ALL)."""
        inputs = tuple(TxIn(s.outpoint.txid, s.outpoint.index, sequence=sequence) for s in spent)
        unsigned = Transaction(version=version, inputs=inputs, outputs=outputs, lock_time=lock_time, job_id=self.job_id)
        signed = []
        for index, (txin, s, key, unlock) in enumerate(zip(inputs, spent, keys, unlocks, strict=True)):
            digest = unsigned.signature_hash(index, s.out.script_pubkey, s.out.value, SIGHASH_ALL)
            signed.append(replace(txin, script_sig=unlock(signer.sign_job_digest(key, digest) + bytes([SIGHASH_ALL]))))
        return replace(unsigned, inputs=tuple(signed))

    def _signed(
        self,
        spent: Sequence[Spent],
        outputs: tuple[TxOut, ...],
        lock_time: int,
        key: bytes,
        signer: JobSigner,
        unlock: Callable[[int], Callable[[bytes], bytes]],
    ) -> Transaction:
        """A transaction carrying J spending `spent` into `outputs`, each input signed by `key` (SIGHASH_ALL).

        A lock time makes the inputs non-final so that it (and CHECKLOCKTIMEVERIFY) applies.
        """
        unlocks = [unlock(index) for index in range(len(spent))]
        sequence = NON_FINAL if lock_time else FINAL
        return self._sign_each(spent, [key] * len(spent), unlocks, outputs, signer, sequence, lock_time=lock_time)


def p2pk_script(public_key: bytes) -> bytes:
    """A coin only the job key can spend, kept out of the wallet's coin selection (it tracks P2PKH only): a move's
    fee and the challenger's bond wait in one until the move spends it."""
    return build_script(public_key, Opcode.OP_CHECKSIG)


def _p2pk(signature: bytes) -> bytes:
    return build_script(signature)
