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
    PROMPT,
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
    LEAF_VALUES,
    MAX_GAME_SCRIPT_SIG,
    MIN_GAME_BOND,
    SPAN,
    Answer,
    Challenge,
    Cursor,
    Game,
    GameRules,
    GameStage,
    LeafPick,
    LeafReveal,
    Pick,
    Reveal,
    game_script,
    match_game,
    move_script_sig,
    span_below,
    timeout_script_sig,
    tree_depth,
)
from camelid.core.jobscripts import fraud_proof_script_sig
from camelid.core.opcodes import Opcode
from camelid.core.params import REGTEST
from camelid.core.script import MAX_SCRIPT_SIZE, build_script
from camelid.core.transaction import TxIn, TxOut
from camelid.crypto.hashes import sha256d
from camelid.crypto.merkle import chunk_level, chunk_root

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


LONG_PROMPT = PROMPT + tuple(3 + (7 * i) % 250 for i in range(292))  # 300 tokens: 4 x 300 x 300 scores


@pytest.fixture(scope="module")
def long_cheat(model: Model) -> Dispute:
    """A cheat over a 298-token prompt: its attention scores are a checkpoint of more than 1,024 leaves."""
    return cheating_dispute(model, LONG_PROMPT)


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
    key = key or (CLIENT if game.mover == CLIENT.public_key.to_bytes() else NODE)
    out = game_out(game, value)
    unlock = script_sig or (lambda sig: move_script_sig(sig, data))
    return signed([Spending(_outpoint(20 + game.stage), out, key, unlock)], outputs, job_id=job_id), [out]


def moves_to_step(dispute: Dispute, name: str, trace=None) -> list[tuple[Game, bytes, Game]]:
    """Moves 1 and 2 and the descent into checkpoint `name`, the accused playing `trace` (the true one by default)
    and the challenger picking where it differs from the true trace: (GAME spent, move data, GAME created)."""
    game = dispute.opened(N_MOVE)
    answer = dispute.answer(trace)
    answered = game.answered(answer.roots)
    pointer = dispute.pointer(name, trace)
    descending = answered.descending(pointer.checkpoint, pointer.size, pointer.roots[pointer.checkpoint])
    return [(game, answer.encode(), answered), (answered, pointer.encode(), descending),
            *dispute.descent(descending, trace)]


def play(moves: list[tuple[Game, bytes, Game]]) -> Game:
    """Every move through verify_tx_scripts, each by its mover into the next GAME: the last GAME."""
    for before, data, after in moves:
        assert reason(*move(before, data, [game_out(after, POT)])) is None, before.stage.name
    return moves[-1][2]


def test_an_honest_accused_defeats_a_false_challenge_with_its_step(honest: Dispute) -> None:
    assert reason(*open_game(honest)) is None
    game = honest.opened(N_MOVE)
    answer = honest.answer()
    answered = game.answered(answer.roots)
    assert reason(*move(game, answer.encode(), [game_out(answered, POT)])) is None
    for name in ["blk.0.q", "embd", "logits", "blk.5.down", "blk.0.gate"]:
        pointer = honest.pointer(name)
        descending = answered.descending(pointer.checkpoint, pointer.size, pointer.roots[pointer.checkpoint])
        assert reason(*move(answered, pointer.encode(), [game_out(descending, POT)])) is None
        assert survives_every_pick(honest, descending, name) > 0, name


def survives_every_pick(honest: Dispute, game: Game, name: str) -> int:
    """Whatever child and value the challenger picks, the honest accused's reveals and step hold: the steps made."""
    revealed = honest.reveal(game.cursor)
    if isinstance(revealed, Reveal):
        after = game.revealed(sha256d(b"".join(revealed.children)))
        assert reason(*move(game, revealed.encode(), [game_out(after, POT)])) is None
        steps = 0
        for child, child_hash in enumerate(revealed.children):
            picked = after.picked(child, child_hash)
            assert reason(*move(after, Pick(revealed.children, child).encode(), [game_out(picked, POT)])) is None
            steps += survives_every_pick(honest, picked, name)
        return steps
    after = game.revealed(sha256d(revealed.values))
    assert reason(*move(game, revealed.encode(), [game_out(after, POT)])) is None
    count = len(revealed.values) // 4
    for offset in sorted({0, count // 2, count - 1}):
        pointed = after.pointed(offset)
        assert reason(*move(after, LeafPick(revealed.values, offset).encode(), [game_out(pointed, POT)])) is None
        element = game.cursor.index * LEAF_VALUES + offset
        step = honest.step(name, element)
        assert reason(*move(pointed, step.encode(), [TxOut(POT, p2pkh_for(NODE))])) is None, (name, element)
    return len({0, count // 2, count - 1})


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
    lied = cheat.conceding_trace()
    answer = cheat.answer(lied)
    # the challenger's own trace differs first at the logits (one leaf: the descent is the leaf's reveal), at j*'s row
    first = next(i for i, (a, b) in enumerate(zip(cheat.roots(), answer.roots, strict=True)) if a != b)
    assert first == len(answer.roots) - 1
    moves = moves_to_step(cheat, "logits", lied)
    assert [before.stage for before, _, _ in moves] == [GameStage.CHALLENGED, GameStage.ANSWERED,
                                                       GameStage.DESCENDING, GameStage.LEAF_REVEALED]
    pointed = play(moves)  # the lie passes move 1 and the descent
    element = int(np.flatnonzero(lied["logits"] != cheat.trace["logits"])[0])
    assert pointed.claim == StepClaim(first, element).encode()
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


def test_one_forged_element_in_the_middle_of_an_early_checkpoint_is_found_by_the_descent(long_cheat: Dispute) -> None:
    """blk.0.scores over 300 tokens is 1,407 leaves (depth 11): two reveals of hashes, then the leaf."""
    name = "blk.0.scores"
    scores = long_cheat.trace[name]
    heads, rows, _ = scores.shape
    element = int(np.ravel_multi_index((heads // 2, rows // 2, rows // 2), scores.shape))  # a query's own key
    assert np.isfinite(scores.flat[element]) and element // LEAF_VALUES not in (0, scores.size // LEAF_VALUES)
    forged = long_cheat.forged_trace(name, element)
    roots, own = long_cheat.roots(forged), long_cheat.roots()
    assert [i for i, (a, b) in enumerate(zip(roots, own, strict=True)) if a != b] == [
        long_cheat.names.index(name), len(roots) - 1]  # the forged checkpoint, then the conceding logits
    moves = moves_to_step(long_cheat, name, forged)
    stages = [before.stage for before, _, _ in moves]
    assert stages.count(GameStage.DESCENDING) == 3 and stages.count(GameStage.REVEALED) == 2
    assert len(moves) == 2 + 6  # answer, pointer, (reveal, pick) x 2, leaf reveal, element pick
    pointed = play(moves)
    assert pointed.claim == StepClaim(long_cheat.names.index(name), element).encode()
    assert max(len(data) for _, data, _ in moves[2:]) < 34_000  # a reveal or pick of up to 1,024 hashes
    step = long_cheat.step(name, element, forged)
    assert "is not the committed value" in reason(*move(pointed, step.encode(), [TxOut(POT, p2pkh_for(NODE))]))
    honest_step = long_cheat.step(name, element)  # the true value does not open the forged root either
    assert reason(*move(pointed, honest_step.encode(), [TxOut(POT, p2pkh_for(NODE))])) is not None


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
    pointer = honest.pointer("blk.0.q")
    assert "malformed CHALLENGED move" in reason(*move(game, pointer.encode(), good))  # the challenger out of turn
    assert "next state" in reason(*move(game, answer.encode(), [game_out(game, POT)]))
    assert "next state" in reason(*move(game, answer.encode(), [TxOut(POT, p2pkh_for(NODE))]))
    assert "less than" in reason(*move(game, answer.encode(), [game_out(answered, POT - 1)]))
    assert "job id" in reason(*move(game, answer.encode(), good, job_id=bytes(32)))
    descending = answered.descending(pointer.checkpoint, pointer.size, answer.roots[pointer.checkpoint])
    assert "NULLFAIL" in reason(*move(answered, pointer.encode(), [game_out(descending, POT)], key=NODE))
    assert "next state" in reason(*move(answered, pointer.encode(), [game_out(answered, POT)]))
    other_root = replace(descending, cursor=replace(descending.cursor, node=answer.roots[0]))
    assert "next state" in reason(*move(answered, pointer.encode(), [game_out(other_root, POT)]))
    wrong_size = replace(pointer, size=pointer.size + 1)
    assert "the pointer says" in reason(*move(answered, wrong_size.encode(), [game_out(
        answered.descending(pointer.checkpoint, wrong_size.size, answer.roots[pointer.checkpoint]), POT)]))
    i = pointer.checkpoint  # a challenger that swaps the root it descends from, so that no reveal can chain to it
    other_roots = replace(pointer, roots=pointer.roots[:i] + (bytes(32),) + pointer.roots[i + 1 :])
    swapped = answered.descending(i, pointer.size, bytes(32))
    assert "roots are not those" in reason(*move(answered, other_roots.encode(), [game_out(swapped, POT)]))
    pointed = play(moves_to_step(honest, "blk.0.q")[2:])
    step = honest.step("blk.0.q", StepClaim.decode(pointed.claim).element)
    assert reason(*move(pointed, step.encode(), [])) is None
    other_roots = replace(step, roots=step.roots[:-1] + (bytes(32),))
    assert "roots" in reason(*move(pointed, other_roots.encode(), []))
    assert "no game referee" in reason(*move(game, answer.encode(), good), rules=GameRules(N_MOVE))
    assert "no game rules" in reason(*move(game, answer.encode(), good), rules=None)


def test_an_honest_accused_survives_the_picks_at_the_edges_of_a_two_reveal_tree(model: Model) -> None:
    """blk.0.scores over 300 tokens: 360,000 values, 1,407 leaves, the last of 64 values, carried up odd levels."""
    honest = honest_dispute(model, LONG_PROMPT)
    answer = honest.answer()
    answered = honest.opened(N_MOVE).answered(answer.roots)
    pointer = honest.pointer("blk.0.scores")
    assert pointer.size == 4 * 300 * 300
    top = answered.descending(pointer.checkpoint, pointer.size, answer.roots[pointer.checkpoint])
    assert reason(*move(answered, pointer.encode(), [game_out(top, POT)])) is None
    for edge, widths, last_leaf in [(0, [704, 2], LEAF_VALUES), (-1, [704, 1], 64)]:
        game, moves, counts = top, [], []  # the first child and value at every level, then the last ones
        while game.stage is not GameStage.POINTED:
            reveal = honest.reveal(game.cursor)
            if isinstance(reveal, Reveal):
                revealed = game.revealed(sha256d(b"".join(reveal.children)))
                child = range(len(reveal.children))[edge]
                pick: Pick | LeafPick = Pick(reveal.children, child)
                after = revealed.picked(child, reveal.children[child])
                counts.append(len(reveal.children))
            else:
                revealed = game.revealed(sha256d(reveal.values))
                offset = range(len(reveal.values) // 4)[edge]
                pick, after = LeafPick(reveal.values, offset), revealed.pointed(offset)
                counts.append(len(reveal.values) // 4)
            moves += [(game, reveal.encode(), revealed), (revealed, pick.encode(), after)]
            game = after
        assert counts == [*widths, last_leaf]
        pointed = play(moves)
        element = StepClaim.decode(pointed.claim).element
        assert element == (0 if edge == 0 else pointer.size - 1)
        step = honest.step("blk.0.scores", element)
        assert reason(*move(pointed, step.encode(), [TxOut(POT, p2pkh_for(NODE))])) is None


def test_a_descent_move_that_does_not_hold_is_refused_with_its_reason(honest: Dispute) -> None:
    answer = honest.answer()
    answered = honest.opened(N_MOVE).answered(answer.roots)
    pointer = honest.pointer("blk.0.gate")  # 4 leaves: one reveal of 4 hashes, then a leaf
    descending = answered.descending(pointer.checkpoint, pointer.size, answer.roots[pointer.checkpoint])
    reveal = honest.reveal(descending.cursor)
    assert isinstance(reveal, Reveal) and len(reveal.children) == 4
    revealed = descending.revealed(sha256d(b"".join(reveal.children)))
    after = [game_out(revealed, POT)]
    assert reason(*move(descending, reveal.encode(), after)) is None
    flipped = Reveal((reveal.children[0][:-1] + bytes([reveal.children[0][-1] ^ 1]), *reveal.children[1:]))
    assert "do not chain to the hash of node (2, 0)" in reason(*move(descending, flipped.encode(), after))
    assert "has 4 descendants at level 0, the reveal 3" in reason(
        *move(descending, Reveal(reveal.children[:3]).encode(), after))
    parents = Reveal(tuple(chunk_level(list(reveal.children), 1)))  # the right root, one level too high
    assert "has 4 descendants at level 0, the reveal 2" in reason(*move(descending, parents.encode(), after))
    assert "NULLFAIL" in reason(*move(descending, reveal.encode(), after, key=CLIENT))
    assert "next state" in reason(*move(descending, reveal.encode(), [game_out(descending, POT)]))
    assert "less than" in reason(*move(descending, reveal.encode(), [game_out(revealed, POT - 1)]))
    assert "job id" in reason(*move(descending, reveal.encode(), after, job_id=bytes(32)))
    assert "malformed DESCENDING move" in reason(*move(descending, Pick(reveal.children, 0).encode(), after))
    assert "malformed DESCENDING move" in reason(*move(descending, honest.step("blk.0.gate", 0).encode(), after))
    # the pick: the revealed hashes again and a child among them
    picked = revealed.picked(3, reveal.children[3])
    assert picked.cursor == replace(descending.cursor, depth=0, index=3, node=reveal.children[3])
    assert reason(*move(revealed, Pick(reveal.children, 3).encode(), [game_out(picked, POT)])) is None
    assert "child 4 is out of the 4 revealed" in reason(*move(revealed, Pick(reveal.children, 4).encode(), after))
    assert "not those the accused revealed" in reason(
        *move(revealed, Pick(flipped.children, 0).encode(), [game_out(revealed.picked(0, flipped.children[0]), POT)]))
    assert "NULLFAIL" in reason(*move(revealed, Pick(reveal.children, 3).encode(), [game_out(picked, POT)], key=NODE))
    assert "next state" in reason(*move(revealed, Pick(reveal.children, 3).encode(), [game_out(
        revealed.picked(2, reveal.children[2]), POT)]))
    assert "malformed REVEALED move" in reason(*move(revealed, reveal.encode(), [game_out(picked, POT)]))
    # the leaf: its 256 values hashing to the node, then a value among them
    leaf = honest.reveal(picked.cursor)
    assert isinstance(leaf, LeafReveal) and len(leaf.values) == 4 * LEAF_VALUES
    leaf_revealed = picked.revealed(sha256d(leaf.values))
    assert leaf_revealed.stage is GameStage.LEAF_REVEALED and leaf_revealed.mover == CLIENT.public_key.to_bytes()
    assert reason(*move(picked, leaf.encode(), [game_out(leaf_revealed, POT)])) is None
    other = LeafReveal(bytes(4 * LEAF_VALUES))
    assert "do not hash to leaf 3" in reason(*move(picked, other.encode(), [game_out(picked.revealed(
        sha256d(other.values)), POT)]))
    assert "has 256 values, the reveal 255" in reason(*move(picked, LeafReveal(leaf.values[:-4]).encode(), after))
    assert "not whole float32 values" in reason(*move(picked, LeafReveal(leaf.values[:-1]).encode(), after))
    assert "malformed DESCENDING move" in reason(*move(picked, Reveal((reveal.children[3],)).encode(), after))
    pointed = leaf_revealed.pointed(255)
    assert pointed.claim == StepClaim(pointer.checkpoint, 3 * LEAF_VALUES + 255).encode()
    assert reason(*move(leaf_revealed, LeafPick(leaf.values, 255).encode(), [game_out(pointed, POT)])) is None
    assert "value 256 is out of the 256 revealed" in reason(
        *move(leaf_revealed, LeafPick(leaf.values, 256).encode(), [game_out(pointed, POT)]))
    assert "not those the accused revealed" in reason(
        *move(leaf_revealed, LeafPick(other.values, 255).encode(), [game_out(pointed, POT)]))
    assert "NULLFAIL" in reason(*move(leaf_revealed, LeafPick(leaf.values, 255).encode(), [game_out(pointed, POT)],
                                      key=NODE))
    assert "next state" in reason(*move(leaf_revealed, LeafPick(leaf.values, 255).encode(), [game_out(
        leaf_revealed.pointed(254), POT)]))
    # the step after the descent is on exactly the element picked
    assert reason(*move(pointed, honest.step("blk.0.gate", 3 * LEAF_VALUES + 255).encode(), [])) is None
    assert "do not hash to the checkpoint's root" in reason(*move(pointed, honest.step("blk.0.gate", 0).encode(), []))


def test_the_last_leaf_holds_the_rest_of_the_checkpoint(honest: Dispute) -> None:
    """A checkpoint of 2 values (the logits) is one short leaf: its reveal must be exactly those 2 values."""
    answer = honest.answer()
    answered = honest.opened(N_MOVE).answered(answer.roots)
    pointer = honest.pointer("logits")
    descending = answered.descending(pointer.checkpoint, pointer.size, answer.roots[-1])
    assert descending.cursor.depth == 0 and pointer.size == 2
    leaf = honest.reveal(descending.cursor)
    assert isinstance(leaf, LeafReveal) and len(leaf.values) == 8
    after = [game_out(descending.revealed(sha256d(leaf.values)), POT)]
    assert reason(*move(descending, leaf.encode(), after)) is None
    padded = LeafReveal(leaf.values + bytes(4))
    assert "leaf 0 of checkpoint 128 has 2 values, the reveal 3" in reason(*move(descending, padded.encode(), after))


def test_a_descent_on_a_tree_of_many_leaves_takes_a_reveal_per_span_levels() -> None:
    """The tree arithmetic against chunk_root itself: every node's span chains to its hash, for sizes that carry
    odd nodes up, up to a tree of three reveal rounds."""
    rng = np.random.default_rng(7)
    for leaves in [1, 2, 3, 5, 1023, 1024, 1025, 1407, 2**20, 2**20 + 1]:
        depth = tree_depth(leaves)
        assert (1 << depth) >= leaves > (1 << depth) // 2 or leaves == 1
        rounds, (d, j) = 0, (depth, 0)
        while d > 0:  # the descent along the last node, the one the odd levels carry up
            level, first, count = span_below(leaves, d, j)
            assert 1 <= count <= 2**SPAN and level == max(d - SPAN, 0)
            d, j, rounds = level, first + count - 1, rounds + 1
        assert j == leaves - 1 and rounds == -(-depth // SPAN)
    for leaves in [1, 2, 3, 5, 6, 7, 33, 1025, 1407, 3001]:
        hashes = [rng.bytes(32) for _ in range(leaves)]
        depth = tree_depth(leaves)
        assert chunk_level(hashes, depth) == [chunk_root(hashes)]
        for d in range(depth + 1):
            nodes = chunk_level(hashes, d)
            for j, node in enumerate(nodes):
                level, first, count = span_below(leaves, d, j)
                assert chunk_root(chunk_level(hashes, level)[first : first + count]) == node, (leaves, d, j)
            assert span_below(leaves, d, len(nodes))[2] == 0  # no node past the level's last


def test_a_game_state_round_trips_at_every_stage(honest: Dispute) -> None:
    moves = moves_to_step(honest, "blk.0.gate")
    games = [before for before, _, _ in moves] + [moves[-1][2]]
    assert [g.stage for g in games] == [GameStage.CHALLENGED, GameStage.ANSWERED, GameStage.DESCENDING,
                                        GameStage.REVEALED, GameStage.DESCENDING, GameStage.LEAF_REVEALED,
                                        GameStage.POINTED]
    for g in games:
        assert match_game(game_script(g)) == g
        movers = {GameStage.ANSWERED, GameStage.REVEALED, GameStage.LEAF_REVEALED}
        assert g.mover == (CLIENT if g.stage in movers else NODE).public_key.to_bytes()
    with pytest.raises(ValueError, match="does not fit"):
        game_script(replace(games[2], cursor=replace(games[2].cursor, index=2**64)))
    with pytest.raises(ValueError, match="only when DESCENDING"):
        games[1].revealed(bytes(32))


def test_a_descent_move_on_a_game_no_descent_leads_to_is_refused_not_raised(honest: Dispute) -> None:
    """Anyone may pay to a GAME script with any cursor: its moves get reasons, never an exception."""
    base = moves_to_step(honest, "blk.0.gate")[2][0]
    children = (bytes(32),) * 3
    for cursor, stage, data, why in [
        (Cursor(0, 2**64 - 1, 255, 2**64 - 1, bytes(32)), GameStage.DESCENDING, Reveal(children).encode(),
         "does not exist"),
        (Cursor(0, 10, 0, 2**64 - 1, bytes(32)), GameStage.DESCENDING, LeafReveal(bytes(8)).encode(), "does not exist"),
        (Cursor(0, 2**64 - 1, 64, 2**64 - 1, bytes(32), sha256d(b"".join(children))), GameStage.REVEALED,
         Pick(children, 2).encode(), "no next state"),
        (Cursor(0, 0, 0, 2**64 - 1, bytes(32), sha256d(b"")), GameStage.LEAF_REVEALED, LeafPick(b"", 0).encode(),
         "out of the 0 revealed"),
        (Cursor(0, 2**64 - 1, 0, 2**64 - 1, bytes(32), sha256d(bytes(8))), GameStage.LEAF_REVEALED,
         LeafPick(bytes(8), 1).encode(), "no next state"),
    ]:
        odd = replace(base, stage=stage, cursor=cursor)
        assert match_game(game_script(odd)) == odd
        assert why in reason(*move(odd, data, [game_out(base, POT)])), (stage, cursor)


def test_the_side_that_does_not_move_in_a_descent_loses_all_by_timeout(honest: Dispute) -> None:
    """The accused must reveal (DESCENDING) and the challenger pick (REVEALED, LEAF_REVEALED), or the other side
    takes the GAME once n_move blocks have passed."""
    moves = moves_to_step(honest, "blk.0.gate")
    for game in [before for before, _, _ in moves[2:]]:
        waiter = NODE if game.stage in (GameStage.REVEALED, GameStage.LEAF_REVEALED) else CLIENT
        mover = CLIENT if waiter is NODE else NODE
        out = game_out(game, POT)
        take = Spending(replace(_outpoint(31), sequence=N_MOVE), out, waiter, timeout_script_sig)
        assert reason(signed([take], [TxOut(POT, p2pkh_for(waiter))], version=2), [out]) is None, game.stage
        by_mover = replace(take, key=mover)
        assert "NULLFAIL" in reason(signed([by_mover], [TxOut(POT, p2pkh_for(mover))], version=2), [out])
        early = replace(take, txin=replace(take.txin, sequence=N_MOVE - 1))
        assert "UNSATISFIED_LOCKTIME" in reason(signed([early], [TxOut(POT, p2pkh_for(waiter))], version=2), [out])


def test_malformed_move_data_gets_a_reason_never_an_exception(honest: Dispute) -> None:
    game = honest.opened(N_MOVE)
    answer = honest.answer().encode()
    answered = game.answered(honest.answer().roots)
    moves = moves_to_step(honest, "blk.0.gate")
    pointed = moves[-1][2]
    step = honest.step("blk.0.gate", StepClaim.decode(pointed.claim).element).encode()
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
    for before, data, after in moves[1:]:  # the pointer and the descent: cut, extended or flipped anywhere
        for bad in [b"", data[:-1], data + b"\x00", rng.bytes(len(data))]:
            assert reason(*move(before, bad, [game_out(after, POT)])).startswith("bad-job-game-move"), before.stage
        for flip in rng.choice(len(data), 10, replace=False):
            tampered = bytearray(data)
            tampered[flip] ^= 0x10
            assert reason(*move(before, bytes(tampered), [game_out(after, POT)])) is not None, before.stage


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
    pointer = honest.pointer("blk.0.q")
    forged_header = replace(pointer, header_proof=pointer.header_proof[:-1] + bytes([pointer.header_proof[-1] ^ 1]))
    descending = [game_out(answered.descending(pointer.checkpoint, pointer.size, answer.roots[pointer.checkpoint]),
                           POT)]
    assert reason(*move(answered, forged_header.encode(), descending)).startswith("bad-job-game-move")
    beyond = replace(pointer, checkpoint=len(answer.roots))
    assert "is not one of the 129 committed" in reason(*move(answered, beyond.encode(), descending))
    empty = replace(pointer, size=0)
    assert "the pointer says 0" in reason(*move(answered, empty.encode(), descending))
    with pytest.raises(ValueError, match="at least one value"):
        answered.descending(pointer.checkpoint, 0, answer.roots[pointer.checkpoint])
    other = replace(pointer, challenge=cheat.challenge)
    assert "not the one the game opened on" in reason(*move(answered, other.encode(), descending))
    # the referee alone bounds the checkpoint by the header's K (move_problem bounds it by the roots first)
    assert "is not one of the model's 129" in ModelFreeReferee().pointer_problem(honest.model.model_id, beyond)


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
