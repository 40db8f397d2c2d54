"""The address book: which nodes we know of, and which to dial next (whitepaper 2.1.1).

Modelled on Bitcoin Core's addrman and btcd's addrmgr. Addresses heard of but
never connected to live in the "new" table; addresses we have connected to live
in the "tried" table. Both are split into fixed-size buckets, and the bucket of
an address is a hash keyed with a secret of this book:

* a new address's bucket depends on its /16 (IPv6: /32) group *and on the group
  of the peer that told us*, and each source group reaches only
  NEW_BUCKETS_PER_SOURCE_GROUP of the buckets, so one source -- however many
  addresses it invents -- can only ever fill a small part of the table;
* a tried address's bucket depends on its own group, so a few networks cannot
  crowd out the rest of the nodes we have known to work.

A full bucket evicts its worst entry (a "terrible" one, else the stalest). When
picking whom to dial, `select` flips a coin between the tables (so the few tried
addresses are far likelier per entry than the many new ones) and then weighs
each candidate down by its recent failed attempts.

Only addresses a peer could reach are learnt and shared: `add` skips, and
`sample_for_gossip` leaves out, any address the book's `routable` test refuses.
By default that is every non-public address (loopback, RFC 1918 and fc00::/7,
link-local, shared, multicast, reserved), so a peer cannot make us -- or, through
us, others -- dial hosts on an internal network. On regtest, whose nodes all live
on 127.0.0.1, the manager lets loopback through too. Addresses the operator gives
(--connect, --addnode) are dialled whatever they are, and one that answers is
kept in the tried table, but it is never gossiped unless routable.

The book is saved as JSON (peers.json) with an atomic replace, and a corrupt
file is logged and replaced by an empty book rather than stopping the node.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import math
import os
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from camelid.atomicfile import write_atomically
from camelid.core.fill import Fill, Fills
from camelid.crypto.hashes import sha256
from camelid.p2p.messages import MAX_ADDR, NetAddress
from camelid.p2p.schema import canonical_ip

log = logging.getLogger(__name__)

NEW_BUCKET_COUNT = 256
TRIED_BUCKET_COUNT = 64
BUCKET_SIZE = 64
NEW_BUCKETS_PER_SOURCE_GROUP = 32
TRIED_BUCKETS_PER_GROUP = 8
TRIED_BIAS = 0.5  # chance that select() draws from the tried table when both have candidates
GETADDR_PERCENT = 23  # share of the book one getaddr answer reveals, as Bitcoin ...
GETADDR_MIN = 100  # ... but a young network's small book is shared whole
HORIZON = 30 * 86400  # an address not heard of for this long is terrible
RETRIES = 3  # failed attempts after which a never-connected address is terrible
MAX_FAILURES = 10  # failed attempts after which a once-good address is terrible ...
MIN_FAIL_SECONDS = 7 * 86400  # ... if it has not worked for this long
RECENT_ATTEMPT = 600  # an address dialled this recently is unlikely to be picked again
FILE_FORMAT_VERSION = 1
MAX_FILE_SIZE = 32 << 20
SECRET_SIZE = 32

AddressKey = tuple[str, int]


def is_routable(ip: str) -> bool:
    """Whether `ip` is a public unicast address, one worth learning from and telling peers."""
    address = ipaddress.ip_address(ip)
    return address.is_global and not address.is_multicast


def is_routable_or_loopback(ip: str) -> bool:
    """The regtest rule: public addresses and loopback, where every regtest node lives."""
    return is_routable(ip) or ipaddress.ip_address(ip).is_loopback


def address_group(ip: str) -> str:
    """The network an address belongs to: its /16 for IPv4, its /32 for IPv6."""
    address = ipaddress.ip_address(ip)
    if isinstance(address, ipaddress.IPv4Address):
        return "4:" + ".".join(ip.split(".")[:2])
    return "6:" + address.packed[:4].hex()


@dataclass
class KnownAddress:
    """An address with what we know of it; times are seconds since the epoch, 0 for never."""

    ip: str
    port: int
    services: int
    last_seen: int  # last time we heard the node was up
    source: str  # IP of the peer that told us of it first
    last_attempt: int = 0
    last_success: int = 0
    attempts: int = 0  # failed attempts since the last success
    tried: bool = False

    @property
    def key(self) -> AddressKey:
        return (self.ip, self.port)

    def net_address(self) -> NetAddress:
        return NetAddress(self.ip, self.port, self.services, self.last_seen)

    def is_terrible(self, now: int) -> bool:
        """Not worth keeping or sharing: long unheard of, or failing again and again."""
        if now - self.last_attempt < 60:
            return False
        if self.last_seen == 0 or now - self.last_seen > HORIZON:
            return True
        if self.last_success == 0 and self.attempts >= RETRIES:
            return True
        return now - self.last_success > MIN_FAIL_SECONDS and self.attempts >= MAX_FAILURES

    def chance(self, now: int) -> float:
        """Relative odds of being selected: lower after recent and repeated failed attempts."""
        odds = 0.01 if now - self.last_attempt < RECENT_ATTEMPT else 1.0
        return odds * 0.66 ** min(self.attempts, 8)


class AddressBook:
    """Bucketed new/tried tables of known addresses; not thread-safe (the P2P loop owns it)."""

    def __init__(
        self,
        secret: bytes | None = None,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        routable: Callable[[str], bool] = is_routable,
    ) -> None:
        self.routable = routable
        self.secret = os.urandom(SECRET_SIZE) if secret is None else secret
        if len(self.secret) != SECRET_SIZE:
            raise ValueError(f"address book secret must be {SECRET_SIZE} bytes, got {len(self.secret)}")
        self._clock = clock
        self._rng = rng or random.Random()
        self._entries: dict[AddressKey, KnownAddress] = {}
        self._new: list[set[AddressKey]] = [set() for _ in range(NEW_BUCKET_COUNT)]
        self._tried: list[set[AddressKey]] = [set() for _ in range(TRIED_BUCKET_COUNT)]

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def get(self, ip: str, port: int) -> KnownAddress | None:
        return self._entries.get((ip, port))

    @property
    def new_count(self) -> int:
        return sum(len(bucket) for bucket in self._new)

    @property
    def tried_count(self) -> int:
        return sum(len(bucket) for bucket in self._tried)

    def fill(self) -> Fills:
        """The new and tried tables against their bucket capacity."""
        return {
            "addresses_new": Fill(self.new_count, NEW_BUCKET_COUNT * BUCKET_SIZE),
            "addresses_tried": Fill(self.tried_count, TRIED_BUCKET_COUNT * BUCKET_SIZE),
        }

    def _now(self) -> int:
        return int(self._clock())

    def _hash(self, *parts: str) -> int:
        return int.from_bytes(sha256(self.secret + "|".join(parts).encode())[:8], "little")

    def new_bucket(self, ip: str, source: str) -> int:
        source_group = address_group(source)
        slot = self._hash("new", address_group(ip), source_group) % NEW_BUCKETS_PER_SOURCE_GROUP
        return self._hash("new", source_group, str(slot)) % NEW_BUCKET_COUNT

    def tried_bucket(self, ip: str, port: int) -> int:
        slot = self._hash("tried", f"{ip}:{port}") % TRIED_BUCKETS_PER_GROUP
        return self._hash("tried", address_group(ip), str(slot)) % TRIED_BUCKET_COUNT

    def add(self, addresses: Iterable[NetAddress], source: str) -> int:
        """Learn of `addresses` from the peer at IP `source`; returns how many were new to us."""
        now = self._now()
        added = 0
        for address in addresses:
            if address.port == 0 or not self.routable(address.ip):
                continue
            last_seen = address.last_seen if address.last_seen <= now + RECENT_ATTEMPT else now
            known = self._entries.get((address.ip, address.port))
            if known is not None:
                known.last_seen = max(known.last_seen, last_seen)
                known.services |= address.services
                continue
            entry = KnownAddress(address.ip, address.port, address.services, last_seen, source)
            self._insert_new(entry, now)
            added += 1
        return added

    def attempt(self, ip: str, port: int) -> None:
        """We are dialling this address (a failure unless good() follows)."""
        entry = self._entries.get((ip, port))
        if entry is not None:
            entry.last_attempt = self._now()
            entry.attempts += 1

    def good(self, ip: str, port: int, services: int = 0) -> None:
        """An outbound connection to this address completed its handshake: move it to the tried table."""
        now = self._now()
        entry = self._entries.get((ip, port))
        if entry is None:
            entry = KnownAddress(ip, port, services, now, source=ip)
            self._entries[entry.key] = entry
        elif not entry.tried:
            self._new[self.new_bucket(entry.ip, entry.source)].discard(entry.key)
        entry.services |= services
        entry.last_seen = entry.last_success = now
        entry.attempts = 0
        if not entry.tried:
            self._insert_tried(entry, now)

    def select(self, exclude: Callable[[KnownAddress], bool] | None = None) -> KnownAddress | None:
        """An address to dial, or None when there is none left once `exclude` has had its say."""
        now = self._now()
        tried = [self._entries[k] for bucket in self._tried for k in bucket]
        new = [self._entries[k] for bucket in self._new for k in bucket]
        if exclude is not None:
            tried = [e for e in tried if not exclude(e)]
            new = [e for e in new if not exclude(e)]
        if not tried and not new:
            return None
        table = tried if tried and (not new or self._rng.random() < TRIED_BIAS) else new
        return self._rng.choices(table, weights=[e.chance(now) for e in table])[0]

    def sample_for_gossip(self, limit: int = MAX_ADDR) -> list[NetAddress]:
        """A random sample to answer getaddr with: at most GETADDR_PERCENT of the book, terrible ones left out."""
        now = self._now()
        usable = [e for e in self._entries.values() if not e.is_terrible(now) and self.routable(e.ip)]
        count = min(limit, len(usable), max(math.ceil(len(usable) * GETADDR_PERCENT / 100), GETADDR_MIN))
        return [e.net_address() for e in self._rng.sample(usable, count)]

    def _insert_new(self, entry: KnownAddress, now: int) -> None:
        bucket = self._new[self.new_bucket(entry.ip, entry.source)]
        if len(bucket) >= BUCKET_SIZE:
            victim = self._worst(bucket, now)
            bucket.discard(victim)
            del self._entries[victim]
        entry.tried = False
        bucket.add(entry.key)
        self._entries[entry.key] = entry

    def _insert_tried(self, entry: KnownAddress, now: int) -> None:
        bucket = self._tried[self.tried_bucket(entry.ip, entry.port)]
        if len(bucket) >= BUCKET_SIZE:
            stalest = self._entries[min(bucket, key=lambda k: self._entries[k].last_success)]
            bucket.discard(stalest.key)
            self._insert_new(stalest, now)  # pushed out of tried, but still worth remembering
        entry.tried = True
        bucket.add(entry.key)
        self._entries[entry.key] = entry

    def _worst(self, bucket: set[AddressKey], now: int) -> AddressKey:
        entries = [self._entries[k] for k in bucket]
        terrible = [e for e in entries if e.is_terrible(now)]
        return (terrible[0] if terrible else min(entries, key=lambda e: e.last_seen)).key

    def save(self, path: Path) -> None:
        """Write the book to `path` atomically."""
        document = {
            "version": FILE_FORMAT_VERSION,
            "secret": self.secret.hex(),
            "addresses": [asdict(e) for e in self._entries.values()],
        }
        write_atomically(path, json.dumps(document, separators=(",", ":")).encode())

    @classmethod
    def load(
        cls,
        path: Path,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        routable: Callable[[str], bool] = is_routable,
    ) -> AddressBook:
        """The book saved at `path`; an empty one if there is none, or if it is unreadable (logged).

        Untried addresses `routable` refuses are dropped: a book saved before the rule may hold them.
        """
        try:
            with open(path, "rb") as file:
                data = file.read(MAX_FILE_SIZE + 1)
        except FileNotFoundError:
            return cls(clock=clock, rng=rng, routable=routable)
        except OSError as exc:
            log.warning("cannot read address book %s (%s); starting with an empty one", path, exc)
            return cls(clock=clock, rng=rng, routable=routable)
        try:
            return cls._parse(data, clock, rng, routable)
        except ValueError as exc:
            log.warning("address book %s is corrupt (%s); starting with an empty one", path, exc)
            return cls(clock=clock, rng=rng, routable=routable)

    @classmethod
    def _parse(
        cls, data: bytes, clock: Callable[[], float], rng: random.Random | None, routable: Callable[[str], bool]
    ) -> AddressBook:
        if len(data) > MAX_FILE_SIZE:
            raise ValueError(f"file is larger than {MAX_FILE_SIZE} bytes")
        document = json.loads(data)
        if not isinstance(document, dict) or document.get("version") != FILE_FORMAT_VERSION:
            raise ValueError(f"not a version {FILE_FORMAT_VERSION} address book")
        secret = _typed(document, "secret", str)
        book = cls(bytes.fromhex(secret), clock=clock, rng=rng, routable=routable)
        now = book._now()
        for item in _typed(document, "addresses", list):
            entry = _entry_from_json(item)
            if not entry.tried and not book.routable(entry.ip):
                continue
            if entry.key in book._entries:
                raise ValueError(f"address {entry.ip} port {entry.port} appears twice")
            if entry.tried:
                book._insert_tried(entry, now)
            else:
                book._insert_new(entry, now)
        return book


def _typed(obj: Any, name: str, kind: type) -> Any:
    if not isinstance(obj, dict):
        raise ValueError(f"expected an object, got {type(obj).__name__}")
    value = obj.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(f"{name!r} must be {kind.__name__}, got {value!r:.40}")
    return value


def _entry_from_json(item: Any) -> KnownAddress:
    ip = canonical_ip(_typed(item, "ip", str))
    source = canonical_ip(_typed(item, "source", str))
    numbers = {
        name: _typed(item, name, int)
        for name in ("port", "services", "last_seen", "last_attempt", "last_success", "attempts")
    }
    if not 1 <= numbers["port"] <= 65535 or min(numbers.values()) < 0:
        raise ValueError(f"address {ip} has an out-of-range number")
    return KnownAddress(ip=ip, source=source, tried=_typed(item, "tried", bool), **numbers)
