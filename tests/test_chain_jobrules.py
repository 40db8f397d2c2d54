"""Job contracts on the real chain state: escrow, payout, stake reclaim, delivery and claim, fraud proofs, the dispute
window and the delivery deadline.

Every transaction is signed with real keys and every block goes through ChainState and
the Mempool. No model is involved anywhere: a RASTiC fraud proof only opens a dispute game
(test_chain_jobgame.py plays it), and a bad-delivery proof is decided from chain data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from chain_helpers import REGTEST_NOW, build_block, coinbase_spendable, make_key, mine, p2pkh_for, spend

from camelid.chain.chainstate import ChainState
from camelid.chain.errors import BlockRejected, TxRejected
from camelid.chain.mempool import Mempool
from camelid.core.deliveryproof import MALFORMED_REVEAL, BadDeliveryProof, bad_delivery_script_sig
from camelid.core.jobgame import MIN_GAME_BOND, Challenge, Game, game_script
from camelid.core.jobscripts import (
    JOB_PAYOUT_FEE_CAP,
    FraudProof,
    claim_script_sig,
    commitment_body,
    commitment_signature_digest,
    delivery_items,
    delivery_script_sig,
    escrow_script,
    escrow_script_sig,
    fraud_proof_script_sig,
    job_lock_script,
    match_job_lock,
    output_commitment,
    payout_script,
    release_script_sig,
    stake_script,
)
from camelid.core.opcodes import Opcode
from camelid.core.params import REGTEST
from camelid.core.script import build_script
from camelid.core.transaction import SIGHASH_ALL, Transaction, TxIn, TxOut
from camelid.crypto import ecies
from camelid.crypto.keys import PrivateKey

MINER, CLIENT, NODE = make_key(31), make_key(32), make_key(33)
REWARD, STAKE, FEE = 1_000_000, 1_000_000, 20_000
JOB_ID = bytes(range(32))
SEQUENCE_LOCKED = 0xFFFFFFFE  # not final, so lock times apply
STUB_MODEL = bytes([7]) * 32


@dataclass(frozen=True)
class Claim:
    """The output a node stands behind, and the position a client disputes."""

    model_id: bytes
    prompt: tuple[int, ...]
    output: tuple[int, ...]
    position: int
    max_tokens: int = 12

    @property
    def commitment(self) -> bytes:
        return output_commitment(self.model_id, self.prompt, self.output, self.max_tokens, 0, 0.0)

    def proof(self, signer: PrivateKey = NODE) -> FraudProof:
        signature = signer.sign(commitment_signature_digest(self.commitment))
        return FraudProof(self.prompt, self.output, self.max_tokens, 0, 0, self.position, signature, 3)


def _sign(tx: Transaction, index: int, script_code: bytes, amount: int, key: PrivateKey) -> bytes:
    return key.sign(tx.signature_hash(index, script_code, amount)) + bytes([SIGHASH_ALL])


class JobWorld:
    """A chain where job J is funded (escrow + stake in one block); `t0` is set so that the dispute
    window is still open at the tip and closes with the next block."""

    def __init__(self, path: Path, claim: Claim, stakes: int = 1, timelock: int = 100) -> None:
        self.chain = ChainState.open(path, REGTEST)
        self.blocks = mine(self.chain, 101, key=MINER)
        self.claim = claim
        spacing = REGTEST.target_spacing
        self.t0 = self.chain.median_time_past(self.chain.tip) + spacing - 2
        self.deadline = self.t0 + timelock  # D (blocks are 120 s apart: the median time past moves that much each)
        self.release_time = self.deadline + 100  # D + W
        self.escrow = escrow_script(JOB_ID, CLIENT.public_key.to_bytes(), self.t0, self.release_time)
        self.stake = stake_script(*self._lock_args(), self.deadline, self.release_time)
        self.payout = payout_script(*self._lock_args(), self.deadline, self.release_time)
        outputs = [TxOut(REWARD, self.escrow)] + [TxOut(STAKE, self.stake)] * stakes
        self.funding = spend([coinbase_spendable(self.blocks[0], MINER)], outputs)
        self.connect(self.funding)
        self.pool = Mempool(self.chain)

    def _lock_args(self) -> tuple[bytes, bytes, bytes, bytes, bytes, int]:
        node, client = NODE.public_key.to_bytes(), CLIENT.public_key.to_bytes()
        return JOB_ID, node, client, self.claim.commitment, self.claim.model_id, self.t0

    def connect(self, *txs: Transaction) -> None:
        block = build_block(self.chain, txs, key=MINER)
        self.chain.process_block(block, now=REGTEST_NOW)
        self.blocks.append(block)

    def block_reason(self, *txs: Transaction) -> str:
        with pytest.raises(BlockRejected) as caught:
            self.chain.process_block(build_block(self.chain, txs, key=MINER), now=REGTEST_NOW)
        return caught.value.reason

    def pool_reason(self, tx: Transaction) -> str:
        with pytest.raises(TxRejected) as caught:
            self.pool.accept(tx, now=REGTEST_NOW)
        return caught.value.reason

    def mine(self, count: int = 1) -> None:
        self.blocks += mine(self.chain, count, key=MINER)

    def mine_until(self, median_time_past: int) -> None:
        while self.chain.median_time_past(self.chain.tip) < median_time_past:
            self.mine()

    def payment(self, script: bytes | None = None, value: int = REWARD - FEE, job_id: bytes = JOB_ID) -> Transaction:
        """The client's escrow spend, to `script` (default: the correct PAYOUT) with the job's id."""
        unsigned = Transaction(
            inputs=[TxIn(self.funding.hash, 0)],
            outputs=[TxOut(value, self.payout if script is None else script)],
            job_id=job_id,
        )
        return _signed(unsigned, [(self.escrow, REWARD, CLIENT, escrow_script_sig)])

    def refund(self, lock_time: int) -> Transaction:
        unsigned = Transaction(
            inputs=[TxIn(self.funding.hash, 0, sequence=SEQUENCE_LOCKED)],
            outputs=[TxOut(REWARD - FEE, p2pkh_for(CLIENT))],
            lock_time=lock_time,
        )
        return _signed(unsigned, [(self.escrow, REWARD, CLIENT, escrow_script_sig)])

    def reclaim(self, lock_time: int, key: PrivateKey = NODE) -> Transaction:
        unsigned = Transaction(
            inputs=[TxIn(self.funding.hash, 1, sequence=SEQUENCE_LOCKED)],
            outputs=[TxOut(STAKE - FEE, p2pkh_for(NODE))],
            lock_time=lock_time,
        )
        lock = match_job_lock(self.stake)
        return _signed(unsigned, [(self.stake, STAKE, key, lambda sig: release_script_sig(sig, lock))])

    def stake_claim(
        self, lock_time: int, key: PrivateKey = CLIENT, payouts: tuple[tuple[Transaction, int], ...] = (),
        stake: bool = True,
    ) -> Transaction:
        """The client's non-delivery claim on the stake (unless `stake` is False) and on each (transaction,
        output index) of `payouts`, through their claim branches open from the deadline."""
        spent = [(TxIn(self.funding.hash, 1, sequence=SEQUENCE_LOCKED), self.stake, STAKE)] if stake else []
        for tx, index in payouts:
            out = tx.outputs[index]
            spent.append((TxIn(tx.hash, index, sequence=SEQUENCE_LOCKED), out.script_pubkey, out.value))
        unsigned = Transaction(
            inputs=[txin for txin, _, _ in spent],
            outputs=[TxOut(sum(value for _, _, value in spent) - FEE, p2pkh_for(CLIENT))],
            lock_time=lock_time,
            job_id=JOB_ID,
        )
        return _signed(unsigned, [(script, value, key, claim_script_sig) for _, script, value in spent])

    def foreign_payout(self, value: int, index: int = 0, script: bytes | None = None) -> Transaction:
        """A PAYOUT the client makes from its own coins, not the escrow, at output `index`."""
        payout = TxOut(value, self.payout if script is None else script)
        change = TxOut(1000, p2pkh_for(MINER))
        return spend([coinbase_spendable(self.blocks[1], MINER)], [payout, change] if index == 0 else [change, payout])

    def delivery(
        self, blob: bytes = b"sealed output", key: PrivateKey = NODE, script: bytes | None = None, fee: int = FEE,
        unlock: Callable[[bytes], bytes] | None = None,
    ) -> Transaction:
        """The node's move of the stake, with `blob`, into its DELIVERED lock (`script` overrides that output)."""
        stake = match_job_lock(self.stake)
        assert stake is not None
        delivered = job_lock_script(stake.delivered(blob)) if script is None else script
        unsigned = Transaction(
            inputs=[TxIn(self.funding.hash, 1)], outputs=[TxOut(STAKE - fee, delivered)], job_id=JOB_ID
        )
        make = (lambda sig: delivery_script_sig(sig, blob)) if unlock is None else unlock
        return _signed(unsigned, [(self.stake, STAKE, key, make)])

    def slash(self, proof: FraudProof, payment: Transaction | None = None, stakes: int = 1) -> Transaction:
        """The client's fraud-proof spend of the stake(s) and, if given, the confirmed payout."""
        inputs = [TxIn(self.funding.hash, 1 + i) for i in range(stakes)]
        spent = [(self.stake, STAKE)] * stakes
        if payment is not None:
            inputs.append(TxIn(payment.hash, 0))
            spent.append((self.payout, payment.outputs[0].value))
        total = sum(value for _, value in spent)
        unsigned = Transaction(inputs=inputs, outputs=[TxOut(total - FEE, p2pkh_for(CLIENT))])
        return _signed(
            unsigned,
            [(script, value, CLIENT, lambda sig: fraud_proof_script_sig(sig, proof)) for script, value in spent],
        )


def _signed(unsigned: Transaction, signers: list) -> Transaction:
    inputs = [
        replace(txin, script_sig=make_script_sig(_sign(unsigned, i, script, value, key)))
        for i, (txin, (script, value, key, make_script_sig)) in enumerate(zip(unsigned.inputs, signers, strict=True))
    ]
    return replace(unsigned, inputs=tuple(inputs))


STUB_CLAIM = Claim(STUB_MODEL, (1, 5, 9), (11, 12, 13, 2), position=1)


# Escrow.


def test_payout_waits_for_the_dispute_window(tmp_path: Path) -> None:
    world = JobWorld(tmp_path / "chain", STUB_CLAIM)
    payment = world.payment()
    assert world.block_reason(payment) == "bad-job-dispute-window"
    assert world.pool_reason(payment) == "job-dispute-window"
    world.mine()
    world.pool.accept(payment, now=REGTEST_NOW)
    world.connect(payment)
    assert world.chain.get_coin(TxIn(payment.hash, 0).prevout).tx_out.script_pubkey == world.payout


def test_a_compute_node_checks_a_payment_by_every_mempool_rule_but_the_dispute_window(tmp_path: Path) -> None:
    """Mempool.check: what a compute node asks before it delivers for a payment nobody can mine yet."""
    world = JobWorld(tmp_path / "chain", STUB_CLAIM)
    payment = world.payment()
    world.pool.check(payment)  # the dispute window alone keeps it out of the pool
    assert world.pool_reason(payment) == "job-dispute-window"
    non_final = _signed(
        replace(payment, inputs=[TxIn(world.funding.hash, 0, sequence=SEQUENCE_LOCKED)], lock_time=499_999_999),
        [(world.escrow, REWARD, CLIENT, escrow_script_sig)],
    )
    overpaying = world.payment(value=REWARD + 1)
    for bad, reason in ((non_final, "non-final"), (overpaying, "bad-txns-in-belowout")):
        with pytest.raises(TxRejected, match=reason):
            world.pool.check(bad)
    world.mine()
    elsewhere = world.payment(script=payout_script(*world._lock_args(), world.deadline, world.t0 + 1))  # another PAYOUT
    world.pool.accept(elsewhere, now=REGTEST_NOW)
    with pytest.raises(TxRejected, match="txn-mempool-conflict"):
        world.pool.check(payment)
    world.pool.check(elsewhere)  # already in the pool: fine
    world.connect(elsewhere)
    world.pool.remove_for_block(world.blocks[-1])
    with pytest.raises(TxRejected, match="bad-txns-inputs-missingorspent"):
        world.pool.check(payment)


def test_escrow_refunds_only_from_the_refund_time(tmp_path: Path) -> None:
    world = JobWorld(tmp_path / "chain", STUB_CLAIM)
    world.mine(2)  # median time past is now past the refund time
    assert world.chain.median_time_past(world.chain.tip) > world.release_time
    early = world.refund(world.release_time - 1)
    assert world.block_reason(early) == "bad-job-escrow-spend"
    assert world.pool_reason(early) == "bad-job-escrow-spend"
    world.connect(world.refund(world.release_time))


def test_refund_cannot_be_mined_before_its_lock_time(tmp_path: Path) -> None:
    world = JobWorld(tmp_path / "chain", STUB_CLAIM)
    world.mine()
    assert world.block_reason(world.refund(world.release_time)) == "bad-txns-nonfinal"


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"script": p2pkh_for(CLIENT)}, "output 0 is not a payout"),
        ({"job_id": bytes(32)}, "transaction does not carry the job id"),
        ({"job_id": bytes([9]) * 32}, "transaction carries another job id"),
        ({"value": REWARD - 100_001}, "fee above the cap"),
    ],
)
def test_escrow_moves_only_to_a_correct_payout(tmp_path: Path, change: dict, why: str) -> None:
    world = JobWorld(tmp_path / "chain", STUB_CLAIM)
    world.mine()
    bad = world.payment(**change)
    assert world.block_reason(bad) == "bad-job-escrow-spend", why
    world.connect(world.payment(value=REWARD - 100_000))  # exactly the fee cap is fine


def test_escrow_payout_must_keep_the_jobs_t0(tmp_path: Path) -> None:
    world = JobWorld(tmp_path / "chain", STUB_CLAIM)
    world.mine()
    node, client = NODE.public_key.to_bytes(), CLIENT.public_key.to_bytes()
    other_t0 = payout_script(
        JOB_ID, node, client, STUB_CLAIM.commitment, STUB_MODEL, world.t0 - 1000, world.deadline, world.t0
    )
    assert world.block_reason(world.payment(other_t0)) == "bad-job-escrow-spend"


# Stake reclaim.


def test_node_reclaims_its_stake_after_the_reclaim_time(tmp_path: Path) -> None:
    world = JobWorld(tmp_path / "chain", STUB_CLAIM)
    world.mine(2)
    early = world.reclaim(world.release_time - 1)
    assert world.block_reason(early) == "mandatory-script-verify-flag-failed (UNSATISFIED_LOCKTIME)"
    assert world.block_reason(world.reclaim(world.release_time, key=CLIENT)) == (
        "mandatory-script-verify-flag-failed (NULLFAIL)"
    )
    world.connect(world.reclaim(world.release_time))


# The client's non-delivery claim: a STAKE and its PAYOUT together, the PAYOUT mined before D - W (consensus).

CLAIM_TIMELOCK = 400
"""Room for a payment mined a block after the dispute window, and before D - W."""


def _paid_world(path: Path) -> tuple[JobWorld, Transaction]:
    """A job whose payment is mined as soon as the dispute window allows, well before D - W."""
    world = JobWorld(path, STUB_CLAIM, timelock=CLAIM_TIMELOCK)
    world.mine()
    payment = world.payment()
    world.connect(payment)
    return world, payment


def test_a_claim_takes_the_stake_and_its_payout_from_the_deadline(tmp_path: Path) -> None:
    world, payment = _paid_world(tmp_path / "chain")
    world.mine_until(world.deadline)
    assert world.chain.median_time_past(world.chain.tip) > world.deadline
    paid = ((payment, 0),)
    early = world.stake_claim(world.deadline - 1, payouts=paid)
    assert world.block_reason(early) == "mandatory-script-verify-flag-failed (UNSATISFIED_LOCKTIME)"
    signed_by_node = world.stake_claim(world.deadline, key=NODE, payouts=paid)
    assert world.block_reason(signed_by_node) == "mandatory-script-verify-flag-failed (NULLFAIL)"
    claim = world.stake_claim(world.deadline, payouts=paid)
    world.pool.accept(claim, now=REGTEST_NOW)
    world.connect(claim)
    taken = STAKE + REWARD - 2 * FEE
    assert world.chain.get_coin(TxIn(claim.hash, 0).prevout).tx_out == TxOut(taken, p2pkh_for(CLIENT))


def test_a_client_that_never_paid_cannot_claim_the_stake_and_the_node_reclaims_it(tmp_path: Path) -> None:
    """Issue 13: the claim of an unpaid stake was valid from D; a client mining its own block took the stake."""
    world = JobWorld(tmp_path / "chain", STUB_CLAIM, timelock=CLAIM_TIMELOCK)
    world.mine_until(world.deadline)
    claim = world.stake_claim(world.deadline)
    assert world.block_reason(claim) == "bad-job-claim"
    assert world.pool_reason(claim) == "job-claim"
    world.mine_until(world.release_time)
    world.connect(world.reclaim(world.release_time))


def test_a_claim_needs_a_payout_mined_before_the_deadline_less_a_dispute_window(tmp_path: Path) -> None:
    """A payment the node saw too late to deliver before D backs no claim, in the claim's block or before it."""
    world = JobWorld(tmp_path / "chain", STUB_CLAIM, timelock=CLAIM_TIMELOCK)
    world.mine_until(world.deadline - REGTEST.dispute_window)
    payment = world.payment()
    claim = world.stake_claim(world.deadline, payouts=((payment, 0),))
    assert world.block_reason(payment, claim) == "bad-job-claim"
    world.pool.accept(payment, now=REGTEST_NOW)
    assert world.pool_reason(claim) == "job-claim"
    world.connect(payment)
    assert world.block_reason(claim) == "bad-job-claim"
    world.pool.remove_for_block(world.blocks[-1])
    assert world.pool_reason(claim) == "job-claim"


@pytest.mark.parametrize(
    "bend", ["worth less than the stake", "not output 0", "for another commitment", "the payout alone"]
)
def test_a_claim_takes_a_payout_of_the_same_job_worth_the_stake_with_it(tmp_path: Path, bend: str) -> None:
    world = JobWorld(tmp_path / "chain", STUB_CLAIM, timelock=CLAIM_TIMELOCK)
    world.mine()
    if bend == "worth less than the stake":
        payout = world.foreign_payout(STAKE - JOB_PAYOUT_FEE_CAP - 1)
    elif bend == "not output 0":
        payout = world.foreign_payout(STAKE, index=1)
    elif bend == "for another commitment":
        node, client = NODE.public_key.to_bytes(), CLIENT.public_key.to_bytes()
        other = payout_script(JOB_ID, node, client, bytes(32), STUB_MODEL, world.t0, world.deadline, world.release_time)
        payout = world.foreign_payout(STAKE, script=other)
    else:
        payout = world.foreign_payout(STAKE)
    world.connect(payout)
    world.mine_until(world.deadline)
    index = 1 if bend == "not output 0" else 0
    claim = world.stake_claim(world.deadline, payouts=((payout, index),), stake=bend != "the payout alone")
    assert world.block_reason(claim) == "bad-job-claim"
    assert world.pool_reason(claim) == "job-claim"


def test_any_payout_worth_the_stake_backs_a_claim(tmp_path: Path) -> None:
    """Consensus cannot see where a PAYOUT's coins came from; the compute node delivers on any (payment_problem)."""
    world = JobWorld(tmp_path / "chain", STUB_CLAIM, timelock=CLAIM_TIMELOCK)
    payout = world.foreign_payout(STAKE - JOB_PAYOUT_FEE_CAP)
    world.connect(payout)
    world.mine_until(world.deadline)
    world.connect(world.stake_claim(world.deadline, payouts=((payout, 0),)))


def test_the_node_releases_its_payout_from_the_reclaim_time(tmp_path: Path) -> None:
    world, payment = _paid_world(tmp_path / "chain")
    world.mine_until(world.release_time)
    lock = match_job_lock(world.payout)
    assert lock is not None and lock.is_payout and lock.release_time == world.release_time
    unsigned = Transaction(
        inputs=[TxIn(payment.hash, 0, sequence=SEQUENCE_LOCKED)],
        outputs=[TxOut(REWARD - 2 * FEE, p2pkh_for(NODE))],
        lock_time=world.release_time,
    )
    sign = [(world.payout, REWARD - FEE, NODE, lambda sig: release_script_sig(sig, lock))]
    early = replace(unsigned, lock_time=world.release_time - 1)
    assert world.block_reason(_signed(early, sign)) == "mandatory-script-verify-flag-failed (UNSATISFIED_LOCKTIME)"
    world.connect(_signed(unsigned, sign))


# The node's delivery: the stake, with the sealed output, into a DELIVERED lock while the median time past is before D.


def test_a_delivery_mined_before_the_deadline_leaves_the_claim_nothing_to_spend(tmp_path: Path) -> None:
    world = JobWorld(tmp_path / "chain", STUB_CLAIM, timelock=CLAIM_TIMELOCK)
    assert world.chain.median_time_past(world.chain.tip) < world.t0 + REGTEST.dispute_window  # window still open
    delivery = world.delivery()
    world.pool.accept(delivery, now=REGTEST_NOW)  # exempt from the dispute window: it moves nothing out of the job
    world.connect(delivery)
    world.pool.remove_for_block(world.blocks[-1])
    payment = world.payment()
    world.connect(payment)
    world.mine_until(world.deadline)
    claim = world.stake_claim(world.deadline, payouts=((payment, 0),))
    assert world.block_reason(claim) == "bad-txns-inputs-missingorspent"  # a client's own miner cannot take it
    assert world.pool_reason(claim) == "bad-txns-inputs-missingorspent"
    payout_alone = world.stake_claim(world.deadline, payouts=((payment, 0),), stake=False)
    assert world.block_reason(payout_alone) == "bad-job-claim"  # the node that delivered keeps its payment
    delivered = match_job_lock(delivery.outputs[0].script_pubkey)
    assert delivered is not None and not delivered.is_stake and delivered.release_time == world.release_time
    release = Transaction(
        inputs=[TxIn(delivery.hash, 0, sequence=SEQUENCE_LOCKED)],
        outputs=[TxOut(STAKE - 2 * FEE, p2pkh_for(NODE))],
        lock_time=world.release_time,
    )
    world.mine_until(world.release_time)
    early = replace(release, lock_time=world.release_time - 1)
    sign = [(delivery.outputs[0].script_pubkey, STAKE - FEE, NODE, lambda sig: release_script_sig(sig, delivered))]
    assert world.block_reason(_signed(early, sign)) == "mandatory-script-verify-flag-failed (UNSATISFIED_LOCKTIME)"
    world.connect(_signed(release, sign))


def test_a_delivered_stake_still_answers_a_fraud_proof(tmp_path: Path) -> None:
    """The proof opens a game on the DELIVERED lock: output 0 its GAME, worth the lock and the MIN_GAME_BOND."""
    world = JobWorld(tmp_path / "chain", STUB_CLAIM)
    delivery = world.delivery()
    world.connect(delivery)
    world.mine(1)
    script = delivery.outputs[0].script_pubkey
    lock = match_job_lock(script)
    proof = STUB_CLAIM.proof()
    game = game_script(Game.opened(lock, Challenge.of_proof(proof).hash(), REGTEST.n_move))
    bond = coinbase_spendable(world.blocks[2], MINER)
    opening = STAKE - FEE + MIN_GAME_BOND

    def opened(value: int) -> Transaction:
        unsigned = Transaction(
            inputs=[TxIn(delivery.hash, 0), TxIn(bond.outpoint.txid, bond.outpoint.index)],
            outputs=[TxOut(value, game), TxOut(bond.value - MIN_GAME_BOND - FEE, p2pkh_for(MINER))], job_id=JOB_ID,
        )
        return _signed(unsigned, [
            (script, STAKE - FEE, CLIENT, lambda sig: fraud_proof_script_sig(sig, proof)),
            (bond.script_pubkey, bond.value, MINER, lambda sig: build_script(sig, MINER.public_key.to_bytes())),
        ])

    assert world.pool_reason(opened(opening - 1)) == "job-game-open"
    assert world.block_reason(opened(opening - 1)) == "bad-job-game-open"
    world.pool.accept(opened(opening), now=REGTEST_NOW)
    world.connect(opened(opening))


def test_a_delivery_is_valid_only_while_the_median_time_past_is_before_the_deadline(tmp_path: Path) -> None:
    world = JobWorld(tmp_path / "chain", STUB_CLAIM)
    world.mine(2)
    assert world.chain.median_time_past(world.chain.tip) >= world.deadline
    assert world.block_reason(world.delivery()) == "bad-job-delivery-late"
    assert world.pool_reason(world.delivery()) == "job-delivery-late"


def test_the_mempool_drops_a_delivery_once_a_block_makes_it_late(tmp_path: Path) -> None:
    world = JobWorld(tmp_path / "chain", STUB_CLAIM)
    delivery = world.delivery()
    world.pool.accept(delivery, now=REGTEST_NOW)
    world.pool.remove_for_block(world.blocks[-1])  # the median time past is still before D: it stays
    assert delivery.hash in world.pool
    world.mine(1)  # a block without it
    assert world.chain.median_time_past(world.chain.tip) >= world.deadline
    world.pool.remove_for_block(world.blocks[-1])
    assert delivery.hash not in world.pool  # else block templates would carry an invalid transaction


def _rechunked(signature: bytes, blob: bytes) -> bytes:
    """A delivery scriptSig whose blob is cut 519 + rest instead of 520 + rest: same bytes, another layout."""
    items = [blob[:519], blob[519:], *[b""] * (len(delivery_items(b"")) - 2)]
    return build_script(signature, *items, Opcode.OP_1, Opcode.OP_0, Opcode.OP_0)


@pytest.mark.parametrize(
    "bend",
    ["to the node's own key", "a DELIVERED lock for another blob", "more than the fee cap as fee", "re-chunked blob"],
)
def test_a_delivery_must_move_the_stake_into_the_delivered_lock_for_its_blob(tmp_path: Path, bend: str) -> None:
    world = JobWorld(tmp_path / "chain", STUB_CLAIM)
    stake = match_job_lock(world.stake)
    assert stake is not None
    blob = bytes(700)
    if bend == "to the node's own key":
        tx = world.delivery(blob, script=p2pkh_for(NODE))  # would escape the fraud-proof branch
    elif bend == "a DELIVERED lock for another blob":
        tx = world.delivery(blob, script=job_lock_script(stake.delivered(b"another")))
    elif bend == "more than the fee cap as fee":
        tx = world.delivery(blob, fee=JOB_PAYOUT_FEE_CAP + 1)
    else:
        tx = world.delivery(blob, unlock=lambda sig: _rechunked(sig, blob))
    assert world.block_reason(tx) == "bad-job-delivery"
    assert world.pool_reason(tx) == "bad-job-delivery"


def test_only_the_node_can_deliver(tmp_path: Path) -> None:
    world = JobWorld(tmp_path / "chain", STUB_CLAIM)
    assert world.block_reason(world.delivery(key=CLIENT)) == "mandatory-script-verify-flag-failed (NULLFAIL)"


# Fraud proofs judged by the tiny model.


def test_forged_proofs_fail_without_any_model(tmp_path: Path) -> None:
    world = JobWorld(tmp_path / "chain", STUB_CLAIM)
    world.mine()
    wrong_signer = world.slash(STUB_CLAIM.proof(signer=CLIENT))
    assert world.block_reason(wrong_signer) == "bad-job-proof"
    other_tokens = replace(STUB_CLAIM.proof(), output_tokens=(11, 12, 14, 2))
    assert world.block_reason(world.slash(other_tokens)) == "bad-job-proof"
    assert world.pool_reason(wrong_signer) == "bad-job-proof"


# The bad-delivery proof: the client takes a DELIVERED lock whose blob is not the committed output, no model involved.


def _honest_body(claim: Claim = STUB_CLAIM) -> bytes:
    return commitment_body(claim.model_id, claim.prompt, claim.output, claim.max_tokens, 0, 0.0)


def _delivered(world: JobWorld, blob: bytes) -> Transaction:
    """The node's delivery of `blob`, mined, and the dispute window closed (the proof's spend waits it out)."""
    delivery = world.delivery(blob)
    world.connect(delivery)
    world.mine(1)
    return delivery


def _prove(delivery: Transaction, proof: BadDeliveryProof) -> Transaction:
    """The client's bad-delivery spend of the DELIVERED output of `delivery`."""
    out = delivery.outputs[0]
    unsigned = Transaction(inputs=[TxIn(delivery.hash, 0)], outputs=[TxOut(out.value - FEE, p2pkh_for(CLIENT))])
    return _signed(unsigned, [(out.script_pubkey, out.value, CLIENT, lambda sig: bad_delivery_script_sig(sig, proof))])


def _revealed(blob: bytes, key: PrivateKey = CLIENT) -> bytes:
    return ecies.reveal_shared_point(key, blob).to_bytes()


@pytest.mark.parametrize(
    "bad",
    [
        "garbage that is no ECIES blob",
        "garbage sealed to the client",
        "the committed output sealed to another key",
        "another output sealed to the client",
        "the committed output under another job id",
    ],
)
def test_a_bad_delivery_loses_the_stake_to_the_clients_proof(tmp_path: Path, bad: str) -> None:
    world = JobWorld(tmp_path / "chain", STUB_CLAIM)
    client = CLIENT.public_key
    if bad == "garbage that is no ECIES blob":
        blob = bytes(range(200))  # version byte 0: no ephemeral key, so the reveal is 97 zero bytes
    elif bad == "garbage sealed to the client":
        blob = ecies.encrypt(client, b"\x07" * 300, aad=JOB_ID)
    elif bad == "the committed output sealed to another key":
        blob = ecies.encrypt(make_key(99).public_key, _honest_body(), aad=JOB_ID)
    elif bad == "another output sealed to the client":
        blob = ecies.encrypt(client, _honest_body(replace(STUB_CLAIM, output=(11, 12, 14, 2))), aad=JOB_ID)
    else:
        blob = ecies.encrypt(client, _honest_body(), aad=bytes(32))
    delivery = _delivered(world, blob)
    reveal = MALFORMED_REVEAL if bad == "garbage that is no ECIES blob" else _revealed(blob)
    proof = _prove(delivery, BadDeliveryProof(blob, reveal))
    world.pool.accept(proof, now=REGTEST_NOW)  # no model anywhere: every mempool and miner can check it
    world.connect(proof)


def test_an_honest_delivery_cannot_be_taken_with_a_proof(tmp_path: Path) -> None:
    world = JobWorld(tmp_path / "chain", STUB_CLAIM)
    blob = ecies.encrypt(CLIENT.public_key, _honest_body(), aad=JOB_ID)
    delivery = _delivered(world, blob)
    true_reveal = _revealed(blob)
    other_blob = ecies.encrypt(CLIENT.public_key, b"x", aad=JOB_ID)  # the client's point for another ephemeral key
    forged = {
        "the true reveal": (true_reveal, "opens to the output the node committed to"),
        "a reveal made for another blob": (_revealed(other_blob), "DLEQ proof does not hold"),
        "another point with the true proof": (_revealed(other_blob)[:33] + true_reveal[33:], "DLEQ proof does not"),
        "97 zero bytes": (MALFORMED_REVEAL, "not a shared point"),
    }
    for reveal, why in forged.values():
        tx = _prove(delivery, BadDeliveryProof(blob, reveal))
        assert world.pool_reason(tx) == "bad-job-proof-delivery"
        with pytest.raises(TxRejected, match=why):
            world.pool.accept(tx, now=REGTEST_NOW)
        assert world.block_reason(tx) == "bad-job-proof-delivery"


def test_a_bad_delivery_proof_must_carry_the_delivered_blob_in_its_one_form(tmp_path: Path) -> None:
    world = JobWorld(tmp_path / "chain", STUB_CLAIM)
    blob = bytes(range(200))
    delivery = _delivered(world, blob)
    wrong = {
        "a malformed blob with a non-zero reveal": (BadDeliveryProof(blob, b"\x01" * 97), "97 zero bytes"),
        "another blob than the delivery's": (BadDeliveryProof(bytes(201), MALFORMED_REVEAL), "not the one"),
    }
    for proof, why in wrong.values():
        with pytest.raises(TxRejected, match=why):
            world.pool.accept(_prove(delivery, proof), now=REGTEST_NOW)
        assert world.block_reason(_prove(delivery, proof)) == "bad-job-proof-delivery"


def test_a_bad_delivery_proof_takes_only_a_delivered_lock(tmp_path: Path) -> None:
    """A STAKE or a PAYOUT commits to no blob, so a proof against them would take an undelivered node's coins."""
    world = JobWorld(tmp_path / "chain", STUB_CLAIM)
    world.mine(1)
    proof = BadDeliveryProof(bytes(200), MALFORMED_REVEAL)
    unsigned = Transaction(inputs=[TxIn(world.funding.hash, 1)], outputs=[TxOut(STAKE - FEE, p2pkh_for(CLIENT))])
    tx = _signed(unsigned, [(world.stake, STAKE, CLIENT, lambda sig: bad_delivery_script_sig(sig, proof))])
    with pytest.raises(TxRejected, match="only a DELIVERED lock"):
        world.pool.accept(tx, now=REGTEST_NOW)
    assert world.block_reason(tx) == "bad-job-proof-delivery"
