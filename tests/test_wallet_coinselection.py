"""Branch and bound against brute force, and the change-making fallback."""

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from camelid.wallet.coinselection import branch_and_bound, select_coins


def _best_by_brute_force(values, target, upper):
    sums = [
        sum(subset)
        for size in range(1, len(values) + 1)
        for subset in itertools.combinations(values, size)
        if target <= sum(subset) <= upper
    ]
    return min(sums, default=None)


@settings(max_examples=200)
@given(st.lists(st.integers(1, 1000), min_size=1, max_size=10), st.integers(1, 3000), st.integers(0, 50))
def test_branch_and_bound_finds_the_least_excess(values, target, window):
    values = sorted(values, reverse=True)
    found = branch_and_bound(values, target, target + window)
    best = _best_by_brute_force(values, target, target + window)
    if best is None:
        assert found is None
    else:
        assert found is not None and len(set(found)) == len(found)
        assert sum(values[i] for i in found) == best


def test_exact_match_is_changeless():
    selection = select_coins(["a", "b", "c"], [500, 300, 200], target=500, cost_of_change=10, change_target=100)
    assert selection.changeless and selection.coins in (["a"], ["b", "c"])


def test_fallback_prefers_the_smallest_single_coin_that_leaves_change():
    selection = select_coins(["big", "mid", "small"], [10_000, 2_000, 300], 1_000, cost_of_change=10, change_target=600)
    assert not selection.changeless and selection.coins == ["mid"]


def test_fallback_takes_largest_coins_first():
    selection = select_coins(["a", "b", "c", "d"], [400, 300, 200, 100], 650, cost_of_change=10, change_target=100)
    assert not selection.changeless and selection.coins == ["a", "b", "c"]


def test_not_enough_in_total():
    assert select_coins(["a"], [100], 101, cost_of_change=10, change_target=10) is None
