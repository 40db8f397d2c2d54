"""The RASTiC dispute game between real processes, every miner model-less (issue 14, docs/jobs-design.md).

No miner holds the model: it checks each move with the referee's exact arithmetic and the timeouts with BIP 68.
The cheaters are the test framework's parties (hostile_compute.py, hostile.py, hostile_game.py): real keys, real
transactions through the miner's RPC, the real wire; nothing in camelidd cooperates. Each test is an attack of
docs/jobs-design.md's attack table:

- a cheater that does not answer the challenge is slashed within n_move + 1 blocks of move 0;
- a cheater that answers with a forged trace (one element in the middle of an early checkpoint) is found by the
  client's descent, cannot prove that element (move 3 is refused) and is slashed within 7 n_move + 1 blocks;
- a false challenge against an honest node is defeated: the honest node answers and proves its step, takes the
  challenger's bond, and the honest nodes, with the model and without, end on one tip; it is never slashed.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import pytest
from tiny_model import write_tiny_model

from camelid.compute.engine import Engine
from camelid.compute.referee import StepClaim
from camelid.compute.tamper import tamper_output
from camelid.core.consensus import COIN
from camelid.core.job import MAX_JOB_TOKENS
from camelid.core.jobgame import MIN_GAME_BOND, Answer, Challenge, Game, GameStage, LeafReveal
from camelid.core.jobscripts import CommittedOutput, FraudProof, match_job_lock
from camelid.core.params import REGTEST
from camelid.core.transaction import OutPoint, Transaction
from camelid.crypto import ecies
from camelid.node.jobs.client import OPEN_FEE, PAYMENT_FEE
from camelid.node.jobs.common import RELEASE_FEE
from camelid.node.jobs.contract import JobTerms, Spent
from camelid.node.jobs.game import MOVE_FEE, _move_data, opened_game
from camelid.rpc.client import JSONRPCError

from .framework import TestNode, wait_until
from .hostile import HostileClient, HostileJob, KeySigner
from .hostile_compute import HostileComputeNode
from .hostile_game import (
    FalseChallenger,
    FeeCoin,
    ForgingAccused,
    GameAt,
    blocks_until,
    height_of,
    next_spend,
    next_spend_mining,
)
from .jobnet import funded_network, mine_until

pytestmark = pytest.mark.slow

REWARD = Decimal(1)
N = REGTEST.n_move
GAME_MOVES = 7
"""The moves of a game on the tiny model after move 0: the answer, the checkpoint, one reveal and its pick (SPAN = 10
levels cover its trees), the leaf's reveal and the element, the step; each within N blocks, so a cheater is slashed
within GAME_MOVES N + 1 blocks of move 0 (gemma-3-270m's longest job: 9 moves, docs/jobs-design.md)."""


def _game(node, job: str) -> dict:
    return node.getjob(job).get("game") or {}


def _cheated_client(camelid_nodes, tmp_path, source: str):
    """A model-less miner, a client holding the model, and a hostile compute node that commits to a tampered
    output (one token swapped for the model's least likely), is paid and delivers it."""
    model = write_tiny_model(tmp_path / "tiny.gguf")
    miner, (client,), mine_to = funded_network(camelid_nodes, [[f"--serve-model={model}", "--nocompute"]])
    assert miner.listmodels() == []
    cheater = HostileComputeNode(miner, mine_to, client, source)
    with Engine(model, n_threads=1, n_ctx=512) as engine:
        prompt = engine.tokenize("The llama")
        tampered = tamper_output(engine, prompt, engine.generate(prompt, 8))
    job = client.submitjob("The llama", 8, None, 0, 0, REWARD)  # 1,800 s deadline: the stake stays in play
    escrowed = client.getbalance()
    work = cheater.take(COIN, tampered, prompt)
    return model, miner, client, mine_to, cheater, job, escrowed, work, tampered, prompt


def test_a_cheater_that_does_not_answer_is_slashed_within_n_move_plus_one_blocks(camelid_nodes, tmp_path):
    """The client's RASTiC check fails the tampered output, the reference confirms it, and move 0 puts the STAKE,
    the PAYOUT and the client's bond in a GAME, which the model-less miner mines. The cheater never answers: the
    client takes the GAME through its timeout branch (version 2, sequence n_move) n_move blocks later. "slashed"
    shows only once that is mined, and the client has its payment and the stake back, less the fees."""
    _, miner, client, mine_to, cheater, job, escrowed, work, tampered, prompt = _cheated_client(
        camelid_nodes, tmp_path, "127.0.0.25"
    )
    # A client that holds the model counts the prompt's tokens: with them, the job must fit one delivery on chain.
    with pytest.raises(JSONRPCError, match="cannot be delivered: its prompt's [0-9]+ tokens and max_tokens 2308"):
        client.submitjob("The llama", MAX_JOB_TOKENS, None, 0, 0, REWARD)
    cheater.wait_payment(work)
    cheater.deliver(work, cheater.seal(work, tampered, prompt))
    # The client publishes its payment, which waits for the dispute window in median time past: mine.
    mine_until(miner, mine_to, lambda: _game(client, job).get("stage") == "challenged", "move 0 in the mempool")
    info = client.getjob(job)
    # Disputed, or settled when the payment was mined after the verdict: not slashed before the game is won.
    assert info["verdict"].startswith("failed: RASTiC rejected") and info["state"] in ("disputed", "settled")
    opened = info["game"]["game_txid"]
    wait_until(lambda: opened in miner.getrawmempool() or miner.gettxout(opened, 0), what="move 0 at the miner")
    blocks_until(miner, mine_to, lambda: client.getjob(job)["state"] == "slashed", "the timeout", most=N + 2)
    info = client.getjob(job)
    assert info["game"]["outcome"] == "slashed" and info["slash_txid"] == info["game"]["ended_by"]
    timeout = miner.getrawtransaction(info["slash_txid"], True)
    assert timeout["version"] == 2 and [vin["sequence"] for vin in timeout["vin"]] == [N]
    assert height_of(miner, info["slash_txid"]) - height_of(miner, opened) + 1 <= N + 1
    assert miner.gettxout(work.stake_txid[::-1].hex(), 0) is None  # the stake is gone
    # The payment and the stake (= the reward) back, the bond back; out the payment's, move 0's and the
    # timeout's fees, and the wallet's fee for funding the bond (a few hundred base units).
    back = escrowed + 2 * REWARD - Decimal(PAYMENT_FEE + OPEN_FEE + RELEASE_FEE) / COIN
    mine_until(miner, mine_to, lambda: back - Decimal("0.0001") < client.getbalance() <= back, "the stake back")
    cheater.close()


def test_a_client_restarted_in_the_middle_of_a_game_still_wins_it(camelid_nodes, tmp_path):
    """The game is journaled with the job: a client stopped after move 0 and restarted while the cheater's time runs
    out picks the game up where it stood and takes the GAME by timeout."""
    _, miner, client, mine_to, cheater, job, _, work, tampered, prompt = _cheated_client(
        camelid_nodes, tmp_path, "127.0.0.27"
    )
    cheater.wait_payment(work)
    cheater.deliver(work, cheater.seal(work, tampered, prompt))
    mine_until(miner, mine_to, lambda: _game(client, job).get("stage") == "challenged", "move 0 in the mempool")
    opened = client.getjob(job)["game"]["game_txid"]
    mine_until(miner, mine_to, lambda: (miner.gettxout(opened, 0) or {}).get("confirmations", 0) > 0, "move 0 mined")
    client.stop()
    miner.generatetoaddress(N, mine_to)  # the cheater's time runs out while the client is down
    client.start()
    wait_until(lambda: client.getconnectioncount() > 0, what="the client reconnected")
    assert _game(client, job)["stage"] == "challenged"
    mine_until(miner, mine_to, lambda: client.getjob(job)["state"] == "slashed", "the timeout after the restart")
    assert client.getjob(job)["game"]["outcome"] == "slashed"
    cheater.close()


def test_a_cheater_that_answers_with_a_forged_trace_loses_at_move_3(camelid_nodes, tmp_path):
    """The cheater answers move 0 with a trace whose last logit it lowered until the gap is under EPS_SLASH and one
    element in the middle of an early checkpoint changed (a valid move 1). The client names the first checkpoint
    whose root differs from its own reference trace, the forged one, and descends its tree as the cheater reveals
    it, to the forged element itself; the cheater's step over its forged trace is refused by the model-less miner
    (`bad-job-game-move`), and the client takes the GAME by timeout within GAME_MOVES n_move + 1 blocks of move 0."""
    model, miner, client, mine_to, cheater, job, _, work, tampered, prompt = _cheated_client(
        camelid_nodes, tmp_path, "127.0.0.26"
    )
    fees = [FeeCoin.fund(miner, mine_to, work.job_id) for _ in range(4)]
    cheater.wait_payment(work)
    cheater.deliver(work, cheater.seal(work, tampered, prompt))
    opening = next_spend_mining(miner, mine_to, OutPoint(work.stake_txid, 0))
    found = opened_game(opening)
    assert found is not None
    game, challenge = found
    forger = ForgingAccused(model, JobTerms(work.params, REGTEST.dispute_window), work.job_key)
    answer = forger.answer(GameAt.of(opening), challenge, fees.pop())
    miner.sendrawtransaction(answer.to_bytes().hex())  # the forged answer is a valid move 1
    at = GameAt.of(next_spend(miner, OutPoint(answer.hash, 0)))  # the client's move 2: the forged checkpoint
    checkpoint = forger.player.names.index(forger.FORGED)
    assert at.game.stage is GameStage.DESCENDING and at.game.cursor.checkpoint == checkpoint
    while at.game.stage is GameStage.DESCENDING:  # the cheater reveals its forged tree; the client picks
        reveal = forger.reveal(at, fees.pop())
        miner.sendrawtransaction(reveal.to_bytes().hex())
        at = GameAt.of(next_spend(miner, OutPoint(reveal.hash, 0)))
    assert at.game.stage is GameStage.POINTED
    assert StepClaim.decode(at.game.claim) == StepClaim(checkpoint, forger.element)
    wait_until(lambda: _game(client, job).get("stage") == "pointed", what="the client's play at the element")
    with pytest.raises(JSONRPCError, match="bad-job-game-move"):
        miner.sendrawtransaction(forger.step(at, challenge).to_bytes().hex())
    most = GAME_MOVES * N + 1
    blocks_until(miner, mine_to, lambda: client.getjob(job)["state"] == "slashed", "the timeout", most=most + 1)
    info = client.getjob(job)
    assert info["game"]["outcome"] == "slashed"
    assert height_of(miner, info["slash_txid"]) - height_of(miner, opening.txid()) + 1 <= most
    cheater.close()


@dataclass
class FalseChallenge:
    """A hostile client's job with an honest node, paid and delivered, and its move 0 against that output."""

    miner: TestNode
    compute: TestNode
    observer: TestNode
    mine_to: str
    hostile: HostileClient
    job: HostileJob
    challenger: FalseChallenger
    challenge: Challenge
    opening: Transaction
    fees: list[FeeCoin]

    @property
    def rpc_id(self) -> str:
        return self.job.rpc_id


def _false_challenge(camelid_nodes, tmp_path) -> FalseChallenge:
    """A model-less miner, an honest compute node and a model-holding observer; a hostile client pays the node for
    a job, reads its honest output and builds move 0 against it with the reference's runner-up token (its bond:
    max(R, MIN_GAME_BOND)), not yet published."""
    model = write_tiny_model(tmp_path / "tiny.gguf")
    serve = f"--serve-model={model}"
    miner, (compute, observer), mine_to = funded_network(camelid_nodes, [[serve], [serve, "--nocompute"]])
    hostile = HostileClient.connect(miner, compute, mine_to)
    job = hostile.submit(reward=COIN, timelock=600)
    bond_coin = FeeCoin.fund(miner, mine_to, job.job_id, COIN + OPEN_FEE)
    fees = [FeeCoin.fund(miner, mine_to, job.job_id) for _ in range(2)]
    testament = hostile.testament(job)
    stake = hostile.stake(job, testament)
    payment = hostile.payment(job, testament)
    hostile.send_payment(job, payment)
    delivery = hostile.delivery(job, 60)
    assert delivery is not None
    output = CommittedOutput.from_body(ecies.decrypt(job.client_key, delivery.sealed, aad=job.job_id))
    delivered = next_spend_mining(miner, mine_to, stake.outpoint)  # the honest node delivers on chain
    wait_until(lambda: miner.gettxout(payment.txid(), 0) is not None, what="the payment at the miner")
    challenger = FalseChallenger(model, job.terms, job.client_key)
    params = job.terms.params
    position = len(output.output_tokens) // 2
    token = challenger.token(output.prompt_tokens, output.output_tokens, position)
    proof = FraudProof(output.prompt_tokens, output.output_tokens, params.max_tokens, params.seed,
                       params.temperature_milli, position, testament.signature, token)
    challenge = Challenge.of_proof(proof)
    lock = match_job_lock(delivered.outputs[0].script_pubkey)
    assert lock is not None
    locks = [
        Spent(OutPoint(delivered.hash, 0), delivered.outputs[0]),
        Spent(OutPoint(payment.hash, 0), payment.outputs[0]),
    ]
    assert bond_coin.spent.out.value >= max(payment.outputs[0].value, MIN_GAME_BOND) + OPEN_FEE
    game = Game.opened(lock, challenge.hash(), N)
    opening = job.terms.open_game(locks, bond_coin.spent, bond_coin.public_key, proof, game, OPEN_FEE,
                                  KeySigner(job.client_key, bond_coin.key))
    return FalseChallenge(miner, compute, observer, mine_to, hostile, job, challenger, challenge, opening, fees)


def test_a_false_challenge_against_an_honest_node_is_defeated_and_costs_the_bond(camelid_nodes, tmp_path):
    """A hostile client pays an honest node (serving the model), gets its honest output, and challenges it anyway
    with the reference's runner-up token (move 0, with its bond). The honest node answers with its trace (move 1);
    the client names the last checkpoint, the node reveals its one leaf, the client names a value of it; the node
    proves that element (move 3) and takes the GAME: its stake, its
    payment and the client's bond. It is never slashed, and the miner (no model) and a model-holding observer end
    on the node's tip."""
    c = _false_challenge(camelid_nodes, tmp_path)
    miner, compute, opening = c.miner, c.compute, c.opening
    before = compute.getbalance()
    miner.sendrawtransaction(opening.to_bytes().hex())
    wait_until(lambda: _game(compute, c.rpc_id).get("side") == "accused", what="the node sees the challenge")
    answered_by = next_spend(miner, OutPoint(opening.hash, 0))
    answered = GameAt.of(answered_by)
    assert answered.game.stage is GameStage.ANSWERED
    answer = _move_data(answered_by, OutPoint(opening.hash, 0))
    assert answer is not None
    pointer = c.challenger.point(answered, Answer.decode(answer), c.fees[0])
    miner.sendrawtransaction(pointer.to_bytes().hex())
    revealed_by = next_spend(miner, OutPoint(pointer.hash, 0))  # the node reveals the leaf of the two logits
    revealed = GameAt.of(revealed_by)
    assert revealed.game.stage is GameStage.LEAF_REVEALED
    leaf = _move_data(revealed_by, OutPoint(pointer.hash, 0))
    assert leaf is not None
    pick = c.challenger.pick_first(revealed, LeafReveal.decode(leaf), c.fees[1])
    miner.sendrawtransaction(pick.to_bytes().hex())
    step = next_spend(miner, OutPoint(pick.hash, 0))  # the node's move 3
    assert match_job_lock(step.outputs[0].script_pubkey) is None and len(step.outputs) == 1
    blocks_until(miner, c.mine_to, lambda: _game(compute, c.rpc_id).get("outcome") == "defended", "the step mined",
                 most=2)
    info = compute.getjob(c.rpc_id)
    assert info["state"] != "slashed" and info["game"]["ended_by"] == step.txid()
    assert "slashed" not in [entry["state"] for entry in info["history"]]
    # The node has the GAME: its stake, the payment and the bond, less its fees (the fee coins of its answer and its
    # leaf's reveal, move 3's fee).
    won = Decimal(opening.outputs[0].value - MOVE_FEE) / COIN
    mine_until(miner, c.mine_to, lambda: compute.getbalance() >= before + won - Decimal(MOVE_FEE * 3) / COIN,
               "the GAME in the node's wallet")
    tip = miner.getbestblockhash()
    wait_until(lambda: compute.getbestblockhash() == c.observer.getbestblockhash() == tip, what="one tip")
    c.hostile.close()


def test_an_honest_node_challenged_while_it_was_down_answers_when_it_is_back(camelid_nodes, tmp_path):
    """The challenge is mined while the honest node is stopped: back, it reads the spend of its DELIVERED output in
    the blocks it catches up on, joins the game and answers; the client never points, so the node takes the GAME
    by timeout ("defended")."""
    c = _false_challenge(camelid_nodes, tmp_path)
    miner, compute = c.miner, c.compute
    compute.stop()
    miner.sendrawtransaction(c.opening.to_bytes().hex())
    miner.generatetoaddress(1, c.mine_to)
    compute.start()
    wait_until(lambda: compute.getbestblockhash() == miner.getbestblockhash(), what="the node back in sync")
    answered = GameAt.of(next_spend(miner, OutPoint(c.opening.hash, 0)))
    assert answered.game.stage is GameStage.ANSWERED and _game(compute, c.rpc_id)["side"] == "accused"
    blocks_until(miner, c.mine_to, lambda: _game(compute, c.rpc_id).get("outcome") == "defended", "the timeout",
                 most=N + 2)
    assert compute.getjob(c.rpc_id)["state"] != "slashed"
    c.hostile.close()
