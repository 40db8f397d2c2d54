"""Choosing which coins pay for a transaction, after Bitcoin Core's SelectCoins.

Each coin is valued at what it adds once its own input has been paid for (its
"effective value"). Branch and bound looks first for a set whose effective value
lands in [target, target + cost_of_change]: spending it needs no change output, and
the small excess given to the fee costs less than creating change and later
spending it. Failing that, a change-making set is taken: the smallest single coin
that covers the target with room for non-dust change, else the largest coins first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

BNB_MAX_TRIES = 100_000  # Core's TOTAL_TRIES: the search is exponential, so it is cut off

C = TypeVar("C")


@dataclass(frozen=True)
class Selection(Generic[C]):
    coins: list[C]
    changeless: bool  # found by branch and bound: the caller must not add change


def select_coins(
    coins: Sequence[C], values: Sequence[int], target: int, cost_of_change: int, change_target: int
) -> Selection[C] | None:
    """Coins whose `values` (effective values, parallel to `coins`) reach `target`; None if all together fall short.

    `change_target` is the value above `target` a change-making selection aims for
    (the change output's own fee plus the smallest non-dust change).
    """
    if sum(values) < target:
        return None
    order = sorted(range(len(coins)), key=lambda i: values[i], reverse=True)
    ordered_values = [values[i] for i in order]
    exact = branch_and_bound(ordered_values, target, target + cost_of_change)
    if exact is not None:
        return Selection([coins[order[i]] for i in exact], changeless=True)
    with_change = target + change_target
    single = min((i for i in order if values[i] >= with_change), key=lambda i: values[i], default=None)
    if single is not None:
        return Selection([coins[single]], changeless=False)
    chosen, total = [], 0
    for i in order:
        chosen.append(coins[i])
        total += values[i]
        if total >= with_change:
            break
    return Selection(chosen, changeless=False)


def branch_and_bound(values_descending: Sequence[int], target: int, upper: int) -> list[int] | None:
    """Indices of a subset whose sum lies in [target, upper] with the least excess over `target`, or None.

    Depth-first over include/omit decisions in descending value order, pruning a
    branch once it overshoots `upper` or can no longer reach `target`; stops at an
    exact match or after BNB_MAX_TRIES steps, keeping the best found so far.
    """
    included: list[bool] = []  # decision for each index taken so far
    value = 0
    undecided = sum(values_descending)
    best: list[int] | None = None
    best_excess = upper - target + 1
    for _ in range(BNB_MAX_TRIES):
        if value + undecided < target or value > upper:
            backtrack = True
        elif value >= target:
            if value - target < best_excess:
                best = [i for i, taken in enumerate(included) if taken]
                best_excess = value - target
            if best_excess == 0:
                break
            backtrack = True  # adding more coins only adds excess
        else:
            backtrack = False
        if not backtrack:
            undecided -= values_descending[len(included)]
            value += values_descending[len(included)]
            included.append(True)
            continue
        while included and not included[-1]:
            included.pop()
            undecided += values_descending[len(included)]
        if not included:
            break  # every branch explored
        included[-1] = False
        value -= values_descending[len(included) - 1]
    return best
