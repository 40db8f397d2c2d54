"""The referee of the RASTiC dispute game: camelid.core.jobgame.GameReferee, model-free and exact.

OP_CHECKJOBGAMEVERIFY asks it whether a move holds (docs/protocol.md, "The dispute game"). It reads only the
move's data and the model id: the header record proven against the id (`model_proof.verify_header`) gives the
vocabulary, the end tokens and the hyperparameters, hence the K checkpoints of the trace and their shapes; the
step proof opens what one element's recompute reads (`referee.judge_step`). Every answer is the same on every
machine, and no error escapes: whatever the data, a move is valid (None) or refused with a reason, because the
interpreter must never raise anything but a script failure.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import wraps
from typing import TypeVar

import numpy as np

from camelid.compute.model_meta import HeaderRecord
from camelid.compute.model_proof import verify_header
from camelid.compute.rastic import EPS_SLASH, structural_failures
from camelid.compute.referee import StepClaim, StepProof, header_model, judge_step
from camelid.compute.reference import checkpoint_root
from camelid.compute.sampling import canonical_pair_gap
from camelid.core.jobgame import MAX_MOVE_DATA, ROOT_SIZE, Answer, Challenge, Pointer, Step

_MAX_ROOTS = MAX_MOVE_DATA // ROOT_SIZE  # no move can carry more checkpoint roots: a bound on the layers

_Method = TypeVar("_Method", bound=Callable[..., str | None])


def _reasoned(method: _Method) -> _Method:
    """Any error while judging is the mover's: its data is malformed or names a model the referee cannot judge."""

    @wraps(method)
    def judged(*args: object) -> str | None:
        try:
            return method(*args)
        except Exception as exc:  # noqa: BLE001 -- consensus boundary: a reason, never an exception
            return str(exc) if isinstance(exc, ValueError) and str(exc) else f"{type(exc).__name__}: {exc}"

    return judged  # type: ignore[return-value]


def void_problem(challenge: Challenge, header: HeaderRecord) -> str | None:
    """Why the challenge is void under the model's header (a model the referee cannot judge, a prompt token or j*
    outside the vocabulary, or j* = o), None if it is a challenge the accused must answer.

    A model the reference pass does not cover (another architecture, unusable hyperparameters) has no valid
    answer, so without this an honest accused would lose every game on it; jobs on such models are therefore
    not protected by the game, and the client is told so (docs/jobs-design.md)."""
    try:
        header_model(header, _MAX_ROOTS)
    except ValueError as exc:
        return f"the referee cannot judge this model ({exc})"
    if any(token >= header.n_vocab for token in challenge.prompt_tokens):
        return f"a prompt token is outside the model's {header.n_vocab}-token vocabulary"
    if challenge.token >= header.n_vocab:
        return f"the challenger's token {challenge.token} is outside the model's {header.n_vocab}-token vocabulary"
    if challenge.token == challenge.output_tokens[challenge.position]:
        return "the challenger's token is the output's own token at that position"
    return None


class ModelFreeReferee:
    """Judges dispute-game moves from their data and the model id alone (the node passes one to its chain state)."""

    @_reasoned
    def refutation_problem(self, model_id: bytes, answer: Answer) -> str | None:
        if void_problem(answer.challenge, verify_header(model_id, answer.header_proof)) is None:
            return "the challenge is not void under the model's header: the accused must answer it"
        return None

    @_reasoned
    def answer_problem(self, model_id: bytes, answer: Answer) -> str | None:
        header = verify_header(model_id, answer.header_proof)
        challenge = answer.challenge
        end_tokens = set(header.end_tokens)
        failures = structural_failures(
            challenge.output_tokens, challenge.max_tokens, header.n_vocab, end_tokens.__contains__
        )
        if failures:
            return f"the output is structurally unsound ({failures[0].reason} at position {failures[0].position})"
        void = void_problem(challenge, header)
        if void is not None:
            return f"the challenge is void ({void}): the accused refutes it with no roots"
        k = len(header_model(header, _MAX_ROOTS).checkpoint_names())
        if len(answer.roots) != k:
            return f"the model's trace has {k} checkpoints, the answer {len(answer.roots)} roots"
        logits = np.array(answer.logits, dtype=np.float32)
        if checkpoint_root(logits) != answer.roots[-1]:
            return "the two logits do not open the last root"
        gap = canonical_pair_gap(logits, challenge.rows, challenge.seed, challenge.position, challenge.temperature)
        if not gap <= EPS_SLASH:  # NaN concedes too
            return f"the accused's own logits score its token {gap:.4f} below the challenger's, over {EPS_SLASH}"
        return None

    @_reasoned
    def pointer_problem(self, model_id: bytes, pointer: Pointer) -> str | None:
        model = header_model(verify_header(model_id, pointer.header_proof), _MAX_ROOTS)
        names = model.checkpoint_names()
        if pointer.checkpoint >= len(names):
            return f"checkpoint {pointer.checkpoint} is not one of the model's {len(names)}"
        name = names[pointer.checkpoint]
        size = math.prod(model.checkpoint_shape(name, len(pointer.challenge.tokens), len(pointer.challenge.rows)))
        if pointer.size != size:
            return f"{name} has {size} values in this trace, the pointer says {pointer.size}"
        return None

    @_reasoned
    def step_problem(self, model_id: bytes, step: Step, claim: bytes) -> str | None:
        pointed = StepClaim.decode(claim)
        proof = StepProof.decode(step.proof)
        challenge = step.challenge
        if judge_step(model_id, step.roots, challenge.tokens, challenge.rows, pointed, proof):
            return None
        where = f"element {pointed.element} of checkpoint {pointed.checkpoint}"
        return f"the recompute of {where} is not the committed value"
