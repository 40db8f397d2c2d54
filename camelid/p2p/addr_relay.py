"""Address gossip (whitepaper 2.1.1): getaddr answers, learning from addr, relaying fresh announcements.

As Bitcoin: a getaddr is answered only for inbound peers, once per connection, so that a node cannot
be fingerprinted by its book. Each peer may feed the book only so many addresses per second (its
addr bucket); only addresses the book's routability rule takes are learnt or passed on. An addr of
at most ADDR_ANNOUNCEMENT_MAX addresses is an announcement: its addresses heard of in the last
ADDR_FRESH seconds go on to ADDR_RELAY_FANOUT random other peers that are not known to have them.
A new inbound peer's own listening address is learnt and relayed the same way.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from camelid.p2p.addrbook import AddressBook
from camelid.p2p.messages import Addr, GetAddr, NetAddress, Version
from camelid.p2p.peer import Direction, Peer

ADDR_ANNOUNCEMENT_MAX = 10  # an addr this small is an announcement worth relaying ...
ADDR_FRESH = 600  # ... for its addresses heard of in the last ten minutes ...
ADDR_RELAY_FANOUT = 2  # ... to this many random peers, as Bitcoin


class AddressRelay:
    """The getaddr/addr handlers over `book`, relaying to the peers `ready_peers` returns."""

    def __init__(self, book: AddressBook, ready_peers: Callable[[], list[Peer]]) -> None:
        self.book = book
        self._ready_peers = ready_peers
        self._rng = random.Random()

    def on_handshake(self, peer: Peer, version: Version) -> None:
        """Mark a new outbound peer's address good and ask it for more; learn a new inbound peer's listening one."""
        if peer.direction is Direction.OUTBOUND:
            self.book.good(peer.host, peer.port, version.services)
            peer.send(GetAddr())
        elif version.listen_port:
            address = NetAddress(peer.host, version.listen_port, version.services, int(time.time()))
            peer.known_addresses.add((address.ip, address.port))
            if self.book.add([address], source=peer.host):  # refused (so not relayed) unless routable
                self._relay([address], origin=peer)

    async def on_getaddr(self, peer: Peer, _: GetAddr) -> None:
        if peer.direction is Direction.OUTBOUND or peer.answered_getaddr:
            return
        peer.answered_getaddr = True
        addresses = self.book.sample_for_gossip()
        for address in addresses:
            peer.known_addresses.add((address.ip, address.port))
        peer.send(Addr(tuple(addresses)))

    async def on_addr(self, peer: Peer, addr: Addr) -> None:
        accepted = []
        for address in addr.addresses:
            if not peer.addr_tokens.take():
                break
            peer.known_addresses.add((address.ip, address.port))
            if self.book.routable(address.ip):
                accepted.append(address)
        self.book.add(accepted, source=peer.host)
        if len(addr.addresses) <= ADDR_ANNOUNCEMENT_MAX:
            now = time.time()
            self._relay([a for a in accepted if now - a.last_seen < ADDR_FRESH], origin=peer)

    def _relay(self, addresses: list[NetAddress], origin: Peer) -> None:
        if not addresses:
            return
        others = [p for p in self._ready_peers() if p is not origin]
        for target in self._rng.sample(others, min(ADDR_RELAY_FANOUT, len(others))):
            unknown = [a for a in addresses if target.known_addresses.add((a.ip, a.port))]
            if unknown:
                target.send(Addr(tuple(unknown)))
