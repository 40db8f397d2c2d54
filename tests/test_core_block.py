"""Block headers, blocks, compact targets, the ASERT retarget and the genesis blocks."""

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from camelid.core.block import Block, BlockHeader
from camelid.core.consensus import COIN, HALVING_INTERVAL, MAX_MONEY, block_subsidy
from camelid.core.params import MAINNET, NETWORKS, REGTEST, get_params
from camelid.core.pow import asert_target, bits_to_target, target_to_bits, work_from_bits
from camelid.core.serialize import ByteReader, compact_size, hex_to_hash

BITCOIN_GENESIS_HEADER = bytes.fromhex(
    "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e67768f61"
    "7fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c"
)

# Pinned so that any change to the genesis construction or serialization fails loudly.
GENESIS_HASHES = {
    "mainnet": "0000d5d81622936992378ba4568d6b8468507b34cd27b8519c7c61f40a6a2ae2",
    "testnet": "0000386038e53b275c1af53a0e8249ee12131f7bf20203a239c2a6b01a1e0830",
    "regtest": "04716b797429ddf4a1c28c5d5c2f577f43a650a71ec66de12a525a0ad5ad5236",
}

headers = st.builds(
    BlockHeader,
    st.integers(0, 2**32 - 1),
    st.binary(min_size=32, max_size=32),
    st.binary(min_size=32, max_size=32),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
)


def test_header_is_bitcoins_80_byte_layout():
    header = BlockHeader.from_bytes(BITCOIN_GENESIS_HEADER)
    assert header.hash() == "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"
    assert header.bits == 0x1D00FFFF and header.nonce == 2083236893
    assert header.to_bytes() == BITCOIN_GENESIS_HEADER
    assert header.check_pow(bits_to_target(0x1D00FFFF))
    assert not header.with_nonce(0).check_pow(bits_to_target(0x1D00FFFF))


@given(headers)
def test_header_round_trip(header):
    assert BlockHeader.from_bytes(header.to_bytes()) == header


@given(st.binary(max_size=400))
def test_random_block_bytes_only_raise_value_error(raw):
    with contextlib.suppress(ValueError):
        Block.from_bytes(raw)


def test_header_wrong_length():
    with pytest.raises(ValueError, match="80 bytes"):
        BlockHeader.from_bytes(BITCOIN_GENESIS_HEADER[:-1])


@pytest.mark.parametrize("network", sorted(NETWORKS))
def test_genesis_blocks(network):
    params = get_params(network)
    genesis = params.genesis
    assert genesis.hash() == GENESIS_HASHES[network]
    assert genesis.header.check_pow(params.pow_limit)
    assert genesis.compute_merkle_root() == genesis.header.merkle_root
    assert Block.from_bytes(genesis.to_bytes()) == genesis
    assert genesis.transactions[0].is_coinbase()


def test_networks_differ_and_unknown_is_named():
    assert len({p.magic for p in NETWORKS.values()}) == 3
    assert len({p.default_port for p in NETWORKS.values()}) == 3
    assert MAINNET.dispute_window == 600 and REGTEST.dispute_window < 60
    with pytest.raises(ValueError, match="unknown network 'moon'"):
        get_params("moon")


def test_subsidy_halves_every_million_blocks():
    assert block_subsidy(0) == 50 * COIN
    assert block_subsidy(HALVING_INTERVAL - 1) == 50 * COIN
    assert block_subsidy(HALVING_INTERVAL) == 25 * COIN
    assert block_subsidy(2 * HALVING_INTERVAL) == 12.5 * COIN
    assert block_subsidy(64 * HALVING_INTERVAL) == 0
    total = sum(block_subsidy(h * HALVING_INTERVAL) * HALVING_INTERVAL for h in range(64))
    assert total <= MAX_MONEY


@pytest.mark.parametrize("bits", [0x1D00FFFF, 0x207FFFFF, 0x1F00FFFF, 0x1B0404CB, 0x03123456, 0x04123456])
def test_compact_round_trip(bits):
    assert target_to_bits(bits_to_target(bits)) == bits


def test_compact_rejects_negative_and_overflow():
    with pytest.raises(ValueError, match="negative"):
        bits_to_target(0x04923456)
    with pytest.raises(ValueError, match="overflows"):
        bits_to_target(0xFF123456)
    assert not BlockHeader(1, bytes(32), bytes(32), 0, 0xFF123456, 0).check_pow(2**256 - 1)


def test_work_grows_as_target_shrinks():
    assert work_from_bits(0x1D00FFFF) > work_from_bits(0x1F00FFFF) > work_from_bits(0x207FFFFF) == 2


def _simulate(hashrate_factor: float, blocks: int, start_target: int) -> list[int]:
    """Targets of `blocks` blocks whose solve time is what `hashrate_factor` x the hashrate that
    solves start_target in 120 s would take at each block's target."""
    spacing, half_life, limit = 120, 3600, 2**255
    time, targets = 0, []
    target = start_target
    for height in range(1, blocks + 1):
        time += int(spacing * start_target / target / hashrate_factor)
        target = asert_target(start_target, -spacing, 0, time, height, spacing, half_life, limit)
        targets.append(target)
    return targets


@pytest.mark.parametrize("factor", [10.0, 0.1])
def test_asert_follows_hashrate_jumps(factor):
    start = 2**230
    targets = _simulate(factor, 600, start)
    # Steady state: the target that restores 120 s blocks is start / factor.
    settled = targets[-1]
    assert 0.5 < settled * factor / start < 2.0
    # And the move is monotone toward it: harder when hashrate rose, easier when it fell.
    assert (targets[-1] < targets[0]) == (factor > 1)


def test_asert_on_schedule_keeps_target():
    start = 2**230
    assert asert_target(start, -120, 0, 120 * 50, 50, 120, 3600, 2**255) == start
    assert asert_target(start, -120, 0, 120 * 50 + 3600, 50, 120, 3600, 2**255) == 2 * start
    assert asert_target(2**254, -120, 0, 10**7, 1, 120, 3600, 2**255) == 2**255  # capped at the pow limit


def test_byte_reader_errors_are_value_errors():
    with pytest.raises(ValueError, match="exceeds the maximum"):
        ByteReader(b"\xff" + (2**40).to_bytes(8, "little")).compact_size()
    with pytest.raises(ValueError, match="hash must be 32 bytes"):
        hex_to_hash("00")
    with pytest.raises(ValueError, match="64 hex digits"):
        hex_to_hash("zz")
    assert compact_size(0xFC) == b"\xfc" and compact_size(0xFD) == b"\xfd\xfd\x00"
