"""The dispute game's players on the tiny llama and gemma3: the honest side's every move holds under the referee,
a cheater's output has no answer, and the pointer names an element a forged trace cannot prove."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from tiny_model import EOS, write_tiny_gemma3, write_tiny_model

from camelid.compute.game_player import GamePlayer
from camelid.compute.game_referee import ModelFreeReferee
from camelid.compute.rastic import EPS_SLASH
from camelid.compute.referee import StepClaim, StepProof, judge_step, prove_step
from camelid.compute.reference import F32, ReferenceModel, checkpoint_leaves, checkpoint_root
from camelid.compute.sampling import canonical_gumbel, canonical_pair_gap, canonical_token_gap
from camelid.core import jobgame
from camelid.core.jobgame import (
    LEAF_VALUES,
    Answer,
    Challenge,
    Game,
    GameStage,
    LeafReveal,
    Pick,
    Reveal,
    Step,
    game_script,
    move_items,
    move_problem,
    roots_hash,
    span_below,
)
from camelid.core.transaction import TxOut
from camelid.crypto.hashes import sha256d
from camelid.crypto.merkle import chunk_level

PROMPT = (1, 40, 77, 3, 200, 259, 12)
MAX_TOKENS = 6
SEED = 7
WRITERS = {"llama": write_tiny_model, "gemma3": write_tiny_gemma3}
REFEREE = ModelFreeReferee()  # what OP_CHECKJOBGAMEVERIFY asks


@dataclasses.dataclass
class Case:
    player: GamePlayer
    output: tuple[int, ...]  # what the reference itself generates
    temperature_milli: int
    other: Path  # the same architecture with other weights: a cheaper model

    def challenge(self, position: int, token: int, output: tuple[int, ...] | None = None) -> Challenge:
        return Challenge(PROMPT, output or self.output, MAX_TOKENS, SEED, self.temperature_milli, position, token)


def _generate(player: GamePlayer, temperature_milli: int) -> tuple[int, ...]:
    """An honest output: the reference's own choice at every position, until an end token or MAX_TOKENS."""
    output: list[int] = []
    while len(output) < MAX_TOKENS and (not output or output[-1] != EOS):
        tokens = list(PROMPT) + output
        logits = player.reference.logits(tokens, [len(tokens) - 1])[0]
        scores = logits.astype(np.float64)
        if temperature_milli:
            scores = canonical_gumbel(SEED, len(output), player.n_vocab) * (temperature_milli / 1000) + logits
        output.append(int(np.argmax(scores)))
    return tuple(output)


@pytest.fixture(scope="module", params=[(arch, t) for arch in sorted(WRITERS) for t in (0, 800)], ids=str)
def case(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Case:
    arch, temperature_milli = request.param
    folder = tmp_path_factory.mktemp(arch)
    player = GamePlayer(WRITERS[arch](folder / "model.gguf"))
    other = WRITERS[arch](folder / "other.gguf", seed=1)
    return Case(player, _generate(player, temperature_milli), temperature_milli, other)


def _worst(case: Case, position: int) -> int:
    """The token the reference scores lowest at `position`: an edit a cheater might make."""
    tokens = list(PROMPT) + list(case.output[:position])
    return int(np.argmin(case.player.reference.logits(tokens, [len(tokens) - 1])[0]))


def _gap(logits: tuple[float, ...], c: Challenge) -> float:
    return canonical_pair_gap(np.array(logits, dtype=F32), c.rows, c.seed, c.position, c.temperature)


def _moved(game: Game, data: bytes, after: Game) -> Game:
    """`data` is a valid move on `game` into `after`, as OP_CHECKJOBGAMEVERIFY judges it."""
    assert move_problem(game, data, game.job_id, [TxOut(1, game_script(after))], 1, REFEREE) is None
    return after


def _descend(player: GamePlayer, answer: Answer, theirs: dict[str, np.ndarray]) -> StepClaim | None:
    """Move 2 and the descent against an accused whose trace is `theirs`: each of its reveals from its own tree and
    each of our picks, every one a valid move, down to the element of move 3; None where we have nothing to name."""
    pointer = player.point(answer)
    if pointer is None:
        return None
    c = answer.challenge
    game = Game(bytes(32), 0, bytes(33), bytes(33), bytes(32), player.model_id, 3, GameStage.ANSWERED, c.hash(),
                roots_hash(answer.roots))
    game = _moved(game, pointer.encode(),
                  game.descending(pointer.checkpoint, pointer.size, answer.roots[pointer.checkpoint]))
    values = np.ascontiguousarray(theirs[player.names[pointer.checkpoint]], dtype="<f4").reshape(-1)
    leaves = checkpoint_leaves(values)
    while game.stage is not GameStage.POINTED:
        cursor = game.cursor
        if cursor.depth:
            level, first, count = span_below(len(leaves), cursor.depth, cursor.index)
            reveal = Reveal(tuple(chunk_level(leaves, level)[first : first + count]))
            game = _moved(game, reveal.encode(), game.revealed(sha256d(b"".join(reveal.children))))
            pick = player.pick(c, game.cursor, reveal)
            if pick is None:
                return None
            game = _moved(game, pick.encode(), game.picked(pick.child, reveal.children[pick.child]))
        else:
            leaf = LeafReveal(values[cursor.index * LEAF_VALUES : (cursor.index + 1) * LEAF_VALUES].tobytes())
            game = _moved(game, leaf.encode(), game.revealed(sha256d(leaf.values)))
            element = player.pick_element(c, game.cursor, leaf)
            if element is None:
                return None
            game = _moved(game, element.encode(), game.pointed(element.offset))
    return StepClaim.decode(game.claim)


def _holds(case: Case, answer: Answer, claim: StepClaim, step: Step) -> bool:
    """The referee's verdict on move 3; a malformed proof loses for the accused."""
    c = answer.challenge
    try:
        return judge_step(case.player.model_id, answer.roots, c.tokens, c.rows, claim, StepProof.decode(step.proof))
    except ValueError:
        return False


def test_an_honest_output_gives_the_challenger_nothing_to_challenge(case: Case) -> None:
    for position, token in enumerate(case.output):
        choice = case.player.choose_token(PROMPT, case.output, position, SEED, case.temperature_milli)
        assert choice.token != token and choice.gap <= 0 and not choice.challengeable


def test_choose_token_names_the_references_choice_and_its_canonical_gap(case: Case) -> None:
    position = len(case.output) // 2
    edited = list(case.output)
    edited[position] = _worst(case, position)
    choice = case.player.choose_token(PROMPT, edited, position, SEED, case.temperature_milli)
    tokens = list(PROMPT) + edited[:position]
    logits = case.player.reference.logits(tokens, [len(tokens) - 1])[0]
    temperature = case.temperature_milli / 1000
    assert choice.gap == canonical_token_gap(logits, edited[position], SEED, position, temperature)
    assert choice.token == case.output[position] and choice.challengeable
    # the accused's trace ends in the same two logits, bit for bit: both sides judge the one gap the referee will
    rows = case.player.reference.trace(tokens, [choice.token, edited[position]])["logits"]
    assert rows.tobytes() == logits[[choice.token, edited[position]]].tobytes()
    outside = edited[:position] + [case.player.n_vocab] + edited[position + 1 :]
    assert case.player.choose_token(PROMPT, outside, position, SEED, case.temperature_milli).gap == float("inf")


def test_an_honest_answer_to_a_false_challenge_holds_and_the_challenger_has_no_pointer(case: Case) -> None:
    position = len(case.output) - 1
    runner_up = case.player.choose_token(PROMPT, case.output, position, SEED, case.temperature_milli).token
    answer = case.player.answer(case.challenge(position, runner_up))
    assert answer is not None and Answer.decode(answer.encode()) == answer
    assert len(move_items(answer.encode())) > 0  # fits the move's pushes
    assert len(answer.roots) == len(case.player.names)
    assert checkpoint_root(np.array(answer.logits, dtype=F32)) == answer.roots[-1]
    assert _gap(answer.logits, answer.challenge) <= 0 < EPS_SLASH
    assert REFEREE.answer_problem(case.player.model_id, answer) is None
    assert case.player.point(answer) is None


def test_a_cheaters_output_has_no_answer(case: Case) -> None:
    position = len(case.output) // 2
    edited = list(case.output)
    edited[position] = _worst(case, position)
    assert case.player.answer(case.challenge(position, case.output[position], tuple(edited))) is None
    if case.output[-1] == EOS:
        truncated = case.output[:-1]
        assert case.player.answer(case.challenge(0, _worst(case, 0), truncated)) is None
    early_end = (EOS, *case.output[1:]) if len(case.output) > 1 else (EOS, EOS)
    assert case.player.answer(case.challenge(0, _worst(case, 0), early_end)) is None


def test_a_void_challenge_is_refuted_without_a_trace(case: Case) -> None:
    n_vocab = case.player.n_vocab
    for challenge in (
        case.challenge(0, case.output[0]),  # j* = o
        case.challenge(0, n_vocab),  # j* outside the vocabulary
        dataclasses.replace(case.challenge(0, _worst(case, 0)), prompt_tokens=(*PROMPT[:-1], n_vocab)),
    ):
        answer = case.player.answer(challenge)
        assert answer is not None and answer.roots == () and answer.challenge == challenge
        assert REFEREE.refutation_problem(case.player.model_id, answer) is None


def test_an_honest_step_holds_wherever_a_false_challenger_points(case: Case) -> None:
    position = len(case.output) - 1
    runner_up = case.player.choose_token(PROMPT, case.output, position, SEED, case.temperature_milli).token
    answer = case.player.answer(case.challenge(position, runner_up))
    assert answer is not None
    names = case.player.names
    for name in ("embd", "blk.0.q", names[len(names) // 2], "output_norm", "logits"):
        claim = StepClaim(names.index(name), 0)
        step = case.player.step(answer.challenge, claim)
        assert Step.decode(step.encode()) == step and step.roots == answer.roots
        assert _holds(case, answer, claim, step), name
        assert REFEREE.step_problem(case.player.model_id, step, claim.encode()) is None


def test_a_forged_final_logit_is_pointed_at_and_cannot_be_proven(case: Case) -> None:
    """The cheapest forgery: the true trace with the j* logit lowered until the gap is under EPS_SLASH."""
    position = len(case.output) // 2
    edited = list(case.output)
    edited[position] = _worst(case, position)
    challenge = case.challenge(position, case.output[position], tuple(edited))
    reference = case.player.reference
    forged = dict(reference.trace(challenge.tokens, challenge.rows))
    forged["logits"] = forged["logits"].copy()
    forged["logits"][0] = forged["logits"][1] - F32(10)
    roots = tuple(checkpoint_root(forged[name]) for name in case.player.names)
    logits = tuple(float(v) for v in forged["logits"])
    assert _gap(logits, challenge) <= EPS_SLASH  # the forgery passes move 1
    answer = Answer(challenge, case.player.header_proof, roots, (logits[0], logits[1]))
    assert REFEREE.answer_problem(case.player.model_id, answer) is None  # a valid move 1
    claim = _descend(case.player, answer, forged)
    assert claim == StepClaim(len(case.player.names) - 1, 0)
    proof = prove_step(reference, challenge.tokens, challenge.rows, forged, "logits", 0, case.player.manifest)
    assert not _holds(case, answer, claim, Step(challenge, roots, proof.encode()))
    assert REFEREE.step_problem(case.player.model_id, Step(challenge, roots, proof.encode()), claim.encode())


def test_a_cheaper_models_trace_is_pointed_at_its_first_checkpoint_and_cannot_be_proven(case: Case) -> None:
    """A cheater that commits the trace of other weights: the first root differs, and the step it can build
    (the true weight row, its own committed values) does not hold."""
    position = len(case.output) // 2
    edited = list(case.output)
    edited[position] = _worst(case, position)
    challenge = case.challenge(position, case.output[position], tuple(edited))
    cheap = ReferenceModel(case.other).trace(challenge.tokens, challenge.rows)
    roots = tuple(checkpoint_root(cheap[name]) for name in case.player.names)
    answer = Answer(challenge, case.player.header_proof, roots, tuple(float(v) for v in cheap["logits"]))
    claim = _descend(case.player, answer, cheap)
    assert claim is not None and claim.checkpoint == 0
    name = case.player.names[0]
    proof = prove_step(case.player.reference, challenge.tokens, challenge.rows, cheap, name, claim.element,
                       case.player.manifest)
    assert not _holds(case, answer, claim, Step(challenge, roots, proof.encode()))


def test_on_a_model_the_referee_cannot_judge_every_challenge_is_refuted(tmp_path: Path) -> None:
    """Another architecture: no answer could hold, so the accused refutes (the referee agrees) and a client does
    not challenge (it has no reference pass to choose j* with)."""
    player = GamePlayer(write_tiny_model(tmp_path / "qwen2.gguf", architecture="qwen2"))
    assert not player.judgeable
    challenge = Challenge(PROMPT, (4, 5, 6), 3, SEED, 0, 1, 7)
    answer = player.answer(challenge)
    assert answer is not None and answer.roots == ()
    assert REFEREE.refutation_problem(player.model_id, answer) is None
    with pytest.raises(ValueError, match="qwen2"):
        player.choose_token(PROMPT, (4, 5, 6), 1, SEED, 0)


@pytest.mark.parametrize("span", [1, jobgame.SPAN])
def test_one_forged_element_in_the_middle_of_an_early_checkpoint_is_found_and_cannot_be_proven(
    case: Case, span: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The forgery "Still open" 11 let win: the true trace with one element of an early checkpoint changed. The
    challenger names that checkpoint, descends to the forged leaf (in one round, or one per level with span 1)
    and names the element itself; the cheater's step over it does not hold, the honest step there does."""
    position = len(case.output) // 2
    edited = list(case.output)
    edited[position] = _worst(case, position)
    challenge = case.challenge(position, case.output[position], tuple(edited))
    monkeypatch.setattr(jobgame, "SPAN", span)  # 1: a reveal round per level of the tiny model's 3-leaf tree
    names = case.player.names
    checkpoint = names.index("blk.0.q")
    trace = case.player.reference.trace(challenge.tokens, challenge.rows)
    forged = {name: values.copy() for name, values in trace.items()}
    flat = forged[names[checkpoint]].reshape(-1)
    element = flat.size // 2 + 3  # inside a middle leaf, neither its first value nor the checkpoint's last
    assert LEAF_VALUES <= element < flat.size - LEAF_VALUES
    flat[element] += F32(0.5)
    roots = tuple(checkpoint_root(forged[name]) for name in names)
    answer = Answer(challenge, case.player.header_proof, roots, tuple(float(v) for v in forged["logits"]))
    claim = _descend(case.player, answer, forged)
    assert claim == StepClaim(checkpoint, element)
    proof = prove_step(case.player.reference, challenge.tokens, challenge.rows, forged, names[checkpoint], element,
                       case.player.manifest)
    assert not _holds(case, answer, claim, Step(challenge, roots, proof.encode()))
    honest = case.player.step(challenge, claim)
    assert honest.roots != roots and REFEREE.step_problem(case.player.model_id, honest, claim.encode()) is None


def test_an_honest_accuseds_reveals_match_the_challengers_tree_everywhere(
    case: Case, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A false challenger that descends anyway (into child 0 each time) finds no differing child or value: it has
    nothing to pick, and every reveal of the honest accused is a valid move."""
    position = len(case.output) - 1
    runner_up = case.player.choose_token(PROMPT, case.output, position, SEED, case.temperature_milli).token
    challenge = case.challenge(position, runner_up)
    answer = case.player.answer(challenge)
    assert answer is not None
    checkpoint = case.player.names.index("blk.0.q")
    size = int(case.player.reference.trace(challenge.tokens, challenge.rows)["blk.0.q"].size)
    for span in (1, jobgame.SPAN):
        monkeypatch.setattr(jobgame, "SPAN", span)
        game = Game(bytes(32), 0, bytes(33), bytes(33), bytes(32), case.player.model_id, 3, GameStage.ANSWERED,
                    challenge.hash(), roots_hash(answer.roots)).descending(checkpoint, size, answer.roots[checkpoint])
        while game.cursor.depth:
            reveal = case.player.reveal(challenge, game.cursor)
            assert isinstance(reveal, Reveal)
            game = _moved(game, reveal.encode(), game.revealed(sha256d(b"".join(reveal.children))))
            assert case.player.pick(challenge, game.cursor, reveal) is None
            game = _moved(game, Pick(reveal.children, 0).encode(), game.picked(0, reveal.children[0]))
        leaf = case.player.reveal(challenge, game.cursor)
        assert isinstance(leaf, LeafReveal) and len(leaf.values) == 4 * LEAF_VALUES
        game = _moved(game, leaf.encode(), game.revealed(sha256d(leaf.values)))
        assert case.player.pick_element(challenge, game.cursor, leaf) is None
