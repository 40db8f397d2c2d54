"""The dispute game on the real chain state and mempool: moves mined block after block, the timeouts as BIP68
relative locks, the opening bond, one GAME per transaction and the 60,000-byte scriptSig of a GAME spend.

The chain holds no model: ChainState gets the model-free referee, as the node passes it (chain_service).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from chain_helpers import REGTEST_NOW, build_block, coinbase_spendable, make_key, mine, p2pkh_for, spend
from game_support import (
    CLIENT,
    NODE,
    Dispute,
    Model,
    Spending,
    cheating_dispute,
    game_out,
    honest_dispute,
    lock_out,
    signed,
)
from tiny_model import write_tiny_gemma3

from camelid.chain.chainstate import ChainState
from camelid.chain.errors import BlockRejected, TxRejected
from camelid.chain.mempool import Mempool
from camelid.compute.game_referee import ModelFreeReferee
from camelid.compute.referee import StepClaim
from camelid.core.jobgame import LEAF_VALUES, Game, move_script_sig, timeout_script_sig
from camelid.core.jobscripts import fraud_proof_script_sig
from camelid.core.params import REGTEST
from camelid.core.script import MAX_SCRIPT_SIZE, build_script
from camelid.core.transaction import Transaction, TxIn, TxOut
from camelid.crypto.keys import PrivateKey

FUNDER = make_key(54)
N_MOVE = REGTEST.n_move
STAKE, REWARD = 1_000_000, 900_000
BOND = REWARD  # max(REWARD, MIN_GAME_BOND)
POT = STAKE + REWARD + BOND
FEE = 70_000  # above the relay fee of the largest move (1 base unit per byte)
FEE_COIN = 200_000
LONG = 2_000  # output tokens of the long job: its moves' scriptSigs exceed 10,000 bytes


def _p2pkh(key: PrivateKey):
    return lambda sig: build_script(sig, key.public_key.to_bytes())


class GameChain:
    """A chain where the dispute's STAKE and PAYOUT are mined, with coins for the bond and each side's fees."""

    def __init__(self, path: Path, dispute: Dispute, referee: ModelFreeReferee | None = None) -> None:
        self.chain = ChainState.open(path, REGTEST, referee=ModelFreeReferee() if referee is None else referee)
        self.blocks = mine(self.chain, 101, key=FUNDER)
        self.dispute = dispute
        coins = [(CLIENT, BOND + FEE_COIN)] + [(NODE, FEE_COIN)] * 5 + [(CLIENT, FEE_COIN)] * 5
        outputs = [lock_out(dispute.lock(), STAKE), lock_out(dispute.lock(payout=True), REWARD)]
        outputs += [TxOut(value, p2pkh_for(key)) for key, value in coins]
        self.pool = Mempool(self.chain)
        self.funding = spend([coinbase_spendable(self.blocks[0], FUNDER)], outputs)
        self.connect(self.funding)
        self._fee_coins = {CLIENT.public_key.to_bytes(): [8, 9, 10, 11, 12],
                           NODE.public_key.to_bytes(): [3, 4, 5, 6, 7]}

    def coin(self, index: int, key: PrivateKey, unlock=None) -> Spending:
        out = self.funding.outputs[index]
        return Spending(TxIn(self.funding.hash, index), out, key, unlock or _p2pkh(key))

    def fee_input(self, key: PrivateKey) -> Spending:
        return self.coin(self._fee_coins[key.public_key.to_bytes()].pop(0), key)

    def connect(self, *txs: Transaction) -> None:
        block = build_block(self.chain, txs, key=FUNDER)
        self.chain.process_block(block, now=REGTEST_NOW)
        self.pool.remove_for_block(block)
        self.blocks.append(block)

    def mine(self, count: int = 1) -> None:
        self.blocks += mine(self.chain, count, key=FUNDER)

    def accept_and_mine(self, tx: Transaction) -> Transaction:
        self.pool.accept(tx, now=REGTEST_NOW)
        self.connect(tx)
        return tx

    def refusals(self, tx: Transaction) -> tuple[str, str]:
        """(mempool reason, block reason) for a transaction both must refuse."""
        with pytest.raises(TxRejected) as pooled:
            self.pool.accept(tx, now=REGTEST_NOW)
        with pytest.raises(BlockRejected) as mined:
            self.chain.process_block(build_block(self.chain, [tx], key=FUNDER), now=REGTEST_NOW)
        return pooled.value.reason, mined.value.reason

    def open(self, bond: int = BOND) -> Transaction:
        proof = self.dispute.proof()
        fraud = lambda sig: fraud_proof_script_sig(sig, proof)  # noqa: E731
        spending = [self.coin(0, CLIENT, fraud), self.coin(1, CLIENT, fraud), self.coin(2, CLIENT)]
        outputs = [game_out(self.dispute.opened(N_MOVE), STAKE + REWARD + bond),
                   TxOut(BOND + FEE_COIN - bond - FEE, p2pkh_for(CLIENT))]
        return signed(spending, outputs)

    def move(self, prior: Transaction, game: Game, data: bytes, outputs: list[TxOut] | None = None) -> Transaction:
        """The mover's move on the GAME in output 0 of `prior`: the next state (from `outputs`) and its fee input."""
        mover = CLIENT if game.mover == CLIENT.public_key.to_bytes() else NODE
        spending = [Spending(TxIn(prior.hash, 0), prior.outputs[0], mover, lambda sig: move_script_sig(sig, data))]
        spending.append(self.fee_input(mover))
        change = TxOut(FEE_COIN - FEE, p2pkh_for(mover))
        return signed(spending, [*(outputs or [TxOut(POT, p2pkh_for(mover))]), change])

    def play(self, prior: Transaction, dispute: Dispute, name: str, trace=None) -> tuple[Transaction, Game]:
        """Moves 1 and 2 and the descent into checkpoint `name` mined block after block, the accused playing `trace`:
        the last move and the POINTED GAME it created."""
        game = dispute.opened(N_MOVE)
        answer = dispute.answer(trace)
        answered = game.answered(answer.roots)
        pointer = dispute.pointer(name, trace)
        descending = answered.descending(pointer.checkpoint, pointer.size, pointer.roots[pointer.checkpoint])
        moves = [(game, answer.encode(), answered), (answered, pointer.encode(), descending)]
        for before, data, after in moves + dispute.descent(descending, trace):
            prior = self.accept_and_mine(self.move(prior, before, data, [game_out(after, POT)]))
        return prior, after

    def timeout(self, prior: Transaction, key: PrivateKey, sequence: int = N_MOVE, version: int = 2) -> Transaction:
        waiting = Spending(TxIn(prior.hash, 0, sequence=sequence), prior.outputs[0], key, timeout_script_sig)
        return signed([waiting], [TxOut(prior.outputs[0].value - FEE, p2pkh_for(key))], version=version)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Model:
    return Model.load(write_tiny_gemma3(tmp_path_factory.mktemp("tiny") / "gemma3.gguf"))


def _long(dispute: Dispute) -> Dispute:
    """The same dispute over a LONG-token output (its tokens after the disputed position are filler)."""
    return replace(dispute, output=dispute.output[:3] + (70,) * (LONG - 3), max_tokens=LONG)


def test_an_honest_accused_wins_the_game_in_blocks_with_moves_over_10000_bytes(tmp_path: Path, model: Model) -> None:
    dispute = _long(honest_dispute(model))
    world = GameChain(tmp_path / "chain", dispute)
    opening = world.accept_and_mine(world.open())
    answer = dispute.answer()
    assert len(world.move(opening, dispute.opened(N_MOVE), answer.encode()).inputs[0].script_sig) > MAX_SCRIPT_SIZE
    last, pointed = world.play(opening, dispute, "blk.2.down")  # 500 leaves: 500 hashes, then a leaf
    step = world.move(last, pointed, dispute.step("blk.2.down", StepClaim.decode(pointed.claim).element).encode())
    assert len(step.inputs[0].script_sig) > MAX_SCRIPT_SIZE
    world.accept_and_mine(step)
    assert world.chain.get_coin(TxIn(step.hash, 0).prevout).tx_out == TxOut(POT, p2pkh_for(NODE))


def test_a_cheater_that_does_not_answer_loses_all_after_n_move_blocks(tmp_path: Path, model: Model) -> None:
    dispute = cheating_dispute(model)
    world = GameChain(tmp_path / "chain", dispute)
    opening = world.accept_and_mine(world.open())
    take = world.timeout(opening, CLIENT)
    for _ in range(N_MOVE - 1):
        assert world.refusals(take) == ("non-BIP68-final", "bad-txns-nonfinal")
        world.mine()
    assert world.refusals(world.timeout(opening, CLIENT, version=1))[0] == (
        "mandatory-script-verify-flag-failed (UNSATISFIED_LOCKTIME)"
    )
    assert world.refusals(world.timeout(opening, CLIENT, sequence=N_MOVE - 1))[0] == (
        "mandatory-script-verify-flag-failed (UNSATISFIED_LOCKTIME)"
    )
    assert world.refusals(world.timeout(opening, NODE))[0] == "mandatory-script-verify-flag-failed (NULLFAIL)"
    world.accept_and_mine(take)
    assert world.chain.get_coin(TxIn(take.hash, 0).prevout).tx_out == TxOut(POT - FEE, p2pkh_for(CLIENT))


def test_one_forged_element_is_found_by_the_descent_and_the_challenger_takes_all_by_timeout(
    tmp_path: Path, model: Model
) -> None:
    dispute = cheating_dispute(model)
    world = GameChain(tmp_path / "chain", dispute)
    opening = world.accept_and_mine(world.open())
    game = dispute.opened(N_MOVE)
    true = dispute.answer()
    conceding = world.move(opening, game, true.encode(), [game_out(game.answered(true.roots), POT)])
    assert world.refusals(conceding) == ("bad-job-game-move", "bad-job-game-move")
    name, element = "blk.0.gate", 2 * LEAF_VALUES + 100  # ONE element in the middle of an early checkpoint
    forged = dispute.forged_trace(name, element)
    last, pointed = world.play(opening, dispute, name, forged)
    assert pointed.claim == StepClaim(dispute.names.index(name), element).encode()
    assert world.refusals(world.move(last, pointed, dispute.step(name, element, forged).encode())) == (
        "bad-job-game-move", "bad-job-game-move"
    )
    take = world.timeout(last, CLIENT)
    for _ in range(N_MOVE - 1):
        assert world.refusals(take) == ("non-BIP68-final", "bad-txns-nonfinal")
        world.mine()
    world.accept_and_mine(take)
    assert world.chain.get_coin(TxIn(take.hash, 0).prevout).tx_out == TxOut(POT - FEE, p2pkh_for(CLIENT))


def test_a_game_opens_only_with_the_challengers_bond(tmp_path: Path, model: Model) -> None:
    world = GameChain(tmp_path / "chain", honest_dispute(model))
    assert world.refusals(world.open(bond=BOND - 1)) == ("job-game-open", "bad-job-game-open")
    world.accept_and_mine(world.open())


def test_a_transaction_moves_at_most_one_game(tmp_path: Path, model: Model) -> None:
    """Two GAMEs with one script: each move's script sees output 0 as its next state, so only the rule stops the
    mover from keeping the second GAME's value."""
    dispute = honest_dispute(model)
    world = GameChain(tmp_path / "chain", dispute)
    game = dispute.opened(N_MOVE)
    twins = spend([coinbase_spendable(world.blocks[1], FUNDER)], [game_out(game, POT)] * 2)
    world.accept_and_mine(twins)
    answer = dispute.answer()
    data = answer.encode()
    moves = [Spending(TxIn(twins.hash, i), twins.outputs[i], NODE, lambda sig: move_script_sig(sig, data))
             for i in range(2)]
    both = signed(moves, [game_out(game.answered(answer.roots), POT), TxOut(POT - FEE, p2pkh_for(NODE))])
    assert world.refusals(both) == ("job-game-moves", "bad-job-game-moves")


def test_a_script_sig_over_10000_bytes_is_refused_unless_it_spends_a_game(tmp_path: Path, model: Model) -> None:
    world = GameChain(tmp_path / "chain", honest_dispute(model))
    filler = [bytes(520)] * 19  # 19 x 523 bytes, with the signature and the key: 10,045 bytes
    padded = world.coin(3, NODE, lambda sig: build_script(*filler, sig, NODE.public_key.to_bytes()))
    tx = signed([padded], [TxOut(FEE_COIN - FEE, p2pkh_for(NODE))])
    assert MAX_SCRIPT_SIZE < len(tx.inputs[0].script_sig) < 2 * MAX_SCRIPT_SIZE
    reason = "mandatory-script-verify-flag-failed (SCRIPT_SIZE)"
    assert world.refusals(tx) == (reason, reason)
