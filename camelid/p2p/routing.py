"""Directed messages (whitepaper 2.1.2): delivering those addressed to us and routing the others, never flooding.

A node knows three kinds of route to a node id, and uses the first that exists:

1. a direct peer whose version carried that id;
2. a peer that announced the id as one of its own peers: every ANNOUNCE_INTERVAL, when its peer set
   changed, a node sends each peer a directed `neighbours` message (hops 0) listing the ids of its
   other peers, at most MAX_NEIGHBOURS;
3. the peer through which a directed message from that id last came (a reverse route, remembered
   for REVERSE_ROUTE_TTL seconds in a table of at most MAX_REVERSE_ROUTES ids).

A message to relay goes to one peer only, never back where it came from or to its sender; with no
route it is dropped. The one exception is a message this node starts itself for a recipient it has
no route to: it goes to each peer, and each delivers it only if it has a route of its own, so it
reaches three hops without anyone flooding it further. `hops_left` bounds every path.

Limits, checked before anything else is done with a message, so that junk cannot use up what honest
traffic needs (the excess is dropped, not punished):

- a message whose sender is the peer itself spends that peer's own bucket (`directed_rate` and
  `directed_burst` a second): nothing relayed, junk included, can crowd out what a peer says to us;
- a relayed message spends its sender's bucket (per sender id, over whichever link: one origin
  cannot exhaust a link), then the link's relay bucket, then the node's global relay bucket.

A message costs one token plus one per DIRECTED_TOKEN_BYTES of payload, so a link carrying 2 MB
payloads is bounded in bytes as well as in messages. A message naming us as its sender that we did
not start is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from camelid.core.fill import Fill, Fills
from camelid.p2p.errors import ProtocolViolation
from camelid.p2p.limits import KeyedBuckets, RecentSet, TokenBucket
from camelid.p2p.messages import DEFAULT_HOPS, MESSAGE_ID_SIZE, Directed
from camelid.p2p.peer import Peer
from camelid.p2p.schema import NODE_ID_SIZE

log = logging.getLogger(__name__)

Handler = Callable[[Peer, Any], Awaitable[None]]

NEIGHBOURS_COMMAND = "neighbours"
ANNOUNCE_INTERVAL = 2.0  # seconds between checks whether our peers need a new neighbours list
MAX_NEIGHBOURS = 256  # node ids one neighbours message may list
SEEN_DIRECTED = 100_000  # directed message ids remembered for duplicate suppression
MAX_REVERSE_ROUTES = 10_000
REVERSE_ROUTE_TTL = 600.0
DIRECTED_TOKEN_BYTES = 64 * 1024  # a message costs one token more per this many payload bytes
SENDER_RATE, SENDER_BURST = 5.0, 50.0  # relayed messages per second from one sender id, over all links
MAX_SENDERS = 10_000  # sender buckets kept; the least recently used goes first
GLOBAL_RELAY_RATE, GLOBAL_RELAY_BURST = 200.0, 1000.0  # relayed messages per second over all links


def message_cost(message: Directed) -> float:
    return 1.0 + len(message.payload) // DIRECTED_TOKEN_BYTES


class DirectedRouter:
    """Delivers, routes and rate-limits directed messages for a PeerManager (see the module doc)."""

    def __init__(self, node_id: bytes, ready_peers: Callable[[], list[Peer]]) -> None:
        self.node_id = node_id
        self._ready_peers = ready_peers
        self._handlers: dict[str, Handler] = {NEIGHBOURS_COMMAND: self._on_neighbours}
        self._seen = RecentSet(SEEN_DIRECTED)
        self._reverse: OrderedDict[bytes, tuple[int, float]] = OrderedDict()  # sender -> (peer id, expiry)
        self._senders = KeyedBuckets(SENDER_RATE, SENDER_BURST, MAX_SENDERS)
        self._global = TokenBucket(GLOBAL_RELAY_RATE, GLOBAL_RELAY_BURST)
        self._told: dict[int, tuple[bytes, ...]] = {}  # peer id -> the neighbours list it last got from us

    def fill(self) -> Fills:
        """The duplicate-suppression, reverse-route and sender-bucket tables."""
        return {
            "directed_ids": Fill(len(self._seen), self._seen.capacity),
            "reverse_routes": Fill(len(self._reverse), MAX_REVERSE_ROUTES),
            "directed_senders": Fill(len(self._senders), self._senders.capacity),
        }

    def register_handler(self, inner_command: str, handler: Handler) -> None:
        if inner_command in self._handlers:
            raise ValueError(f"a directed handler for {inner_command!r} is already registered")
        self._handlers[inner_command] = handler

    def send(self, recipient: bytes, inner_command: str, payload: bytes, hops: int = DEFAULT_HOPS) -> bytes:
        """Start a directed message toward `recipient`; returns its message id."""
        if recipient == self.node_id:
            raise ValueError("a directed message cannot be addressed to ourselves")
        message = Directed(self.node_id, recipient, hops, os.urandom(MESSAGE_ID_SIZE), inner_command, payload)
        message.to_payload()  # ValueError now, before anything is sent, if a field is out of bounds
        self._seen.add(message.message_id)
        hop = self._next_hop(message, came_from=None)
        targets = [hop] if hop is not None else self._ready_peers()  # no route: let each peer try its own
        if not targets:
            log.info("directed %s to %s: no peer to send it to", inner_command, recipient.hex())
        for peer in targets:
            peer.send(message)
        return message.message_id

    async def on_directed(self, peer: Peer, message: Directed) -> None:
        if not self._admit(peer, message) or not self._seen.add(message.message_id):
            return
        if message.sender == self.node_id:
            log.debug("%r: directed message in our name that we did not send, dropping", peer)
            return
        if message.sender != peer.node_id:
            self._learn_reverse_route(message.sender, peer)
        if message.recipient == self.node_id:
            handler = self._handlers.get(message.inner_command)
            if handler is None:
                sender = message.sender.hex()
                log.info("%r: directed %s from %s delivered, no handler for it", peer, message.inner_command, sender)
                return
            await handler(peer, message)
            return
        if message.hops_left == 0:
            return
        hop = self._next_hop(message, came_from=peer)
        if hop is None:
            log.debug("%r: directed %s to %s: no route, dropping", peer, message.inner_command, message.recipient.hex())
            return
        hop.send(replace(message, hops_left=message.hops_left - 1))

    def _admit(self, peer: Peer, message: Directed) -> bool:
        cost = message_cost(message)
        if message.sender == peer.node_id:
            admitted = peer.directed_tokens.take(cost)
        else:
            admitted = (
                self._senders.take(message.sender, cost) and peer.relay_tokens.take(cost) and self._global.take(cost)
            )
        if not admitted:
            log.debug("%r: directed rate limit exceeded (sender %s), dropping", peer, message.sender.hex())
        return admitted

    def _next_hop(self, message: Directed, came_from: Peer | None) -> Peer | None:
        """The one peer to pass `message` on to: by direct, announced or reverse route, else None."""
        recipient = message.recipient
        candidates = [
            p for p in self._ready_peers() if p is not came_from and p.node_id not in (message.sender, None)
        ]
        for peer in candidates:
            if peer.node_id == recipient:
                return peer
        for peer in candidates:
            if recipient in peer.neighbours:
                return peer
        route = self._reverse.get(recipient)
        if route is not None and route[1] > time.monotonic():
            return next((p for p in candidates if p.id == route[0]), None)
        return None

    def _learn_reverse_route(self, sender: bytes, peer: Peer) -> None:
        self._reverse[sender] = (peer.id, time.monotonic() + REVERSE_ROUTE_TTL)
        self._reverse.move_to_end(sender)
        if len(self._reverse) > MAX_REVERSE_ROUTES:
            self._reverse.popitem(last=False)

    # -- neighbours announcements --------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            self.announce()
            await asyncio.sleep(ANNOUNCE_INTERVAL)

    def announce(self) -> None:
        """Tell each peer the ids of our other peers, if they changed since we last told it."""
        ready = [p for p in self._ready_peers() if p.node_id is not None]
        told = {}
        for peer in ready:
            others = tuple(sorted(p.node_id for p in ready if p is not peer and p.node_id is not None))
            others = others[:MAX_NEIGHBOURS]
            told[peer.id] = others
            if self._told.get(peer.id, ()) != others:
                assert peer.node_id is not None
                message_id = os.urandom(MESSAGE_ID_SIZE)
                peer.send(Directed(self.node_id, peer.node_id, 0, message_id, NEIGHBOURS_COMMAND, b"".join(others)))
        self._told = told

    async def _on_neighbours(self, peer: Peer, message: Directed) -> None:
        if message.sender != peer.node_id:
            return  # only a peer itself says who its peers are
        payload = message.payload
        if len(payload) % NODE_ID_SIZE or len(payload) > MAX_NEIGHBOURS * NODE_ID_SIZE:
            raise ProtocolViolation(f"bad-neighbours: {len(payload)} bytes is not a list of node ids")
        peer.neighbours = frozenset(payload[i : i + NODE_ID_SIZE] for i in range(0, len(payload), NODE_ID_SIZE))
