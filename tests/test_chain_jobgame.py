"""The RASTiC dispute game by consensus: move 0 (OP_CHECKJOBPROOFVERIFY opening the GAME) and moves 1-3
(OP_CHECKJOBGAMEVERIFY with the model-free referee), on the tiny gemma3 model, through verify_tx_scripts.

Every move is a real signed transaction over the real reference trace; no model runs in the referee.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from chain_helpers import p2pkh_for
from game_support import (
    CLIENT,
    JOB_ID,
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
from tiny_model import write_tiny_gemma3, write_tiny_model

from camelid.chain.coins import Coin
from camelid.chain.errors import ValidationError
from camelid.chain.jobrules import check_game_moves, check_game_openings
from camelid.chain.validation import verify_tx_scripts
from camelid.compute.game_referee import ModelFreeReferee
from camelid.compute.model_id import manifest_of_file
from camelid.compute.model_proof import prove_header
from camelid.compute.rastic import EPS_SLASH
from camelid.compute.referee import StepClaim
from camelid.core.jobgame import (
    MAX_GAME_SCRIPT_SIG,
    MIN_GAME_BOND,
    Answer,
    Challenge,
    Game,
    GameRules,
    GameStage,
    move_script_sig,
    timeout_script_sig,
)
from camelid.core.jobscripts import fraud_proof_script_sig
from camelid.core.opcodes import Opcode
from camelid.core.params import REGTEST
from camelid.core.script import MAX_SCRIPT_SIZE, build_script
from camelid.core.transaction import TxIn, TxOut

N_MOVE = REGTEST.n_move
RULES = GameRules(N_MOVE, ModelFreeReferee())
STAKE, REWARD, BOND = 1_000_000, 900_000, 900_000
POT = STAKE + REWARD + BOND


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Model:
    return Model.load(write_tiny_gemma3(tmp_path_factory.mktemp("tiny") / "gemma3.gguf"))


@pytest.fixture(scope="module")
def honest(model: Model) -> Dispute:
    return honest_dispute(model)


@pytest.fixture(scope="module")
def cheat(model: Model) -> Dispute:
    dispute = cheating_dispute(model)
    logits = dispute.trace["logits"]
    assert float(logits[0]) - float(logits[1]) > EPS_SLASH  # the reference itself condemns the output
    return dispute


def _outpoint(tag: int) -> TxIn:
    return TxIn(bytes([tag]) * 32, 0)


def reason(tx, spent: list[TxOut], rules: GameRules | None = RULES) -> str | None:
    """None if every input's script holds, else the rejection reason and its message."""
    try:
        verify_tx_scripts(tx, [Coin(out, 1, False) for out in spent], game=rules)
    except ValidationError as exc:
        return f"{exc.reason}: {exc.message}"
    return None


def open_game(dispute: Dispute, outputs: list[TxOut] | None = None, signer=NODE, job_id: bytes = JOB_ID):
    """Move 0: the client takes the STAKE and the PAYOUT through the fraud branch into the GAME."""
    proof = dispute.proof(signer)
    spent = [lock_out(dispute.lock(), STAKE), lock_out(dispute.lock(payout=True), REWARD)]
    unlock = lambda sig: fraud_proof_script_sig(sig, proof)  # noqa: E731
    spending = [Spending(_outpoint(1 + i), out, CLIENT, unlock) for i, out in enumerate(spent)]
    spending.append(Spending(_outpoint(9), TxOut(BOND, p2pkh_for(CLIENT)), CLIENT,
                             lambda sig: build_script(sig, CLIENT.public_key.to_bytes())))
    spent.append(spending[-1].out)
    if outputs is None:
        outputs = [game_out(dispute.opened(N_MOVE), POT)]
    return signed(spending, outputs, job_id=job_id), spent


def move(game: Game, data: bytes, outputs: list[TxOut], key=None, value: int = POT, job_id: bytes = JOB_ID,
         script_sig=None):
    """A move on `game` (worth `value`) with `data`, by the mover unless `key` says otherwise."""
    key = key or (CLIENT if game.stage is GameStage.ANSWERED else NODE)
    out = game_out(game, value)
    unlock = script_sig or (lambda sig: move_script_sig(sig, data))
    return signed([Spending(_outpoint(20 + game.stage), out, key, unlock)], outputs, job_id=job_id), [out]


def test_an_honest_accused_defeats_a_false_challenge_with_its_step(honest: Dispute) -> None:
    assert reason(*open_game(honest)) is None
    game = honest.opened(N_MOVE)
    answer = honest.answer()
    answered = game.answered(answer.roots)
    assert reason(*move(game, answer.encode(), [game_out(answered, POT)])) is None
    for name, element in [("blk.0.q", 5), ("embd", 3), ("logits", 0), ("blk.5.down", 7)]:
        pointer = honest.pointer(name, element)
        pointed = answered.pointed(pointer.claim)
        assert reason(*move(answered, pointer.encode(), [game_out(pointed, POT)])) is None
        step = honest.step(name, element)
        assert reason(*move(pointed, step.encode(), [TxOut(POT, p2pkh_for(NODE))])) is None, name


def test_a_cheaters_answers_are_all_refused(cheat: Dispute) -> None:
    game = cheat.opened(N_MOVE)
    true = cheat.answer()
    assert "below the challenger's" in reason(*move(game, true.encode(), [game_out(game.answered(true.roots), POT)]))
    short = replace(true, roots=true.roots[:-1])
    assert "checkpoints" in reason(*move(game, short.encode(), [game_out(game.answered(short.roots), POT)]))
    lied_logits = replace(true, logits=(true.logits[1], true.logits[1]))
    assert "do not open the last root" in reason(
        *move(game, lied_logits.encode(), [game_out(game.answered(true.roots), POT)])
    )


def test_a_structurally_broken_output_has_no_answer(honest: Dispute) -> None:
    for output, why in [((50, 2, 60, 70), "early_end"), ((50, 60, 61), "truncated"), ((50, 60, 61, 70, 71), "overlong"),
                        ((50, 60, 61, 999), "invalid_token")]:
        broken = replace(honest, output=output, token=62)
        game = broken.opened(N_MOVE)
        answer = broken.answer()
        assert why in reason(*move(game, answer.encode(), [game_out(game.answered(answer.roots), POT)])), why


def test_a_false_trace_loses_at_move_3_and_the_challenger_takes_all_by_timeout(cheat: Dispute) -> None:
    game = cheat.opened(N_MOVE)
    lied = cheat.conceding_trace()
    answer = cheat.answer(lied)
    answered = game.answered(answer.roots)
    assert reason(*move(game, answer.encode(), [game_out(answered, POT)])) is None  # the lie passes move 1
    # the challenger's own trace differs first at the logits, at j*'s row (element 0)
    first = next(i for i, (a, b) in enumerate(zip(cheat.roots(), answer.roots, strict=True)) if a != b)
    assert first == len(answer.roots) - 1
    element = int(np.flatnonzero(lied["logits"] != cheat.trace["logits"])[0])
    pointer = cheat.pointer("logits", element)
    pointed = answered.pointed(pointer.claim)
    assert reason(*move(answered, pointer.encode(), [game_out(pointed, POT)])) is None
    step = cheat.step("logits", element, lied)
    assert "is not the committed value" in reason(*move(pointed, step.encode(), [TxOut(POT, p2pkh_for(NODE))]))
    # the accused cannot move: the challenger takes the GAME once n_move blocks passed (version 2, sequence n_move)
    out = game_out(pointed, POT)
    take = Spending(replace(_outpoint(30), sequence=N_MOVE), out, CLIENT, timeout_script_sig)
    assert reason(signed([take], [TxOut(POT, p2pkh_for(CLIENT))], version=2), [out]) is None
    assert "UNSATISFIED_LOCKTIME" in reason(signed([take], [TxOut(POT, p2pkh_for(CLIENT))], version=1), [out])
    early = replace(take, txin=replace(take.txin, sequence=N_MOVE - 1))
    assert "UNSATISFIED_LOCKTIME" in reason(signed([early], [TxOut(POT, p2pkh_for(CLIENT))], version=2), [out])
    by_accused = replace(take, key=NODE)
    assert "NULLFAIL" in reason(signed([by_accused], [TxOut(POT, p2pkh_for(NODE))], version=2), [out])


def test_a_void_challenge_is_refuted_at_once(honest: Dispute) -> None:
    n_vocab = honest.model.reference.hparams.n_vocab
    anywhere = [TxOut(POT, p2pkh_for(NODE))]
    voids = [replace(honest, token=t) for t in (honest.output[2], n_vocab, 2**32 - 1)]
    for void in [*voids, replace(honest, prompt=(1, n_vocab, 3))]:
        assert reason(*move(void.opened(N_MOVE), void.refutation().encode(), anywhere)) is None
    same = voids[0]
    game = same.opened(N_MOVE)
    assert "void" in reason(*move(game, same.answer().encode(), [game_out(game.answered(same.answer().roots), POT)]))
    game = honest.opened(N_MOVE)
    assert "not void" in reason(*move(game, honest.refutation().encode(), anywhere))
    zero = honest.refutation().encode()
    nonzero = replace(honest.refutation(), logits=(1.0, 0.0))
    assert "must be zero" in reason(*move(game, nonzero.encode(), anywhere))
    assert zero != nonzero.encode()


def test_move_0_must_open_the_game_on_the_proof(honest: Dispute) -> None:
    game = honest.opened(N_MOVE)
    assert "output 0 is not the GAME" in reason(*open_game(honest, [TxOut(POT, p2pkh_for(CLIENT))]))
    other_n = Game.opened(honest.lock(), honest.challenge.hash(), N_MOVE + 1)
    assert "output 0 is not the GAME" in reason(*open_game(honest, [game_out(other_n, POT)]))
    other_token = replace(honest, token=honest.token + 1).opened(N_MOVE)
    assert "output 0 is not the GAME" in reason(*open_game(honest, [game_out(other_token, POT)]))
    assert "job's id" in reason(*open_game(honest, job_id=bytes(32)))
    assert "testament" in reason(*open_game(honest, signer=CLIENT))
    assert reason(*open_game(honest), rules=None).startswith("bad-job-proof")
    assert reason(*open_game(honest, [game_out(game, POT)])) is None


def test_moves_by_the_wrong_key_out_of_turn_or_to_the_wrong_state_are_refused(honest: Dispute) -> None:
    game = honest.opened(N_MOVE)
    answer = honest.answer()
    answered = game.answered(answer.roots)
    good = [game_out(answered, POT)]
    assert "NULLFAIL" in reason(*move(game, answer.encode(), good, key=CLIENT))
    pointer = honest.pointer("blk.0.q", 5)
    assert "malformed CHALLENGED move" in reason(*move(game, pointer.encode(), good))  # the challenger out of turn
    assert "next state" in reason(*move(game, answer.encode(), [game_out(game, POT)]))
    assert "next state" in reason(*move(game, answer.encode(), [TxOut(POT, p2pkh_for(NODE))]))
    assert "less than" in reason(*move(game, answer.encode(), [game_out(answered, POT - 1)]))
    assert "job id" in reason(*move(game, answer.encode(), good, job_id=bytes(32)))
    pointed = answered.pointed(pointer.claim)
    assert "NULLFAIL" in reason(*move(answered, pointer.encode(), [game_out(pointed, POT)], key=NODE))
    assert "next state" in reason(*move(answered, pointer.encode(), [game_out(answered, POT)]))
    outside = honest.pointer("blk.0.q", honest.trace["blk.0.q"].size)
    assert "outside" in reason(*move(answered, outside.encode(), [game_out(answered.pointed(outside.claim), POT)]))
    step = honest.step("blk.0.q", 5)
    other_roots = replace(step, roots=step.roots[:-1] + (bytes(32),))
    assert "roots" in reason(*move(pointed, other_roots.encode(), []))
    assert "no game referee" in reason(*move(game, answer.encode(), good), rules=GameRules(N_MOVE))
    assert "no game rules" in reason(*move(game, answer.encode(), good), rules=None)


def test_malformed_move_data_gets_a_reason_never_an_exception(honest: Dispute) -> None:
    game = honest.opened(N_MOVE)
    answer = honest.answer().encode()
    answered = game.answered(honest.answer().roots)
    pointed = answered.pointed(honest.pointer("blk.0.q", 5).claim)
    step = honest.step("blk.0.q", 5).encode()
    rng = np.random.default_rng(5)
    cases = [b"", b"\x00" * 40, rng.bytes(3000), answer[:-1], answer + b"\x00", answer[:100]]
    for data in cases:
        assert reason(*move(game, data, [game_out(answered, POT)])).startswith("bad-job-game-move")
    for flip in rng.choice(len(step), 40, replace=False):
        tampered = bytearray(step)
        tampered[flip] ^= 1
        assert reason(*move(pointed, bytes(tampered), [])) is not None
    for flip in rng.choice(len(answer), 40, replace=False):
        tampered = bytearray(answer)
        tampered[flip] ^= 0x80
        assert reason(*move(game, bytes(tampered), [game_out(answered, POT)])).startswith("bad-job-game-move")


def test_a_move_whose_chunks_are_cut_differently_is_refused(honest: Dispute) -> None:
    game = honest.opened(N_MOVE)
    data = honest.answer().encode()
    chunks = [data[:519], data[519:1039]] + [b""] * 98  # one byte short in the first piece
    rechunked = lambda sig: build_script(sig, *chunks, Opcode.OP_1)  # noqa: E731
    result = reason(*move(game, data, [game_out(game.answered(honest.answer().roots), POT)], script_sig=rechunked))
    assert "520-byte pieces" in result


def test_only_a_game_spend_may_carry_a_script_sig_over_10000_bytes(honest: Dispute) -> None:
    game = honest.opened(N_MOVE)
    answer = honest.answer()
    padded = Answer(answer.challenge, answer.header_proof + bytes(MAX_SCRIPT_SIZE), answer.roots, answer.logits)
    tx, spent = move(game, padded.encode(), [game_out(game.answered(answer.roots), POT)])
    assert len(tx.inputs[0].script_sig) > MAX_SCRIPT_SIZE
    assert reason(tx, spent).startswith("bad-job-game-move")  # judged, and refused for its header proof only
    p2pkh = TxOut(POT, p2pkh_for(NODE))
    for size in (MAX_SCRIPT_SIZE + 1, MAX_GAME_SCRIPT_SIG):
        filler = [bytes(520)] * (size // 523)
        big = lambda sig, filler=filler: build_script(*filler, sig, NODE.public_key.to_bytes())  # noqa: E731
        tx = signed([Spending(_outpoint(40), p2pkh, NODE, big)], [p2pkh])
        assert MAX_SCRIPT_SIZE < len(tx.inputs[0].script_sig) <= MAX_GAME_SCRIPT_SIG
        assert "SCRIPT_SIZE" in reason(tx, [p2pkh])
    over = [bytes(520)] * (MAX_GAME_SCRIPT_SIG // 523 + 1)
    too_big = lambda sig: build_script(sig, *over, Opcode.OP_1)  # noqa: E731
    assert "SCRIPT_SIZE" in reason(*move(game, b"", [], script_sig=too_big))


def _coins(spent: list[TxOut]) -> list[Coin]:
    return [Coin(out, 1, False) for out in spent]


def test_a_game_opens_with_the_locks_and_the_challengers_bond_in_output_0(honest: Dispute) -> None:
    """Bond = max(the PAYOUTs taken, MIN_GAME_BOND): a false challenge costs at least the reward."""
    game = honest.opened(N_MOVE)
    assert max(REWARD, MIN_GAME_BOND) == POT - STAKE - REWARD
    tx, spent = open_game(honest, [game_out(game, POT)])
    check_game_openings(tx, _coins(spent), "job-game-open")
    with pytest.raises(ValidationError, match="needs them and a bond") as caught:
        tx, spent = open_game(honest, [game_out(game, POT - 1)])
        check_game_openings(tx, _coins(spent), "job-game-open")
    assert caught.value.reason == "job-game-open"
    # with the stake alone the bond is MIN_GAME_BOND
    tx, spent = open_game(honest, [game_out(game, STAKE + MIN_GAME_BOND - 1)])
    stake_only = replace(tx, inputs=tx.inputs[:1])
    with pytest.raises(ValidationError, match=f"bond of {MIN_GAME_BOND}"):
        check_game_openings(stake_only, _coins(spent[:1]), "job-game-open")
    check_game_openings(replace(stake_only, outputs=(game_out(game, STAKE + MIN_GAME_BOND),)), _coins(spent[:1]), "r")


def test_a_transaction_moves_at_most_one_game(honest: Dispute) -> None:
    game = honest.opened(N_MOVE)
    data = honest.answer().encode()
    one, spent = move(game, data, [game_out(game.answered(honest.answer().roots), POT)])
    check_game_moves(one, _coins(spent), "job-game-moves")
    two = replace(one, inputs=(one.inputs[0], replace(one.inputs[0], prev_index=1)))
    with pytest.raises(ValidationError, match="moves 2 GAME outputs"):
        check_game_moves(two, _coins(spent * 2), "job-game-moves")


def test_an_answer_holds_up_to_a_gap_of_eps_slash_and_not_an_ulp_above(cheat: Dispute) -> None:
    """The threshold is exact: float32 logits, float64 arithmetic, the same verdict on every machine."""
    game = cheat.opened(N_MOVE)
    for l_j, valid in [(np.float32(3.0), True), (np.nextafter(np.float32(3.0), np.float32(4.0)), False)]:
        trace = dict(cheat.trace)
        trace["logits"] = np.array([l_j, 1.0], dtype=np.float32)
        answer = cheat.answer(trace)
        result = reason(*move(game, answer.encode(), [game_out(game.answered(answer.roots), POT)]))
        assert (result is None) is valid, result


def test_a_move_on_another_challenge_or_model_or_checkpoint_is_refused(honest: Dispute, cheat: Dispute) -> None:
    game = honest.opened(N_MOVE)
    other = cheat.answer()
    assert "not the one the game opened on" in reason(*move(game, other.encode(), [game_out(game.answered(other.roots),
                                                                                              POT)]))
    answer = honest.answer()
    answered = game.answered(answer.roots)
    pointer = honest.pointer("blk.0.q", 5)
    forged_header = replace(pointer, header_proof=pointer.header_proof[:-1] + bytes([pointer.header_proof[-1] ^ 1]))
    pointed = [game_out(answered.pointed(pointer.claim), POT)]
    assert reason(*move(answered, forged_header.encode(), pointed)).startswith("bad-job-game-move")
    beyond = replace(pointer, claim=StepClaim(len(answer.roots), 0).encode())
    assert "is not one of the model's" in reason(
        *move(answered, beyond.encode(), [game_out(answered.pointed(beyond.claim), POT)])
    )


def test_a_challenge_on_a_model_the_referee_cannot_judge_is_void(tmp_path) -> None:
    """The reference pass covers llama and gemma3: on any other architecture no answer could ever hold, so the
    accused refutes every challenge instead of losing an honest job by timeout."""
    path = write_tiny_model(tmp_path / "qwen2.gguf", architecture="qwen2")
    manifest = manifest_of_file(path)
    challenge = Challenge((1, 2, 3), (4, 5, 6), 3, 0, 0, 1, 7)  # a whole output: max_tokens reached
    refutation = Answer(challenge, prove_header(path, manifest), ())
    referee = ModelFreeReferee()
    assert referee.refutation_problem(manifest.id, refutation) is None
    answered = referee.answer_problem(manifest.id, replace(refutation, roots=(bytes(32),)))
    assert "the referee cannot judge this model" in answered and "qwen2" in answered
    llama = write_tiny_model(tmp_path / "llama.gguf")  # the same file under a covered architecture: not void
    refuted = referee.refutation_problem(manifest_of_file(llama).id, replace(refutation, header_proof=prove_header(
        llama, manifest_of_file(llama))))
    assert "not void" in refuted
