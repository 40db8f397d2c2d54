"""Regtest-only cheating (--misbehave=tamper-output): one token swapped, so disputes can be tested end to end."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from camelid.compute.engine import Engine


def tamper_output(engine: Engine, prompt_tokens: Sequence[int], output_tokens: Sequence[int]) -> list[int]:
    """`output_tokens` with its middle interior token replaced by the model's least likely non-end token there.

    The gap at that position is then as large as the model allows, far above the slashing threshold, so
    the client's fraud proof is admitted. An output too short to have an interior position comes back as is.
    Runs on the engine's thread (one prefill).
    """
    tampered = list(output_tokens)
    if len(tampered) < 3:
        return tampered
    position = len(tampered) // 2
    sequence = list(prompt_tokens) + tampered[:position]
    (logits,) = engine.logits_at(sequence, [len(sequence) - 1])
    tampered[position] = next(int(t) for t in np.argsort(logits) if not engine.is_end(int(t)))
    return tampered
