"""Block and mempool rules for job-contract outputs (docs/jobs-design.md) that scripts cannot express.

Scripts see one transaction; these rules need the block's time or the whole block:

* the dispute window: a spend of an ESCROW, STAKE, PAYOUT or DELIVERED output of job J waits
  until the median time past (the one the block's lock times are judged against, BIP113)
  reaches t0 + params.dispute_window, t0 read from the spent script -- except a STAKE's
  delivery, which moves nothing out of the job's locks;
* the delivery deadline: a STAKE moved through its delivery branch only while that median
  time past is before the job's deadline D (the claim branch opens once it is past D, so a
  block can never hold both, and a mined delivery leaves the claim nothing to spend);
* at most MAX_JOB_PROOFS_PER_BLOCK fraud-proof inputs per block, because each one costs
  a validating node a model prefill of up to 2,210 tokens;
* job script failures get their own rejection names instead of the generic
  mandatory-script-verify-flag-failed.

And one mempool policy no block rule can express: a STAKE taken through the client's
non-delivery claim branch is admitted only when a StakeClaimJudge (the node's job pool)
has seen the job paid (check_stake_claims): a node that was never paid has nothing to deliver.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from camelid.chain.coins import Coin
from camelid.chain.errors import ValidationError
from camelid.core.jobscripts import JobLock, delivery_spend, is_fraud_proof_spend, job_t0, non_delivery_claim
from camelid.core.params import ChainParams
from camelid.core.script import ScriptErrorReason
from camelid.core.transaction import Transaction

MAX_JOB_PROOFS_PER_BLOCK = 4
"""Fraud-proof inputs in one block; a client's stake-and-payout pair judges the same proof once."""

JOB_SCRIPT_REJECTIONS = {
    ScriptErrorReason.JOB_ESCROW: "bad-job-escrow-spend",
    ScriptErrorReason.JOB_PROOF: "bad-job-proof",
    ScriptErrorReason.JOB_PROOF_UNVERIFIABLE: "job-proof-unverifiable",
    ScriptErrorReason.JOB_DELIVERY: "bad-job-delivery",
}
"""Rejection reasons for job-contract script failures, by the interpreter's reason."""


def check_dispute_window(
    tx: Transaction, coins: Sequence[Coin], median_time_past: int, params: ChainParams, reason: str
) -> None:
    """Raise ValidationError(`reason`) if `tx` spends a job output before its dispute window closed.

    Blocks use "bad-job-dispute-window", the mempool "job-dispute-window". A STAKE's delivery is exempt:
    its DELIVERED output keeps the fraud-proof branch and the release time, so it moves nothing the
    window protects, and it must be mined before D (check_delivery_deadline), a window of its own.
    """
    for index, (txin, coin) in enumerate(zip(tx.inputs, coins, strict=True)):
        t0 = job_t0(coin.tx_out.script_pubkey)
        if t0 is None or delivery_spend(txin.script_sig, coin.tx_out.script_pubkey) is not None:
            continue
        if median_time_past < t0 + params.dispute_window:
            raise ValidationError(
                reason,
                f"input {index} spends a job output created at {t0}; the dispute window closes at "
                f"{t0 + params.dispute_window}, median time past is {median_time_past}",
            )


def delivery_deadline(tx: Transaction, coins: Sequence[Coin]) -> int | None:
    """The earliest deadline D of the STAKEs `tx` delivers, None if it delivers none."""
    deadlines = [
        stake.claim_time
        for txin, coin in zip(tx.inputs, coins, strict=True)
        if (stake := delivery_spend(txin.script_sig, coin.tx_out.script_pubkey)) is not None
        and stake.claim_time is not None
    ]
    return min(deadlines, default=None)


def check_delivery_deadline(tx: Transaction, coins: Sequence[Coin], median_time_past: int, reason: str) -> None:
    """Raise ValidationError(`reason`) if `tx` delivers a STAKE when the median time past is not before its D.

    Blocks use "bad-job-delivery-late", the mempool "job-delivery-late". The claim needs a median time
    past after D (its lock time), so the two can never both be valid at one point of the chain. Unlike
    every other rule this one closes as the chain grows, so the mempool drops a delivery it has kept
    once a block makes it late (Mempool.remove_for_block).
    """
    deadline = delivery_deadline(tx, coins)
    if deadline is not None and median_time_past >= deadline:
        raise ValidationError(
            reason, f"it delivers a stake whose deadline was {deadline}; median time past is {median_time_past}"
        )


def fraud_proof_inputs(tx: Transaction, coins: Sequence[Coin]) -> int:
    """How many inputs of `tx` take a STAKE or PAYOUT through the fraud-proof branch."""
    return sum(
        is_fraud_proof_spend(txin.script_sig, coin.tx_out.script_pubkey)
        for txin, coin in zip(tx.inputs, coins, strict=True)
    )


def check_block_job_proofs(proofs: int) -> None:
    """Raise unless a block's `proofs` fraud-proof inputs so far stay within MAX_JOB_PROOFS_PER_BLOCK."""
    if proofs > MAX_JOB_PROOFS_PER_BLOCK:
        limit = MAX_JOB_PROOFS_PER_BLOCK
        raise ValidationError("bad-blk-job-proofs", f"{proofs} fraud proofs in one block, limit {limit}")


class StakeClaimJudge(Protocol):
    """Who knows what the network published about jobs: the node's job pool, injected into the mempool."""

    def judge_stake_claim(self, stake: JobLock) -> None:
        """Raise ValidationError ("job-not-paid") unless the client may take `stake` now."""


def check_stake_claims(tx: Transaction, coins: Sequence[Coin], judge: StakeClaimJudge | None) -> None:
    """Mempool policy: raise ValidationError unless every non-delivery claim in `tx` is one `judge` allows.

    Consensus accepts the claim branch from the deadline D on any STAKE not delivered on chain before
    it; whether the client paid is not on chain, so the mempool (and so a miner's templates) refuses a
    claim for a job it never saw paid. Without a judge every claim is refused ("job-claim-unjudged"):
    a node that cannot tell is on the node's side.
    """
    for index, (txin, coin) in enumerate(zip(tx.inputs, coins, strict=True)):
        stake = non_delivery_claim(txin.script_sig, coin.tx_out.script_pubkey)
        if stake is None:
            continue
        if judge is None:
            raise ValidationError("job-claim-unjudged", f"input {index} claims a stake and no job pool judges it")
        judge.judge_stake_claim(stake)
