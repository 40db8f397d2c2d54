"""One connection to another node: framing over TCP, the handshake, ping latency and traffic counters.

A Peer knows nothing of other peers; the PeerManager (camelid.p2p.manager)
decides what to do with the messages it reads. Sending never blocks: a frame is
queued on the transport, and a peer that does not drain its queue past
MAX_SEND_BUFFER is disconnected rather than allowed to grow our memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from camelid.crypto.keys import PrivateKey
from camelid.p2p.auth import INITIATOR, RESPONDER, handshake_signature_valid, sign_handshake
from camelid.p2p.errors import ProtocolViolation
from camelid.p2p.limits import RecentSet, TokenBucket
from camelid.p2p.messages import Message, Verack, Version
from camelid.p2p.wire import FrameDecoder, encode_frame

log = logging.getLogger(__name__)

READ_CHUNK = 64 * 1024
MAX_SEND_BUFFER = 16 << 20  # a few blocks' worth of unsent frames
SEND_HIGH_WATER = 1 << 20  # unsent bytes above which drain() waits: what one getdata may have in flight
KNOWN_ADDRESSES = 5000  # addresses remembered per peer, so gossip does not echo them back
ADDR_RATE = 0.1  # addresses per second a peer may feed our address book (as Bitcoin) ...
ADDR_BURST = 1000  # ... after an initial allowance of one full addr message


class Direction(enum.Enum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


@dataclass(frozen=True)
class PeerInfo:
    """A snapshot of one connected peer, for RPC `getpeerinfo` and the sync layer."""

    id: int
    host: str
    port: int
    direction: Direction
    node_id: bytes
    services: int
    models: tuple[bytes, ...]
    user_agent: str
    protocol_version: int
    best_height: int
    latency: float | None  # seconds of the last ping round trip; None before the first pong
    bytes_sent: int
    bytes_received: int
    connected_since: float  # seconds since the epoch


class Peer:
    """A TCP connection speaking the CamelidCoin protocol; `version` is set once the handshake is done.

    The handshake only completes when the peer has signed it with the key behind its node id
    (camelid.p2p.auth), so `node_id` is authenticated wherever it is not None.
    """

    def __init__(
        self,
        peer_id: int,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        address: tuple[str, int],
        direction: Direction,
        magic: bytes,
        *,
        directed_rate: float,
        directed_burst: float,
    ) -> None:
        self.id = peer_id
        self.direction = direction
        self.host, self.port = address
        self.magic = magic
        self.version: Version | None = None
        self.best_height = 0  # from the version message; the sync layer keeps it current
        self.latency: float | None = None
        self.bytes_sent = 0
        self.bytes_received = 0
        self.connected_since = time.time()
        self.answered_getaddr = False
        self.known_addresses = RecentSet(KNOWN_ADDRESSES)
        self.addr_tokens = TokenBucket(ADDR_RATE, ADDR_BURST)
        self.directed_tokens = TokenBucket(directed_rate, directed_burst)  # directed messages it sends us itself
        self.relay_tokens = TokenBucket(directed_rate, directed_burst)  # ... and those it relays from others
        self.neighbours: frozenset[bytes] = frozenset()  # node ids it says are its peers (camelid.p2p.routing)
        self._reader = reader
        self._writer = writer
        writer.transport.set_write_buffer_limits(high=SEND_HIGH_WATER)
        self._decoder = FrameDecoder(magic)
        self._pending: deque[Message] = deque()
        self._ping: tuple[int, float] | None = None  # nonce and monotonic send time of the unanswered ping

    def __repr__(self) -> str:
        return f"<Peer {self.id} {self.direction.value} {self.host}:{self.port}>"

    @property
    def node_id(self) -> bytes | None:
        """The peer's node id, proven by its handshake signature; None before the handshake completes."""
        return None if self.version is None else self.version.node_id

    @property
    def authenticated(self) -> bool:
        """Whether the peer has proven it holds the key of `node_id` (true once the handshake completes)."""
        return self.version is not None

    @property
    def closed(self) -> bool:
        return self._writer.is_closing()

    def send(self, message: Message) -> None:
        """Queue a message; never blocks. A peer with too much unsent data is disconnected."""
        if self.closed:
            return
        frame = encode_frame(self.magic, message)
        self._writer.write(frame)
        self.bytes_sent += len(frame)
        if self.unsent > MAX_SEND_BUFFER:
            log.warning("%r: send buffer over %d bytes, disconnecting", self, MAX_SEND_BUFFER)
            self.close()

    @property
    def unsent(self) -> int:
        """Bytes queued on the transport and not yet taken by the peer."""
        return self._writer.transport.get_write_buffer_size()

    async def drain(self) -> None:
        """Wait until the unsent data is below SEND_HIGH_WATER (at once if it is, or if the peer is gone)."""
        with contextlib.suppress(OSError):  # closed meanwhile: the caller looks at `closed`
            await self._writer.drain()

    async def read(self) -> Message:
        """The next message; ProtocolViolation on bad bytes, EOFError when the peer has closed."""
        while not self._pending:
            data = await self._reader.read(READ_CHUNK)
            if not data:
                raise EOFError("peer closed the connection")
            self.bytes_received += len(data)
            self._pending.extend(self._decoder.feed(data))
        return self._pending.popleft()

    async def handshake(
        self, ours: Version, check: Callable[[Version], None], timeout: float, node_key: PrivateKey
    ) -> Version:
        """Exchange version/verack within `timeout` seconds; `check` raises HandshakeRefused to refuse theirs.

        Our verack signs the handshake with `node_key` (whose id `ours` announces); a verack that does not
        sign it with the key of the node id the peer announced is a ProtocolViolation.
        """
        async with asyncio.timeout(timeout):
            self.send(ours)
            theirs = await self.read()
            if not isinstance(theirs, Version):
                raise ProtocolViolation(f"unexpected-message: {theirs.command} before version")
            check(theirs)
            outbound = self.direction is Direction.OUTBOUND
            initiator, responder = (ours, theirs) if outbound else (theirs, ours)
            our_role, their_role = (INITIATOR, RESPONDER) if outbound else (RESPONDER, INITIATOR)
            self.send(Verack(sign_handshake(node_key, self.magic, initiator, responder, our_role)))
            ack = await self.read()
            if not isinstance(ack, Verack):
                raise ProtocolViolation(f"unexpected-message: {ack.command} before verack")
            if not handshake_signature_valid(ack.signature, self.magic, initiator, responder, their_role):
                raise ProtocolViolation("bad-handshake-signature: verack not signed by the key of its node id")
        self.version = theirs
        self.best_height = theirs.best_height
        return theirs

    def start_ping(self) -> int:
        """Record a ping as sent now and return its nonce."""
        nonce = int.from_bytes(os.urandom(8), "little")
        self._ping = (nonce, time.monotonic())
        return nonce

    @property
    def awaiting_pong(self) -> bool:
        return self._ping is not None

    def ping_overdue(self, timeout: float) -> bool:
        return self._ping is not None and time.monotonic() - self._ping[1] > timeout

    def pong_received(self, nonce: int) -> None:
        """Take the latency from a pong that answers our outstanding ping; others are ignored."""
        if self._ping is not None and self._ping[0] == nonce:
            self.latency = time.monotonic() - self._ping[1]
            self._ping = None

    def info(self) -> PeerInfo:
        version = self.version
        if version is None:
            raise ValueError(f"{self!r} has not completed its handshake")
        return PeerInfo(
            id=self.id,
            host=self.host,
            port=self.port,
            direction=self.direction,
            node_id=version.node_id,
            services=version.services,
            models=version.models,
            user_agent=version.user_agent,
            protocol_version=version.protocol_version,
            best_height=self.best_height,
            latency=self.latency,
            bytes_sent=self.bytes_sent,
            bytes_received=self.bytes_received,
            connected_since=self.connected_since,
        )

    def close(self) -> None:
        self._writer.close()

    async def wait_closed(self) -> None:
        with contextlib.suppress(OSError):  # the peer went away first; closed is closed
            await self._writer.wait_closed()
