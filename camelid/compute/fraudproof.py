"""The model check behind OP_CHECKJOBPROOFVERIFY: a JobProofVerifier backed by loaded engines.

The chain layer sees only camelid.core.jobproof.JobProofVerifier; the node injects this
one with the engines it serves. One verdict costs one prefill of the prompt and the
output up to the disputed position (the tokens after it cannot change the gap there).
"""

from __future__ import annotations

from collections.abc import Mapping

from camelid.compute.engine import Engine
from camelid.compute.rastic import MISMATCH, position_gaps, structural_failures
from camelid.core.jobproof import Judgement

INVALID_PROMPT = "invalid_prompt"


class EngineProofVerifier:
    """Judges fraud proofs for the models in `engines` (by model id); None for any other model.

    An engine whose context cannot hold the proof's tokens also answers None: this node
    cannot measure the gap, which is the same position as not holding the model.
    """

    def __init__(self, engines: Mapping[bytes, Engine]) -> None:
        self.engines = dict(engines)

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
        engine = self.engines.get(model_id)
        if engine is None:
            return None
        structural = structural_failures(output_tokens, max_tokens, engine.n_vocab, engine.is_end)
        if structural:
            return Judgement(structural[0].gap, structural[0].reason)
        try:
            engine.check_tokens(prompt_tokens, "prompt_tokens")
        except ValueError:
            # The node signed a commitment to a prompt this model cannot read: no output of it is
            # provably wrong, so the proof shows nothing.
            return Judgement(0.0, INVALID_PROMPT)
        if len(prompt_tokens) + position > engine.n_ctx:
            return None
        prefix = output_tokens[: position + 1]
        gap = position_gaps(engine, prompt_tokens, prefix, [position], seed, temperature)[0]
        return Judgement(float(gap), MISMATCH)
