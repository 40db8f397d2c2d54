"""ASERT retargeting anchored at genesis, driven by simulated hashrate changes."""

from __future__ import annotations

from dataclasses import replace

from camelid.chain.difficulty import next_bits
from camelid.core.params import REGTEST, TESTNET
from camelid.core.pow import bits_to_target, target_to_bits

# Testnet with a genesis target 2^16 below the limit, so the target can move both ways.
PARAMS = replace(TESTNET, genesis_bits=target_to_bits(TESTNET.pow_limit >> 16))
BASE_TARGET = bits_to_target(PARAMS.genesis_bits)


def _simulate(hashrate_phases: list[tuple[float, int]]) -> list[int]:
    """Mine with deterministic block times: at relative hashrate h and target T a block takes
    spacing * BASE_TARGET / (T * h) seconds. Returns the target after each phase."""
    height, time, bits = 0, PARAMS.genesis_time, PARAMS.genesis_bits
    after_phase = []
    for hashrate, seconds in hashrate_phases:
        end = time + seconds
        while time < end:
            bits = next_bits(PARAMS, height, time, bits)
            interval = PARAMS.target_spacing * BASE_TARGET / (bits_to_target(bits) * hashrate)
            time += max(1, round(interval))
            height += 1
        after_phase.append(bits_to_target(next_bits(PARAMS, height, time, bits)))
    return after_phase


def test_chain_on_schedule_keeps_the_genesis_target() -> None:
    for height in (0, 1, 100, 10_000):
        time = PARAMS.genesis_time + height * PARAMS.target_spacing
        assert next_bits(PARAMS, height, time, PARAMS.genesis_bits) == PARAMS.genesis_bits


def test_target_follows_a_tenfold_hashrate_jump_and_the_fall_back() -> None:
    half_life = PARAMS.asert_half_life
    up, down = _simulate([(10.0, 10 * half_life), (1.0, 10 * half_life)])
    # 10x hashrate: the target that restores 120 s blocks is a tenth of the base one.
    assert abs(up / (BASE_TARGET / 10) - 1) < 0.05
    assert abs(down / BASE_TARGET - 1) < 0.05


def test_tenth_of_the_hashrate_makes_blocks_easier() -> None:
    (target,) = _simulate([(0.1, 10 * PARAMS.asert_half_life)])
    assert abs(target / (BASE_TARGET * 10) - 1) < 0.05


def test_target_moves_about_one_halving_per_half_life_of_drift() -> None:
    ahead = next_bits(PARAMS, 100, PARAMS.genesis_time + 100 * 120 - PARAMS.asert_half_life, PARAMS.genesis_bits)
    assert abs(bits_to_target(ahead) / (BASE_TARGET / 2) - 1) < 0.01


def test_target_never_exceeds_the_pow_limit() -> None:
    far_behind = next_bits(PARAMS, 1, PARAMS.genesis_time + 10**8, PARAMS.genesis_bits)
    assert bits_to_target(far_behind) <= PARAMS.pow_limit


def test_regtest_never_retargets() -> None:
    assert next_bits(REGTEST, 5, REGTEST.genesis_time + 10**6, REGTEST.genesis_bits) == REGTEST.genesis_bits
