"""Which bits the next block must carry: ASERT anchored at genesis, or fixed on regtest."""

from __future__ import annotations

from camelid.core.params import ChainParams
from camelid.core.pow import asert_target, bits_to_target, target_to_bits


def next_bits(params: ChainParams, prev_height: int, prev_time: int, prev_bits: int) -> int:
    """Compact target for the block after one at `prev_height` with time `prev_time`.

    The anchor is the genesis block; its "parent time" is genesis.time - spacing, so a
    chain exactly on schedule keeps the genesis target. Regtest never retargets, so
    tests mine at a trivial, constant difficulty.
    """
    if params.no_retargeting:
        return prev_bits
    target = asert_target(
        anchor_target=bits_to_target(params.genesis_bits),
        anchor_parent_time=params.genesis_time - params.target_spacing,
        anchor_height=0,
        tip_time=prev_time,
        tip_height=prev_height,
        spacing=params.target_spacing,
        half_life=params.asert_half_life,
        pow_limit=params.pow_limit,
    )
    return target_to_bits(target)
