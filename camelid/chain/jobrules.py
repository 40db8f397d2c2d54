"""Block and mempool rules for job-contract outputs (docs/jobs-design.md) that scripts cannot express.

Scripts see one transaction; these rules need the block's time or the whole block:

* the dispute window: a spend of an ESCROW, STAKE, PAYOUT or DELIVERED output of job J waits
  until the median time past (the one the block's lock times are judged against, BIP113)
  reaches t0 + params.dispute_window, t0 read from the spent script -- except a STAKE's
  delivery, which moves nothing out of the job's locks;
* the delivery deadline: a STAKE moved through its delivery branch only while that median
  time past is before the job's deadline D (the claim branch opens once it is past D, so a
  block can never hold both, and a mined delivery leaves the claim nothing to spend);
* the claim: a STAKE and its PAYOUT taken through the client's claim branch only together, in
  one transaction, the PAYOUT worth at least the STAKE less JOB_PAYOUT_FEE_CAP and mined while
  the median time past was before D - W (check_job_claims): so a client that never paid, or paid
  too late for a delivery, cannot take the stake, and a node that delivered keeps its payment;
* the game's opening (move 0): output 0 of a transaction taking job locks through the RASTiC fraud branch
  holds at least those locks and the challenger's bond, max(its PAYOUT inputs, MIN_GAME_BOND)
  (check_game_openings; the script checks that output 0 is the GAME);
* at most one GAME moved per transaction (check_game_moves): each move puts its next state in output 0;
* job script failures get their own rejection names instead of the generic
  mandatory-script-verify-flag-failed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

from camelid.chain.coins import Coin
from camelid.chain.errors import ValidationError
from camelid.core.deliveryproof import is_bad_delivery_proof
from camelid.core.jobgame import MIN_GAME_BOND, game_move_spend
from camelid.core.jobscripts import (
    JOB_PAYOUT_FEE_CAP,
    PROOF_ITEMS,
    JobLock,
    delivery_spend,
    is_fraud_proof_spend,
    job_t0,
    match_job_lock,
    non_delivery_claim,
)
from camelid.core.params import ChainParams
from camelid.core.script import ScriptError, ScriptErrorReason, parse_script
from camelid.core.transaction import Transaction

JOB_SCRIPT_REJECTIONS = {
    ScriptErrorReason.JOB_ESCROW: "bad-job-escrow-spend",
    ScriptErrorReason.JOB_PROOF: "bad-job-proof",
    ScriptErrorReason.JOB_DELIVERY: "bad-job-delivery",
    ScriptErrorReason.JOB_DELIVERY_PROOF: "bad-job-proof-delivery",
    ScriptErrorReason.JOB_GAME: "bad-job-game-move",
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


def check_job_claims(
    tx: Transaction, coins: Sequence[Coin], mined_at: Callable[[Coin], int], params: ChainParams, reason: str
) -> None:
    """Raise ValidationError(`reason`) unless every client claim in `tx` takes a STAKE with its paid PAYOUT.

    Blocks use "bad-job-claim", the mempool "job-claim". The claim branches of a STAKE and a PAYOUT
    (selectors OP_1 OP_0, open from D) are valid only when the transaction takes, for the same job,
    keys, commitment and D, at least one STAKE and one PAYOUT through them, the PAYOUTs worth at least
    the STAKEs less JOB_PAYOUT_FEE_CAP, each PAYOUT output 0 of its transaction (where a payment puts
    it, and where the node looks) and mined while the median time past (`mined_at`: the one its block
    was judged by) was before D - W. So a client that never paid, paid a token sum,
    or paid too late for the node to deliver before D takes no stake (the node reclaims it at D + W),
    and once the node delivered (the STAKE moved to its DELIVERED lock) the PAYOUT cannot be claimed.
    """
    stakes: dict[tuple[object, ...], int] = defaultdict(int)
    payouts: dict[tuple[object, ...], int] = defaultdict(int)
    for index, (txin, coin) in enumerate(zip(tx.inputs, coins, strict=True)):
        lock = non_delivery_claim(txin.script_sig, coin.tx_out.script_pubkey)
        if lock is None:
            continue
        assert lock.claim_time is not None  # only STAKEs and PAYOUTs have a claim branch
        if not lock.is_payout:
            stakes[lock.claim_key] += coin.tx_out.value
            continue
        if txin.prev_index != 0:
            raise ValidationError(reason, f"input {index} claims a PAYOUT that is not output 0 of its transaction")
        latest = lock.claim_time - params.dispute_window
        if mined_at(coin) >= latest:
            raise ValidationError(
                reason,
                f"input {index} claims a PAYOUT mined at median time past {mined_at(coin)}; a claim needs one "
                f"mined before {latest} (D - W), when the node could still deliver",
            )
        payouts[lock.claim_key] += coin.tx_out.value
    for key in stakes.keys() | payouts.keys():
        if not stakes[key] or not payouts[key]:
            raise ValidationError(reason, "a claim takes a STAKE and its PAYOUT together, and this one has only one")
        if payouts[key] < stakes[key] - JOB_PAYOUT_FEE_CAP:
            raise ValidationError(
                reason, f"the claimed PAYOUT holds {payouts[key]}, less than its STAKE's {stakes[key]} less the fee cap"
            )


def game_openings(tx: Transaction, coins: Sequence[Coin]) -> list[tuple[JobLock, int]]:
    """The job locks (and their values) `tx` takes through the fraud branch with a RASTiC proof: move 0 of a game."""
    taken = []
    for txin, coin in zip(tx.inputs, coins, strict=True):
        script = coin.tx_out.script_pubkey
        if not is_fraud_proof_spend(txin.script_sig, script):
            continue
        try:
            items = [op.data or b"" for op in parse_script(txin.script_sig)][1 : 1 + PROOF_ITEMS]
        except ScriptError:
            continue
        lock = match_job_lock(script)
        if lock is not None and not is_bad_delivery_proof(items):
            taken.append((lock, coin.tx_out.value))
    return taken


def check_game_openings(tx: Transaction, coins: Sequence[Coin], reason: str) -> None:
    """Raise ValidationError(`reason`) unless a game-opening `tx` puts the locks it takes and the challenger's bond
    in output 0 (the GAME, by the script): sum of the locks + max(sum of its PAYOUTs, MIN_GAME_BOND).

    Blocks use "bad-job-game-open", the mempool "job-game-open". The bond is what a false challenge costs: the
    accused takes it with the game, so challenging an honest node costs at least the reward it was paid."""
    taken = game_openings(tx, coins)
    if not taken:
        return
    bond = max(sum(value for lock, value in taken if lock.is_payout), MIN_GAME_BOND)
    required = sum(value for _, value in taken) + bond
    if tx.outputs[0].value < required:
        raise ValidationError(
            reason, f"output 0 holds {tx.outputs[0].value}; a game opened on {len(taken)} job locks worth "
            f"{required - bond} needs them and a bond of {bond}: {required}",
        )


def check_game_moves(tx: Transaction, coins: Sequence[Coin], reason: str) -> None:
    """Raise ValidationError(`reason`) if `tx` moves more than one GAME (blocks "bad-job-game-moves", the mempool
    "job-game-moves"): two moves would both take output 0, and the second GAME's value would go elsewhere."""
    moved = sum(
        game_move_spend(txin.script_sig, coin.tx_out.script_pubkey) is not None
        for txin, coin in zip(tx.inputs, coins, strict=True)
    )
    if moved > 1:
        raise ValidationError(reason, f"it moves {moved} GAME outputs; a transaction moves at most one")
