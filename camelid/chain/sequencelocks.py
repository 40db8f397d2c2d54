"""Relative lock times (BIP68): an input of a version-2 transaction can wait until the coin it spends is old enough.

An input's sequence, unless its disable flag is set, locks the transaction for a number of
blocks, or of 512-second units of median time past (type flag), after the coin's block. The
time is counted from the median time past that block was judged by (its parent's, BIP113), so
a miner cannot move it with one timestamp. Blocks judge a transaction at their height and their
parent's median time past, like absolute lock times; the mempool judges it as for the next block,
coins of pool transactions counting as mined in that block (Bitcoin Core's CheckSequenceLocks).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

from camelid.chain.coins import Coin
from camelid.chain.errors import ValidationError
from camelid.core.consensus import (
    RELATIVE_LOCK_VERSION,
    SEQUENCE_LOCKTIME_DISABLE_FLAG,
    SEQUENCE_LOCKTIME_GRANULARITY,
    SEQUENCE_LOCKTIME_MASK,
    SEQUENCE_LOCKTIME_TYPE_FLAG,
)
from camelid.core.transaction import Transaction


class SequenceLock(NamedTuple):
    """The last height and the last median time past at which a transaction is still locked (-1: neither)."""

    height: int
    time: int

    def passed(self, height: int, median_time_past: int) -> bool:
        """Whether a block at `height` whose parent has `median_time_past` may include the transaction."""
        return self.height < height and self.time < median_time_past


UNLOCKED = SequenceLock(-1, -1)


def sequence_lock(tx: Transaction, coins: Sequence[Coin], mined_at: Callable[[Coin], int]) -> SequenceLock:
    """The lock the inputs of `tx` (spending `coins`, in input order) put on it (Core's CalculateSequenceLocks).

    `mined_at(coin)` is the median time past the block that created `coin` was judged by; it is
    asked only for time-locked inputs. Version-1 transactions and disabled inputs lock nothing.
    """
    if tx.version < RELATIVE_LOCK_VERSION:
        return UNLOCKED
    height = time = -1
    for txin, coin in zip(tx.inputs, coins, strict=True):
        sequence = txin.sequence
        if sequence & SEQUENCE_LOCKTIME_DISABLE_FLAG:
            continue
        value = sequence & SEQUENCE_LOCKTIME_MASK
        # Lock n: the last locked height (time) is n - 1 after the coin's, so the spend may come n after it.
        if sequence & SEQUENCE_LOCKTIME_TYPE_FLAG:
            time = max(time, mined_at(coin) + (value << SEQUENCE_LOCKTIME_GRANULARITY) - 1)
        else:
            height = max(height, coin.height + value - 1)
    return SequenceLock(height, time)


def check_sequence_locks(
    tx: Transaction,
    coins: Sequence[Coin],
    height: int,
    median_time_past: int,
    mined_at: Callable[[Coin], int],
    reason: str,
) -> None:
    """Raise ValidationError(`reason`) unless a block at `height` after one with `median_time_past` may include `tx`.

    Blocks use "bad-txns-nonfinal", the mempool "non-BIP68-final" (Core's strings).
    """
    lock = sequence_lock(tx, coins, mined_at)
    if not lock.passed(height, median_time_past):
        raise ValidationError(
            reason,
            f"relative lock time not reached: locked through height {lock.height} and median time past "
            f"{lock.time}, judged at height {height} and median time past {median_time_past}",
        )
