"""The node's side of the dispute game on the tiny gemma3: the transactions its builders make from its players' moves
pass the consensus checks (verify_tx_scripts with the model-free referee, the opening bond rule), a driver reads
every move back from them, and a play survives the journal."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from chain_helpers import make_key
from game_support import MAX_TOKENS, PROMPT, Model, cheating_dispute, honest_dispute
from tiny_model import write_tiny_gemma3

from camelid.chain.coins import Coin
from camelid.chain.jobrules import check_game_openings
from camelid.chain.recordcodec import decode_record, encode_record
from camelid.chain.validation import verify_tx_scripts
from camelid.compute.game_player import GamePlayer
from camelid.compute.game_referee import ModelFreeReferee
from camelid.compute.referee import StepClaim
from camelid.core.job import JobParams
from camelid.core.jobgame import MIN_GAME_BOND, Challenge, Game, GameRules, GameStage, Pointer, match_game
from camelid.core.jobscripts import FraudProof, commitment_signature_digest, output_commitment
from camelid.core.params import REGTEST
from camelid.core.script import p2pkh_script
from camelid.core.transaction import OutPoint, Transaction, TxOut
from camelid.crypto.keys import PrivateKey
from camelid.node.jobs.client import OPEN_FEE, ClientJob
from camelid.node.jobs.contract import JobTerms, Spent, p2pk_script
from camelid.node.jobs.game import MOVE_FEE, GamePlay, Side, _move_data, opened_game

RULES = GameRules(REGTEST.n_move, ModelFreeReferee())
CLIENT, NODE, FEES = make_key(61), make_key(62), make_key(63)
STAKE = REWARD = 900_000
PAY_TO = p2pkh_script(bytes(20))


class Keys:
    """The JobSigner a wallet is, over keys held here."""

    def sign_job_digest(self, public_key: bytes, digest: bytes) -> bytes:
        key: PrivateKey = next(k for k in (CLIENT, NODE, FEES) if k.public_key.to_bytes() == public_key)
        return key.sign(digest)


@dataclass
class Table:
    """One job's terms and locks, a player holding the model, and the coins the moves spend."""

    model: Model
    player: GamePlayer
    output: tuple[int, ...]
    token: int
    terms: JobTerms
    coins: dict[OutPoint, TxOut]

    def spend(self, tx: Transaction) -> None:
        """Consensus on `tx` (scripts, referee, opening bond); its outputs become spendable."""
        coins = [Coin(self.coins[txin.prevout], 1, False) for txin in tx.inputs]
        verify_tx_scripts(tx, coins, game=RULES)
        check_game_openings(tx, coins, "bad-job-game-open")
        self.coins.update({OutPoint(tx.hash, i): out for i, out in enumerate(tx.outputs)})

    def coin(self, tag: int, out: TxOut) -> Spent:
        outpoint = OutPoint(bytes([tag]) * 32, 0)
        self.coins[outpoint] = out
        return Spent(outpoint, out)

    def fee_coin(self, tag: int, value: int = MOVE_FEE) -> Spent:
        return self.coin(tag, TxOut(value, p2pk_script(FEES.public_key.to_bytes())))

    def open(self) -> tuple[Transaction, Challenge]:
        """Move 0 as JobClient._challenge makes it: STAKE and PAYOUT through the fraud branch, with the bond."""
        terms, node = self.terms, NODE.public_key.to_bytes()
        commitment = output_commitment(self.model.model_id, PROMPT, self.output, MAX_TOKENS, 0, 0.0)
        stake = self.coin(1, TxOut(STAKE, terms.stake_script(node, commitment)))
        payout = self.coin(2, TxOut(REWARD, terms.payout_script(node, commitment)))
        proof = FraudProof(PROMPT, self.output, MAX_TOKENS, 0, 0, 2, NODE.sign(commitment_signature_digest(commitment)),
                           self.token)
        challenge = Challenge.of_proof(proof)
        game = Game.opened(terms.stake_lock(node, commitment), challenge.hash(), RULES.n_move)
        bond = self.fee_coin(3, max(REWARD, MIN_GAME_BOND) + OPEN_FEE)
        tx = terms.open_game([stake, payout], bond, FEES.public_key.to_bytes(), proof, game, OPEN_FEE, Keys())
        self.spend(tx)
        return tx, challenge


def _table(model: Model, player: GamePlayer, output: tuple[int, ...], token: int) -> Table:
    params = JobParams(model.model_id, "The llama", MAX_TOKENS, 0, 0, 1_000, 600, CLIENT.public_key.to_bytes(), "", 1)
    return Table(model, player, output, token, JobTerms(params, REGTEST.dispute_window), {})


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Model, GamePlayer]:
    path = write_tiny_gemma3(tmp_path_factory.mktemp("tiny") / "gemma3.gguf")
    return Model.load(path), GamePlayer(path)


def _game_at(tx: Transaction) -> tuple[Spent, Game]:
    game = match_game(tx.outputs[0].script_pubkey)
    assert game is not None
    return Spent(OutPoint(tx.hash, 0), tx.outputs[0]), game


def test_an_honest_accused_plays_every_move_of_a_false_challenge_and_wins(model: tuple[Model, GamePlayer]) -> None:
    """Move 0 by the builders; the accused's answer (GamePlayer.answer), a pointer anyway, and its step, each a
    transaction the consensus checks pass, each read back by the driver (opened_game, _move_data)."""
    dispute = honest_dispute(model[0])
    table = _table(*model, dispute.output, dispute.token)
    opening, challenge = table.open()
    assert opening_read(opening) == challenge
    spent, game = _game_at(opening)
    assert spent.out.value == STAKE + REWARD + max(REWARD, MIN_GAME_BOND)
    player, terms, keys = table.player, table.terms, Keys()
    answer = player.answer(challenge)
    assert answer is not None and answer.roots
    move1 = terms.game_move(spent, game, answer.encode(), game.answered(answer.roots), table.fee_coin(4),
                            FEES.public_key.to_bytes(), keys)
    table.spend(move1)
    assert _move_data(move1, spent.outpoint) == answer.encode()
    assert player.point(answer) is None  # the honest trace is the challenger's own: it has nothing to point at
    spent, game = _game_at(move1)
    assert game.stage is GameStage.ANSWERED and spent.out.value == opening.outputs[0].value
    claim = StepClaim(len(player.names) - 1, 0)
    pointer = _pointer(player, challenge, claim)
    move2 = terms.game_move(spent, game, pointer, game.pointed(claim.encode()), table.fee_coin(5),
                            FEES.public_key.to_bytes(), keys)
    table.spend(move2)
    spent, game = _game_at(move2)
    step = player.step(challenge, StepClaim.decode(game.claim))
    move3 = terms.game_win(spent, game, step.encode(), PAY_TO, MOVE_FEE, keys)
    table.spend(move3)
    assert _move_data(move3, spent.outpoint) == step.encode() and match_game(move3.outputs[0].script_pubkey) is None


def test_the_timeout_is_a_version_2_spend_with_sequence_n_move_by_the_waiter(model: tuple[Model, GamePlayer]) -> None:
    dispute = cheating_dispute(model[0])
    table = _table(*model, dispute.output, dispute.token)
    opening, challenge = table.open()
    assert table.player.answer(challenge) is None  # the cheater has no valid answer: it lets the game time out
    spent, game = _game_at(opening)
    timeout = table.terms.game_timeout(spent, game, PAY_TO, 10_000, Keys())
    assert timeout.version == 2 and [txin.sequence for txin in timeout.inputs] == [RULES.n_move]
    table.spend(timeout)  # the script's CSV holds; the chain's BIP 68 check makes it wait n_move blocks
    assert _move_data(timeout, spent.outpoint) is None


def test_a_refutation_takes_the_game_at_once(model: tuple[Model, GamePlayer]) -> None:
    dispute = honest_dispute(model[0])
    table = _table(*model, dispute.output, dispute.output[2])  # j* = o: a void challenge
    opening, challenge = table.open()
    answer = table.player.answer(challenge)
    assert answer is not None and answer.roots == ()
    spent, game = _game_at(opening)
    table.spend(table.terms.game_win(spent, game, answer.encode(), PAY_TO, MOVE_FEE, Keys()))


def test_a_game_play_survives_the_journal(model: tuple[Model, GamePlayer]) -> None:
    dispute = honest_dispute(model[0])
    opening, challenge = _table(*model, dispute.output, dispute.token).open()
    play = GamePlay(Side.CHALLENGER, OutPoint(opening.hash, 0), opening.outputs[0], challenge.encode(), moved=opening)
    job = ClientJob(OutPoint(bytes(32), 0), b"\x51", 1, CLIENT.public_key.to_bytes(), game=play)
    assert decode_record(ClientJob, encode_record(job)) == job
    assert play.info()["stage"] == "challenged" and play.our_key == CLIENT.public_key.to_bytes()


def opening_read(tx: Transaction) -> Challenge:
    """What the accused reads of move 0: the GAME and the challenge from the fraud proof in its scriptSig."""
    found = opened_game(tx)
    assert found is not None and found[0] == match_game(tx.outputs[0].script_pubkey)
    return found[1]


def _pointer(player: GamePlayer, challenge: Challenge, claim: StepClaim) -> bytes:
    return Pointer(challenge, player.header_proof, claim.encode()).encode()
