"""The RASTiC dispute game's off-chain players: what the challenger and the accused compute for their moves.

Both sides hold the model and run the same reference pass (`reference.ReferenceModel`), so each can predict
what the referee will say before it moves (docs/jobs-design.md, "The RASTiC dispute game"):

- the client `choose_token`s a j* at a failed position and challenges only when the reference scores j* more
  than EPS_SLASH above the output's token o (move 0);
- the accused `answer`s with its trace's K roots and the two logits they end in (move 1), or refutes a void
  challenge (one on a model the referee cannot judge among them), and has no answer when the reference concedes
  (it then lets the game time out);
- the challenger `point`s at the first root of the answer that differs from its own (move 2), then descends that
  checkpoint's Merkle tree: the accused `reveal`s a node's descendants from its trace, the challenger `pick`s the
  first that differs from its own tree, down to a leaf whose values the accused reveals and in which the
  challenger `pick_element`s the first that differs;
- the accused opens that element with `step` (move 3).

Every pass here costs a reference prefill (minutes for the longest job on gemma-3-270m): call these off the
event loop. Either side's trace (and its trees) is kept from move 1 to move 3 (one game at a time per player).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from camelid.compute.checkpoint_tree import Levels, children, first_difference, leaf_bytes, levels
from camelid.compute.game_referee import void_problem
from camelid.compute.model_id import Manifest, manifest_of_file
from camelid.compute.model_meta import HeaderRecord
from camelid.compute.model_proof import prove_header, verify_header
from camelid.compute.rastic import EPS_SLASH, structural_failures
from camelid.compute.referee import StepClaim, prove_step
from camelid.compute.reference import ReferenceModel, checkpoint_root
from camelid.compute.sampling import canonical_gumbel, canonical_pair_gap
from camelid.core.jobgame import Answer, Challenge, Step


@dataclass(frozen=True)
class Choice:
    """The challenger's token j* at an output position and how far the reference scores it above o."""

    token: int
    gap: float  # s_j* - s_o on the reference logits with the canonical noise; inf when o is no token

    @property
    def challengeable(self) -> bool:
        """The game is won only above EPS_SLASH: below it the accused's true answer holds."""
        return self.gap > EPS_SLASH


class GamePlayer:
    """One model's reference pass, for either side of the games over it."""

    def __init__(self, path: Path | str, manifest: Manifest | None = None) -> None:
        self.path = Path(path)
        self.manifest = manifest or manifest_of_file(self.path)
        self.header_proof = prove_header(self.path, self.manifest)
        self.header: HeaderRecord = verify_header(self.manifest.id, self.header_proof)
        self._lock = threading.Lock()
        self._kept: tuple[tuple[tuple[int, ...], tuple[int, int]], dict[str, np.ndarray]] | None = None
        self._trees: dict[int, Levels] = {}

    @cached_property
    def reference(self) -> ReferenceModel:
        """The reference pass; ValueError for a model it does not cover (another architecture)."""
        return ReferenceModel(self.path)

    @cached_property
    def names(self) -> list[str]:
        return self.reference.checkpoint_names()

    @property
    def judgeable(self) -> bool:
        """Whether the referee can judge a game on this model: on any other every challenge is void (refuted)."""
        try:
            return len(self.names) > 0
        except ValueError:
            return False

    @property
    def model_id(self) -> bytes:
        return self.manifest.id

    @property
    def n_vocab(self) -> int:
        return self.header.n_vocab

    def choose_token(
        self,
        prompt_tokens: Sequence[int],
        output_tokens: Sequence[int],
        position: int,
        seed: int,
        temperature_milli: int,
    ) -> Choice:
        """j*: the best-scoring token other than o at output index `position` on the reference, with o's gap.

        When o is the reference's own choice the gap is <= 0 and j* the runner-up, which is what a challenge of
        a structural fault (an end token too early, say) needs: any j* but o."""
        tokens = list(prompt_tokens) + list(output_tokens[:position])
        logits = self.reference.logits(tokens, [len(tokens) - 1])[0]
        scores = logits.astype(np.float64)
        if temperature_milli:
            scores = canonical_gumbel(seed, position, self.n_vocab) * (temperature_milli / 1000) + logits
        output = output_tokens[position]
        if not 0 <= output < self.n_vocab:
            return Choice(int(np.argmax(scores)), float("inf"))
        best = float(scores[output])
        scores[output] = -np.inf
        token = int(np.argmax(scores))
        return Choice(token, float(scores[token]) - best)

    def answer(self, challenge: Challenge) -> Answer | None:
        """Move 1: a refutation of a void challenge, the trace's roots and logits when they hold (gap at most
        EPS_SLASH), None when no valid answer exists (a structural fault, or the reference agrees with the
        challenger: the accused has lost)."""
        if void_problem(challenge, self.header) is not None:  # the referee's own test
            return Answer(challenge, self.header_proof, ())
        end = set(self.header.end_tokens)
        if structural_failures(list(challenge.output_tokens), challenge.max_tokens, self.n_vocab, end.__contains__):
            return None
        trace = self._trace(challenge)
        logits = tuple(float(v) for v in trace["logits"])
        gap = canonical_pair_gap(trace["logits"], challenge.rows, challenge.seed, challenge.position,
                                 challenge.temperature)
        if not gap <= EPS_SLASH:
            return None
        return Answer(challenge, self.header_proof, self._roots(trace), (logits[0], logits[1]))

    def point(self, answer: Answer) -> int | None:
        """Move 2: the first of the answer's checkpoints whose root differs from our trace's; None if every root
        agrees (our challenge was wrong: we lose the bond by not moving). The descent then finds the element."""
        ours = self._roots(self._trace(answer.challenge))
        if len(answer.roots) != len(ours):
            raise ValueError(f"the answer has {len(answer.roots)} roots, the model's trace {len(ours)}")
        return first_difference(list(ours), list(answer.roots))

    def depth(self, challenge: Challenge, checkpoint: int) -> int:
        """D of checkpoint `checkpoint`'s tree: where the descent starts (its root's level)."""
        return len(self._tree(challenge, checkpoint)) - 1

    def reveal(self, challenge: Challenge, checkpoint: int, depth: int, index: int, span: int) -> list[bytes] | bytes:
        """The accused's reveal of node (depth, index) of our tree: its descendants `span` levels down, or at a
        leaf (depth 0) the leaf's float32 bytes."""
        if depth == 0:
            return leaf_bytes(self._trace(challenge)[self.names[checkpoint]], index)
        return children(self._tree(challenge, checkpoint), depth, index, span)

    def pick(
        self, challenge: Challenge, checkpoint: int, depth: int, index: int, span: int, revealed: list[bytes]
    ) -> int | None:
        """The challenger's pick among the revealed descendants of node (depth, index): the first that differs
        from our tree's; None if all agree (the revealed node is ours: the root's difference lies elsewhere, which
        a reveal that chains to its node cannot show)."""
        return first_difference(children(self._tree(challenge, checkpoint), depth, index, span), revealed)

    def pick_element(self, challenge: Challenge, checkpoint: int, leaf: int, values: bytes) -> int | None:
        """The offset in the revealed leaf of its first value that differs from ours by float32 bits."""
        ours = np.frombuffer(leaf_bytes(self._trace(challenge)[self.names[checkpoint]], leaf), dtype="<f4")
        return first_difference(ours, np.frombuffer(values, dtype="<f4"))

    def step(self, challenge: Challenge, claim: StepClaim) -> Step:
        """Move 3: our trace's element `claim` opened with what its recompute reads."""
        trace = self._trace(challenge)
        proof = prove_step(
            self.reference, challenge.tokens, challenge.rows, trace, self.names[claim.checkpoint], claim.element,
            self.manifest,
        )
        return Step(challenge, self._roots(trace), proof.encode())

    def _roots(self, trace: dict[str, np.ndarray]) -> tuple[bytes, ...]:
        return tuple(checkpoint_root(trace[name]) for name in self.names)

    def _trace(self, challenge: Challenge) -> dict[str, np.ndarray]:
        """The trace over the challenge's tokens and rows, kept for the moves that follow (descent, step)."""
        key = (challenge.tokens, challenge.rows)
        with self._lock:
            if self._kept is None or self._kept[0] != key:
                self._kept = None  # free the old trace before making the new one (gigabytes on long jobs)
                self._trees = {}
                self._kept = (key, self.reference.trace(challenge.tokens, challenge.rows))
            return self._kept[1]

    def _tree(self, challenge: Challenge, checkpoint: int) -> Levels:
        """Our trace's tree of checkpoint `checkpoint`, kept while the trace is (a descent reads it each round)."""
        if not 0 <= checkpoint < len(self.names):
            raise ValueError(f"checkpoint {checkpoint} is not one of the model's {len(self.names)}")
        trace = self._trace(challenge)
        with self._lock:
            if checkpoint not in self._trees:
                self._trees[checkpoint] = levels(trace[self.names[checkpoint]])
            return self._trees[checkpoint]
