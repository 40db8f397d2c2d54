"""Compact targets ("bits"), proof-of-work checks, chain work and the ASERT retarget.

Difficulty follows the network hashrate with aserti3-2d (Bitcoin Cash's absolutely
scheduled exponentially rising targets): the target for the next block depends only
on how far the tip is ahead of or behind the ideal schedule since a fixed anchor
block, doubling or halving per `half_life` seconds of drift. It reacts every block,
cannot oscillate the way windowed averages do, and uses integer arithmetic only, so
every node computes the same bits. docs/protocol.md gives the formula.
"""

from __future__ import annotations


def bits_to_target(bits: int) -> int:
    """Decode a compact target; ValueError for a negative or overflowing encoding."""
    exponent, mantissa = bits >> 24, bits & 0x007FFFFF
    if bits & 0x00800000 and mantissa:
        raise ValueError(f"compact target {bits:#010x} is negative")
    if exponent <= 3:
        return mantissa >> (8 * (3 - exponent))
    target = mantissa << (8 * (exponent - 3))
    if target >> 256:
        raise ValueError(f"compact target {bits:#010x} overflows 256 bits")
    return target


def target_to_bits(target: int) -> int:
    """Encode a target in compact form, rounding down as Bitcoin's GetCompact does."""
    if target <= 0:
        return 0
    size = (target.bit_length() + 7) // 8
    mantissa = target << (8 * (3 - size)) if size <= 3 else target >> (8 * (size - 3))
    if mantissa & 0x00800000:  # keep the sign bit clear
        mantissa >>= 8
        size += 1
    return (size << 24) | mantissa


def hash_meets_target(block_hash: bytes, target: int) -> bool:
    """True when a block hash (internal byte order) read as a little-endian integer is <= target."""
    return int.from_bytes(block_hash, "little") <= target


def work_from_bits(bits: int) -> int:
    """Expected number of hashes to find a block at this target: 2^256 / (target + 1)."""
    target = bits_to_target(bits)
    return (1 << 256) // (target + 1) if target > 0 else 0


def asert_target(
    anchor_target: int,
    anchor_parent_time: int,
    anchor_height: int,
    tip_time: int,
    tip_height: int,
    spacing: int,
    half_life: int,
    pow_limit: int,
) -> int:
    """Target for the block after the tip, by aserti3-2d (fixed-point 16.16, cubic 2^x approximation)."""
    time_delta = tip_time - anchor_parent_time
    height_delta = tip_height - anchor_height
    exponent = ((time_delta - spacing * (height_delta + 1)) * 65536) // half_life
    shifts, frac = exponent >> 16, exponent & 0xFFFF
    factor = 65536 + ((195766423245049 * frac + 971821376 * frac**2 + 5127 * frac**3 + (1 << 47)) >> 48)
    target = anchor_target * factor
    target = target << shifts if shifts >= 0 else target >> -shifts
    target >>= 16
    return max(1, min(target, pow_limit))
