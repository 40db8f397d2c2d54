"""The address book: bucketing against flooding, tried-biased selection, gossip samples, persistence."""

from __future__ import annotations

import json
import logging
import random

import pytest

from camelid.p2p.addrbook import (
    BUCKET_SIZE,
    GETADDR_MIN,
    NEW_BUCKET_COUNT,
    NEW_BUCKETS_PER_SOURCE_GROUP,
    RETRIES,
    AddressBook,
    address_group,
    is_routable,
    is_routable_or_loopback,
)
from camelid.p2p.messages import NetAddress

NOW = 1_800_000_000


class Clock:
    def __init__(self) -> None:
        self.now = float(NOW)

    def __call__(self) -> float:
        return self.now


def any_address(ip: str) -> bool:
    """A routability rule that takes every address, so that tests can use private ones freely."""
    return True


def book(seed: int = 1, clock: Clock | None = None) -> AddressBook:
    return AddressBook(bytes([seed]) * 32, clock=clock or Clock(), rng=random.Random(seed), routable=any_address)


def addr(ip: str, port: int = 9733, last_seen: int = NOW - 60) -> NetAddress:
    return NetAddress(ip, port, 1, last_seen)


def spread_addresses(count: int) -> list[NetAddress]:
    """Addresses in many different /16 groups."""
    return [addr(f"{11 + i % 200}.{i // 200 % 256}.{i % 7}.{i % 250 + 1}") for i in range(count)]


def test_groups_are_slash_16_for_ipv4_and_slash_32_for_ipv6():
    assert address_group("10.1.2.3") == address_group("10.1.200.9") == "4:10.1"
    assert address_group("10.2.0.1") != address_group("10.1.0.1")
    assert address_group("2001:db8:1::1") == address_group("2001:db8:ffff::2")
    assert address_group("2001:db9::1") != address_group("2001:db8::1")


def test_non_routable_addresses_are_neither_learnt_nor_shared_unless_the_rule_allows_loopback(tmp_path):
    internal = ["127.0.0.5", "10.1.2.3", "172.16.0.9", "192.168.1.1", "169.254.7.7", "100.64.0.1", "0.0.0.0",
                "224.0.0.1", "255.255.255.255", "::1", "fe80::1", "fd00::1"]  # fmt: skip
    public = ["1.2.3.4", "2a00:1450::1"]
    b = AddressBook(clock=Clock())
    assert b.add([addr(ip) for ip in internal + public], source="8.8.8.8") == len(public)
    b.good("192.168.1.1", 9733)  # one the operator told us to dial, and that answered: kept, never told
    assert {a.ip for a in b.sample_for_gossip()} == set(public)
    path = tmp_path / "peers.json"
    b.save(path)
    assert ("192.168.1.1", 9733) in AddressBook.load(path)

    regtest = AddressBook(clock=Clock(), routable=is_routable_or_loopback)
    assert regtest.add([addr(ip) for ip in internal + public], source="127.0.0.1") == 2 + len(public)
    assert {a.ip for a in regtest.sample_for_gossip()} == {"127.0.0.5", "::1", *public}
    assert not is_routable("203.0.113.9") and is_routable("203.0.114.9")  # documentation ranges are not routable


def test_added_addresses_are_new_until_good_moves_them_to_tried():
    b = book()
    assert b.add([addr("10.0.0.1"), addr("10.0.0.2"), addr("10.0.0.1")], source="192.0.2.1") == 2
    assert (b.new_count, b.tried_count, len(b)) == (2, 0, 2)
    b.good("10.0.0.1", 9733, services=4)
    entry = b.get("10.0.0.1", 9733)
    assert entry.tried and entry.last_success == NOW and entry.services == 5
    assert (b.new_count, b.tried_count, len(b)) == (1, 1, 2)


def test_port_zero_is_ignored_and_a_future_timestamp_is_clamped():
    b = book()
    assert b.add([addr("10.0.0.1", port=0), addr("10.0.0.2", last_seen=NOW + 86400)], source="192.0.2.1") == 1
    assert b.get("10.0.0.2", 9733).last_seen == NOW


def test_one_source_cannot_fill_the_new_table():
    b = book()
    b.add(spread_addresses(20_000), source="198.51.100.7")
    flooded = b.new_count
    assert flooded <= NEW_BUCKETS_PER_SOURCE_GROUP * BUCKET_SIZE < NEW_BUCKET_COUNT * BUCKET_SIZE
    honest = [addr(f"172.16.{i}.1") for i in range(50)]
    assert b.add(honest, source="203.0.113.9") == 50
    assert all((a.ip, a.port) in b for a in honest)


def test_select_returns_none_for_an_empty_or_fully_excluded_book():
    b = book()
    assert b.select() is None
    b.add([addr("10.0.0.1")], source="192.0.2.1")
    assert b.select(exclude=lambda entry: entry.ip == "10.0.0.1") is None
    assert b.select().ip == "10.0.0.1"


def test_select_prefers_tried_addresses():
    b = book()
    b.add(spread_addresses(200), source="192.0.2.1")
    b.good("11.0.0.1", 9733)
    picks = [b.select().key for _ in range(1000)]
    tried_share = picks.count(("11.0.0.1", 9733)) / len(picks)
    assert 0.4 < tried_share < 0.6  # one tried address against 199 new ones


def test_select_avoids_addresses_that_keep_failing():
    clock = Clock()
    b = book(clock=clock)
    b.add([addr("10.0.0.1"), addr("10.0.0.2")], source="192.0.2.1")
    for _ in range(5):
        b.attempt("10.0.0.1", 9733)
    clock.now += 3600  # the attempts are no longer recent, only numerous
    picks = [b.select().ip for _ in range(1000)]
    assert picks.count("10.0.0.1") < 250


def test_gossip_leaves_out_terrible_addresses_and_limits_its_share():
    clock = Clock()
    b = book(clock=clock)
    b.add([addr("10.0.0.1"), addr("10.0.0.2"), addr("10.0.0.3", last_seen=NOW - 40 * 86400)], source="192.0.2.1")
    for _ in range(RETRIES):
        b.attempt("10.0.0.2", 9733)
    clock.now += 120
    assert [a.ip for a in b.sample_for_gossip()] == ["10.0.0.1"]

    big = book()
    big.add(spread_addresses(2000), source="192.0.2.1")
    big.add(spread_addresses(4000)[2000:], source="198.51.100.1")
    sample = big.sample_for_gossip()
    assert GETADDR_MIN < len(sample) <= 0.23 * len(big) + 1
    assert len(big.sample_for_gossip(limit=10)) == 10


def test_a_full_bucket_evicts_its_stalest_entry():
    b = book()
    bucket = b.new_bucket("10.0.0.1", "192.0.2.1")
    same_bucket = [f"10.{i // 256}.{i % 256}.1" for i in range(20_000)]
    same_bucket = [ip for ip in same_bucket if b.new_bucket(ip, "192.0.2.1") == bucket][: BUCKET_SIZE + 1]
    b.add([addr(same_bucket[0], last_seen=NOW - 1000)], source="192.0.2.1")
    b.add([addr(ip) for ip in same_bucket[1:]], source="192.0.2.1")
    assert len(b) == BUCKET_SIZE
    assert (same_bucket[0], 9733) not in b


def test_the_book_survives_a_save_and_load(tmp_path):
    path = tmp_path / "peers.json"
    b = book()
    b.add(spread_addresses(300), source="192.0.2.1")
    b.add([addr("2001:db8::5", 19733)], source="2001:db8::1")
    b.good("11.0.0.1", 9733)
    b.attempt("12.0.1.2", 9733)
    b.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["peers.json"]  # no temporary file left behind
    again = AddressBook.load(path, clock=Clock(), routable=any_address)
    assert again.secret == b.secret
    assert (len(again), again.new_count, again.tried_count) == (len(b), b.new_count, b.tried_count)
    assert again.get("12.0.1.2", 9733) == b.get("12.0.1.2", 9733)
    assert again.get("11.0.0.1", 9733).tried
    assert again.get("2001:db8::5", 19733).source == "2001:db8::1"


def test_a_missing_file_gives_an_empty_book(tmp_path):
    assert len(AddressBook.load(tmp_path / "absent.json")) == 0


def valid_document() -> dict:
    b = book()
    b.add([addr("10.0.0.1")], source="192.0.2.1")
    return {"version": 1, "secret": b.secret.hex(), "addresses": [vars(b.get("10.0.0.1", 9733))]}


def corrupted(change) -> bytes:
    document = valid_document()
    change(document)
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    "content",
    [
        b"\x00\xffnot json",
        b"[]",
        b'{"version": 2, "secret": "", "addresses": []}',
        corrupted(lambda d: d.update(secret="zz")),
        corrupted(lambda d: d.update(secret="00")),
        corrupted(lambda d: d["addresses"][0].update(ip="10.0.0.300")),
        corrupted(lambda d: d["addresses"][0].update(port=0)),
        corrupted(lambda d: d["addresses"][0].update(attempts=True)),
        corrupted(lambda d: d["addresses"][0].pop("source")),
        corrupted(lambda d: d["addresses"].append(d["addresses"][0])),
        corrupted(lambda d: d["addresses"].append(7)),
    ],
    ids=["garbage", "list", "version", "hex", "secret-size", "ip", "port", "bool", "missing", "duplicate", "entry"],
)
def test_a_corrupt_file_is_reported_and_replaced_by_an_empty_book(tmp_path, caplog, content):
    path = tmp_path / "peers.json"
    path.write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="camelid.p2p.addrbook"):
        b = AddressBook.load(path, routable=any_address)
    assert len(b) == 0
    assert "corrupt" in caplog.text
    b.add([addr("10.9.9.9")], source="192.0.2.1")
    b.save(path)
    assert ("10.9.9.9", 9733) in AddressBook.load(path, routable=any_address)


def test_the_valid_document_used_for_corruption_loads(tmp_path):
    path = tmp_path / "peers.json"
    path.write_text(json.dumps(valid_document()))
    assert ("10.0.0.1", 9733) in AddressBook.load(path, routable=any_address)
