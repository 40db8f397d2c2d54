"""Judging a fraud proof: the model verdict interface and the asymmetric rule (docs/jobs-design.md).

Checking a fraud proof needs the model, which the chain layer must not load: a node
injects a `JobProofVerifier` (camelid.compute.fraudproof.EngineProofVerifier is the real
one). What a verdict means depends on who asks. Floating-point logits differ slightly
between machines (the largest honest gap measured is 0.655), so:

* a block is rejected only when this node measures a gap <= ACCEPT_GAP and no structural
  failure; a node without the model accepts the block;
* the mempool (and so a miner's template) admits a proof only when this node measures a
  gap > SLASH_GAP or a structural failure, and refuses it when it cannot measure at all.

Honest machines differ by less than the 0.75..2.0 band, so no two of them can reach
opposite block verdicts on the same proof.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from camelid.core.jobscripts import FraudProof

ACCEPT_GAP = 0.75
"""A validating node rejects a fraud proof it measures at or below this gap (rastic.EPS_ACCEPT)."""
SLASH_GAP = 2.0
"""The mempool admits a fraud proof only above this gap (rastic.EPS_SLASH)."""


@dataclass(frozen=True)
class Judgement:
    """A model's verdict on one output position; `gap` is infinite for a structural failure."""

    gap: float
    reason: str

    @property
    def structural(self) -> bool:
        return math.isinf(self.gap)


class JobProofVerifier(Protocol):
    """The model check behind OP_CHECKJOBPROOFVERIFY; returns None when this node lacks the model."""

    def judge(
        self,
        model_id: bytes,
        prompt_tokens: tuple[int, ...],
        output_tokens: tuple[int, ...],
        max_tokens: int,
        seed: int,
        temperature: float,
        position: int,
    ) -> Judgement | None:
        """The structural failure of the output, if any, else the gap of output_tokens[position]."""
        ...


class JudgementPending(Exception):  # noqa: N818 -- a signal to the caller, not an error
    """A verifier asked to defer (`deferring_judgements`) has no verdict on a proof yet.

    The caller leaves the chain thread, awaits `resolve()` (which makes the model check and keeps its
    verdict), and validates again: the model check never holds up the chain thread, and so block
    processing, as it would if it ran there (issue 15).
    """

    def __init__(self, resolve: Callable[[], Awaitable[None]]) -> None:
        super().__init__("a fraud proof's model check is pending")
        self.resolve = resolve


_deferral = threading.local()


@contextmanager
def deferring_judgements(defer: bool = True) -> Iterator[None]:
    """In this thread, verifiers raise JudgementPending instead of making a model check there and then."""
    before = getattr(_deferral, "on", False)
    _deferral.on = defer
    try:
        yield
    finally:
        _deferral.on = before


def judgements_deferred() -> bool:
    return bool(getattr(_deferral, "on", False))


class ProofPolicy(Enum):
    """Who is judging: block validation (lenient band) or mempool admission (strict band)."""

    BLOCK = "block"
    MEMPOOL = "mempool"


class ProofOutcome(Enum):
    PROVEN = "proven"
    REFUTED = "refuted"
    UNVERIFIABLE = "unverifiable"  # mempool only: this node does not hold the model


def outcome(judgement: Judgement | None, policy: ProofPolicy) -> ProofOutcome:
    """Apply the asymmetric rule to one verdict (None: the verifier does not hold the model)."""
    if judgement is None:
        return ProofOutcome.PROVEN if policy is ProofPolicy.BLOCK else ProofOutcome.UNVERIFIABLE
    threshold = ACCEPT_GAP if policy is ProofPolicy.BLOCK else SLASH_GAP
    return ProofOutcome.PROVEN if judgement.structural or judgement.gap > threshold else ProofOutcome.REFUTED


@dataclass
class JobProofContext:
    """What a signature checker needs to judge fraud proofs, shared by every input of a block or transaction.

    Judgements are cached by (model, commitment, position): a client's fraud-proof
    transaction spends the stake and the payout with the same proof, and one prefill
    answers both.
    """

    verifier: JobProofVerifier | None
    policy: ProofPolicy
    _cache: dict[tuple[bytes, bytes, int], Judgement | None] = field(default_factory=dict, repr=False)

    def judge(self, model_id: bytes, commitment: bytes, proof: FraudProof) -> Judgement | None:
        """The verifier's verdict on `proof` (whose tokens give `commitment`); None without the model."""
        key = (model_id, commitment, proof.position)
        if key not in self._cache:
            self._cache[key] = None if self.verifier is None else self.verifier.judge(
                model_id, proof.prompt_tokens, proof.output_tokens, proof.max_tokens, proof.seed,
                proof.temperature, proof.position,
            )
        return self._cache[key]
