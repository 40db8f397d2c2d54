"""The RASTiC dispute game's off-chain players: what the challenger and the accused compute for their moves.

Both sides hold the model and run the same reference pass (`reference.ReferenceModel`), so each can predict
what the referee will say before it moves (docs/jobs-design.md, "The RASTiC dispute game"):

- the client `choose_token`s a j* at a failed position and challenges only when the reference scores j* more
  than EPS_SLASH above the output's token o (move 0);
- the accused `answer`s with its trace's K roots and the two logits they end in (move 1), or refutes a void
  challenge (one on a model the referee cannot judge among them), and has no answer when the reference concedes
  (it then lets the game time out);
- the challenger `point`s at the first root of the answer that differs from its own (move 2), then they descend
  that checkpoint's Merkle tree: the accused `reveal`s the cursor's node's descendants from its trace, the
  challenger `pick`s the first that differs from its own tree, down to a leaf whose values the accused reveals
  and in which the challenger `pick_element`s the first that differs;
- the accused opens that element with `step` (move 3).

Every pass here costs a reference prefill (minutes for the longest job on gemma-3-270m): call these off the
event loop. Either side's trace (and its leaf hashes) is kept from move 1 to move 3 (one game at a time per player).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from camelid.compute.game_referee import void_problem
from camelid.compute.model_id import Manifest, manifest_of_file
from camelid.compute.model_meta import HeaderRecord
from camelid.compute.model_proof import prove_header, verify_header
from camelid.compute.rastic import EPS_SLASH, structural_failures
from camelid.compute.referee import StepClaim, prove_step
from camelid.compute.reference import ReferenceModel, checkpoint_leaves, checkpoint_root
from camelid.compute.sampling import canonical_gumbel, canonical_pair_gap
from camelid.core.jobgame import (
    LEAF_VALUES,
    Answer,
    Challenge,
    Cursor,
    LeafPick,
    LeafReveal,
    Pick,
    Pointer,
    Reveal,
    Step,
    span_below,
)
from camelid.crypto.merkle import chunk_level


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
        self._leaves: dict[int, list[bytes]] = {}  # the kept trace's leaf hashes, per checkpoint

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

    def point(self, answer: Answer) -> Pointer | None:
        """Move 2: the first of the answer's checkpoints whose root differs from our trace's (the descent then finds
        the element); None if every root agrees (our challenge was wrong: we lose the bond by not moving)."""
        trace = self._trace(answer.challenge)
        ours = self._roots(trace)
        if len(answer.roots) != len(ours):
            raise ValueError(f"the answer has {len(answer.roots)} roots, the model's trace {len(ours)}")
        first = next((i for i, (a, b) in enumerate(zip(ours, answer.roots, strict=True)) if a != b), None)
        if first is None:
            return None
        size = int(trace[self.names[first]].size)
        return Pointer(answer.challenge, self.header_proof, answer.roots, first, size)

    def reveal(self, challenge: Challenge, cursor: Cursor) -> Reveal | LeafReveal:
        """The accused opens the cursor's node of our trace's tree: its descendants SPAN levels down (the hashes
        consensus chains to the node), or at a leaf its float32 values."""
        if cursor.depth == 0:
            return LeafReveal(self._leaf(challenge, cursor))
        return Reveal(self._below(challenge, cursor))

    def pick(self, challenge: Challenge, cursor: Cursor, reveal: Reveal) -> Pick | None:
        """The challenger descends into the first revealed descendant whose hash differs from our tree's; None if
        all agree (the node is ours after all: we have nothing to pick)."""
        ours = self._below(challenge, cursor)
        if len(ours) != len(reveal.children):
            raise ValueError(f"{len(reveal.children)} hashes revealed where our tree has {len(ours)}")
        child = next((k for k, (a, b) in enumerate(zip(ours, reveal.children, strict=True)) if a != b), None)
        return None if child is None else Pick(reveal.children, child)

    def pick_element(self, challenge: Challenge, cursor: Cursor, reveal: LeafReveal) -> LeafPick | None:
        """The challenger names the revealed leaf's first value that differs from ours by float32 bits."""
        ours = np.frombuffer(self._leaf(challenge, cursor), dtype="<u4")
        theirs = np.frombuffer(reveal.values, dtype="<u4")
        if ours.size != theirs.size:
            raise ValueError(f"{theirs.size} values revealed where our leaf has {ours.size}")
        differs = np.flatnonzero(ours != theirs)
        return LeafPick(reveal.values, int(differs[0])) if differs.size else None

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
                self._leaves = {}
                self._kept = (key, self.reference.trace(challenge.tokens, challenge.rows))
            return self._kept[1]

    def _values(self, challenge: Challenge, cursor: Cursor) -> np.ndarray:
        if not 0 <= cursor.checkpoint < len(self.names):
            raise ValueError(f"checkpoint {cursor.checkpoint} is not one of the model's {len(self.names)}")
        return self._trace(challenge)[self.names[cursor.checkpoint]]

    def _leaf(self, challenge: Challenge, cursor: Cursor) -> bytes:
        """Leaf `cursor.index` of our checkpoint: its float32 values, little-endian, as its tree hashes them."""
        data = np.ascontiguousarray(self._values(challenge, cursor), dtype="<f4").reshape(-1)
        return data[cursor.index * LEAF_VALUES : (cursor.index + 1) * LEAF_VALUES].tobytes()

    def _below(self, challenge: Challenge, cursor: Cursor) -> tuple[bytes, ...]:
        """The descendants of the cursor's node in our tree that a reveal opens (the leaf hashes kept per checkpoint:
        a descent reads them each round)."""
        values = self._values(challenge, cursor)
        with self._lock:
            if cursor.checkpoint not in self._leaves:
                self._leaves[cursor.checkpoint] = checkpoint_leaves(values)
            leaves = self._leaves[cursor.checkpoint]
        level, first, count = span_below(len(leaves), cursor.depth, cursor.index)
        if count == 0:
            raise ValueError(f"our tree has no node ({cursor.depth}, {cursor.index}) in checkpoint {cursor.checkpoint}")
        return tuple(chunk_level(leaves, level)[first : first + count])
