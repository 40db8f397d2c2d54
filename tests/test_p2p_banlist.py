"""Bans (persisted, expiring), discouragement, and the bounded helpers that keep peers from costing us memory."""

from __future__ import annotations

import logging

import pytest

from camelid.p2p.banlist import BanList
from camelid.p2p.limits import KeyedBuckets, RecentSet, TokenBucket
from camelid.p2p.schema import canonical_ip


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_ip_addresses_are_normalized_and_garbage_is_refused():
    assert canonical_ip("::ffff:10.0.0.1") == "10.0.0.1"
    assert canonical_ip("2001:DB8::0:1") == "2001:db8::1"
    with pytest.raises(ValueError, match="not an IP address"):
        canonical_ip("example.com")


def test_bans_expire_and_survive_a_restart(tmp_path):
    clock = Clock()
    path = tmp_path / "banlist.json"
    bans = BanList(path, clock=clock)
    bans.ban("10.0.0.1", 100)
    bans.ban("::ffff:10.0.0.2", 1000)
    assert bans.refuses("10.0.0.1") and bans.refuses("10.0.0.2")
    assert not bans.refuses("10.0.0.3")
    restarted = BanList(path, clock=clock)
    assert restarted.banned() == {"10.0.0.1": clock.now + 100, "10.0.0.2": clock.now + 1000}
    clock.now += 101
    assert not restarted.refuses("10.0.0.1")
    assert set(restarted.banned()) == {"10.0.0.2"}
    assert restarted.unban("10.0.0.2") and not restarted.unban("10.0.0.2")
    assert BanList(path, clock=clock).banned() == {}
    with pytest.raises(ValueError, match="positive"):
        restarted.ban("10.0.0.1", 0)


def test_discouragement_lasts_a_day_and_is_not_saved(tmp_path):
    clock = Clock()
    bans = BanList(tmp_path / "banlist.json", clock=clock)
    bans.discourage("10.0.0.1")
    assert bans.refuses("10.0.0.1") and bans.is_discouraged("10.0.0.1")
    assert bans.banned() == {}
    assert not BanList(tmp_path / "banlist.json", clock=clock).refuses("10.0.0.1")
    clock.now += 86401
    assert not bans.refuses("10.0.0.1")


@pytest.mark.parametrize("content", [b"{not json", b"[1]", b'{"10.0.0.1": "soon"}', b'{"nonsense": 5}'])
def test_a_corrupt_ban_list_is_reported_and_ignored(tmp_path, caplog, content):
    path = tmp_path / "banlist.json"
    path.write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="camelid.p2p.banlist"):
        assert BanList(path).banned() == {}
    assert "corrupt" in caplog.text


def test_token_bucket_allows_a_burst_then_the_rate():
    clock = Clock()
    bucket = TokenBucket(rate=2.0, burst=5.0, clock=clock)
    assert [bucket.take() for _ in range(6)] == [True] * 5 + [False]
    clock.now += 1.0
    assert [bucket.take() for _ in range(3)] == [True, True, False]
    clock.now += 100.0
    assert bucket.take(5.0) and not bucket.take()


def test_recent_set_forgets_the_least_recently_added_keys():
    seen = RecentSet(3)
    assert seen.add("a") and seen.add("b") and seen.add("c")
    assert not seen.add("a")  # refreshes "a"
    assert seen.add("d")
    assert "b" not in seen and "a" in seen and len(seen) == 3


def test_keyed_buckets_give_each_key_its_own_budget_and_keep_only_the_most_recent_keys():
    clock = Clock()
    buckets = KeyedBuckets(rate=1.0, burst=2.0, capacity=2, clock=clock)
    assert [buckets.take("junk") for _ in range(3)] == [True, True, False]
    assert buckets.take("honest") and buckets.take("honest")  # untouched by the other key's spending
    assert not buckets.take("junk", 0.5)
    buckets.take("third")  # over capacity: "honest", the least recently used, is forgotten
    assert len(buckets) == 2 and not buckets.take("junk")
    assert buckets.take("honest", 2.0)  # back with a fresh burst, as any new key would get
