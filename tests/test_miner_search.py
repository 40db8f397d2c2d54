"""The nonce search the miner's workers run, and the hashrate meter, in-process."""

from __future__ import annotations

import pytest

from camelid.core.block import BlockHeader
from camelid.core.pow import bits_to_target, hash_meets_target
from camelid.node.miner import HashrateMeter
from camelid.node.mining_worker import BATCH, NONCE_LIMIT, scan

ONE_IN_1024_BITS = 0x1F400000  # target 2**246
HEADER = BlockHeader(1, bytes(range(32)), bytes(range(32, 64)), 1_795_564_900, ONE_IN_1024_BITS, 0)
PREFIX = HEADER.to_bytes()[:76]


def test_scan_returns_the_first_nonce_whose_header_meets_the_target():
    target = bits_to_target(ONE_IN_1024_BITS)
    nonce, tried = scan(PREFIX, target, 0, 100_000)
    assert nonce is not None
    assert tried == nonce + 1
    assert hash_meets_target(HEADER.with_nonce(nonce).hash_bytes, target)
    assert not any(hash_meets_target(HEADER.with_nonce(n).hash_bytes, target) for n in range(nonce))


def test_scan_starts_at_the_range_start():
    target = bits_to_target(ONE_IN_1024_BITS)
    first, _ = scan(PREFIX, target, 0, 100_000)
    assert first is not None
    nonce, tried = scan(PREFIX, target, first + 1, 200_000)
    assert nonce is not None and nonce > first
    assert tried == nonce - first
    assert hash_meets_target(HEADER.with_nonce(nonce).hash_bytes, target)


def test_scan_tries_the_whole_range_when_nothing_meets_the_target():
    assert scan(PREFIX, 0, 10, 1000) == (None, 990)


def test_scan_reaches_the_last_nonce():
    # Target 2**256 - 1 accepts every hash, so the only nonce of the range is the answer.
    assert scan(PREFIX, (1 << 256) - 1, NONCE_LIMIT - 1, NONCE_LIMIT) == (NONCE_LIMIT - 1, 1)


def test_scan_stops_between_batches_when_told():
    calls = []

    def keep_going() -> bool:
        calls.append(None)
        return len(calls) < 2

    nonce, tried = scan(PREFIX, 0, 0, 1 << 20, keep_going)
    assert (nonce, tried) == (None, BATCH)
    assert len(calls) == 2


@pytest.mark.parametrize(
    ("prefix", "start", "stop", "message"),
    [
        (PREFIX[:75], 0, 1, "76 bytes"),
        (PREFIX + b"\x00", 0, 1, "76 bytes"),
        (PREFIX, -1, 1, "nonce range"),
        (PREFIX, 5, 4, "nonce range"),
        (PREFIX, 0, NONCE_LIMIT + 1, "nonce range"),
    ],
)
def test_scan_rejects_bad_jobs(prefix, start, stop, message):
    with pytest.raises(ValueError, match=message):
        scan(prefix, 1, start, stop)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_hashrate_averages_over_the_time_since_hashing_began():
    clock = FakeClock()
    meter = HashrateMeter(window=60, clock=clock)
    assert meter.rate == 0
    meter.record(100)
    clock.now += 10
    meter.record(900)
    assert meter.rate == pytest.approx(1000 / 10)


def test_hashrate_forgets_samples_older_than_the_window():
    clock = FakeClock()
    meter = HashrateMeter(window=60, clock=clock)
    meter.record(6000)
    clock.now += 30
    meter.record(600)
    clock.now += 40  # the first sample is now 70 s old
    assert meter.rate == pytest.approx(600 / 60)
    clock.now += 31
    assert meter.rate == 0


def test_hashrate_after_an_idle_spell_counts_only_the_new_stretch():
    clock = FakeClock()
    meter = HashrateMeter(window=60, clock=clock)
    meter.record(1000)
    clock.now += 600
    meter.record(50)
    clock.now += 5
    meter.record(50)
    assert meter.rate == pytest.approx(100 / 5)
