"""Network-independent consensus constants and the subsidy schedule (whitepaper 2.3.1)."""

from __future__ import annotations

COIN = 100_000_000  # base units per coin
INITIAL_SUBSIDY = 50 * COIN
HALVING_INTERVAL = 1_000_000  # blocks between subsidy halvings
# 50 coins x 1,000,000 blocks x (1 + 1/2 + 1/4 + ...) = 100,000,000 coins can ever exist.
MAX_MONEY = 100_000_000 * COIN

MAX_BLOCK_SIZE = 4_000_000  # serialized bytes; jobs add payment traffic, so 4x Bitcoin's legacy limit
MAX_TX_SIZE = 1_000_000
MAX_BLOCK_SIGOPS = 80_000
MAX_FUTURE_BLOCK_TIME = 2 * 60 * 60  # a block may be at most 2 hours ahead of network-adjusted time
MEDIAN_TIME_SPAN = 11  # a block's time must exceed the median of the previous 11
LOCKTIME_THRESHOLD = 500_000_000  # lock times below are heights, at or above are UNIX times
SEQUENCE_FINAL = 0xFFFFFFFF
COINBASE_SCRIPT_MIN, COINBASE_SCRIPT_MAX = 2, 100  # coinbase scriptSig length bounds (as Bitcoin)

# Relative lock times (BIP68) in an input's sequence, for transactions of version >= RELATIVE_LOCK_VERSION.
RELATIVE_LOCK_VERSION = 2
SEQUENCE_LOCKTIME_DISABLE_FLAG = 1 << 31  # set: the sequence carries no relative lock
SEQUENCE_LOCKTIME_TYPE_FLAG = 1 << 22  # set: the lock counts 512-second units of median time past, else blocks
SEQUENCE_LOCKTIME_MASK = 0x0000FFFF  # the lock's value
SEQUENCE_LOCKTIME_GRANULARITY = 9  # a time lock's unit is 2**9 = 512 seconds


def block_subsidy(height: int) -> int:
    """New coins a block at `height` may create: 50 coins halving every 1,000,000 blocks."""
    halvings = height // HALVING_INTERVAL
    if halvings >= 64:
        return 0
    return INITIAL_SUBSIDY >> halvings


def money_range(value: int) -> bool:
    """True when value is a valid amount of base units."""
    return 0 <= value <= MAX_MONEY
