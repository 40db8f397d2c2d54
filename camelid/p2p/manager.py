"""PeerManager: the node's P2P service -- listening, dialling, the connections' lifecycle, misbehaviour.

`await manager.run()` listens (unless told not to), keeps up to `max_outbound`
outbound connections (the --connect list only, when one is given; else the
--addnode list plus addresses drawn from the address book), and serves every
peer until cancelled, when it closes all connections and saves the address book.

Built in: the handshake (which proves each peer's node id, camelid.p2p.auth) and
ping/pong (latency per peer) here; getaddr/addr in camelid.p2p.addr_relay;
`directed` delivery and routing in camelid.p2p.routing. Everything else -- inv,
getdata, headers, blocks, transactions -- goes to handlers the relay/sync layer
registers with `register_handler`.

Misbehaviour rule (Bitcoin Core's discouragement, simplified): any
ProtocolViolation, from the decoder or raised by a handler, drops the message,
closes the connection and discourages the peer's IP for a day: we neither dial
it nor accept it. The other peers are unaffected. A handler that fails in any
other way is a bug of ours: it is logged and the peer stays connected.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from camelid import __version__
from camelid.core.fill import Fill, Fills
from camelid.core.params import ChainParams
from camelid.crypto.keys import PrivateKey
from camelid.p2p.addr_relay import AddressRelay
from camelid.p2p.addrbook import AddressBook, AddressKey, KnownAddress, is_routable, is_routable_or_loopback
from camelid.p2p.banlist import BanList
from camelid.p2p.errors import HandshakeRefused, ProtocolViolation
from camelid.p2p.messages import (
    DEFAULT_HOPS,
    MESSAGE_TYPES,
    MIN_PROTOCOL_VERSION,
    PROTOCOL_VERSION,
    Message,
    Ping,
    Pong,
    ServiceFlags,
    Version,
)
from camelid.p2p.messages.version import CHALLENGE_SIZE
from camelid.p2p.peer import MAX_SEND_BUFFER, Direction, Peer, PeerInfo
from camelid.p2p.routing import DirectedRouter
from camelid.p2p.schema import canonical_ip

log = logging.getLogger(__name__)

Handler = Callable[[Peer, Any], Awaitable[None]]

PEERS_FILENAME = "peers.json"
BANLIST_FILENAME = "banlist.json"
DEFAULT_USER_AGENT = f"/camelid:{__version__}/"
CONNECT_TIMEOUT = 5.0
REDIAL_DELAY = 60.0  # seconds before an address from the book is dialled again
SAVE_INTERVAL = 15 * 60.0  # the address book is also saved at shutdown


@dataclass(frozen=True)
class P2PSettings:
    """What the daemon's configuration tells the P2P service (--listen, --bind, --port, --connect, --addnode)."""

    params: ChainParams
    node_key: PrivateKey  # our identity; its public key is our node id, proven in every handshake
    datadir: Path | None = None  # holds peers.json and banlist.json; None keeps them in memory
    listen: bool = True
    bind: str = "0.0.0.0"
    port: int | None = None  # None: the network's default port; 0: any free port
    connect: tuple[tuple[str, int], ...] = ()  # when given, the only peers we dial
    addnode: tuple[tuple[str, int], ...] = ()  # peers we always keep connected, besides the book's
    max_outbound: int = 8
    max_inbound: int = 117
    services: int = ServiceFlags.FULL_NODE
    models: tuple[bytes, ...] = ()  # model ids we serve, announced in version
    user_agent: str = DEFAULT_USER_AGENT
    handshake_timeout: float = 30.0
    ping_interval: float = 120.0
    ping_timeout: float = 1200.0  # a ping unanswered this long disconnects the peer
    dial_interval: float = 5.0  # how often free outbound slots are filled
    directed_rate: float = 20.0  # directed messages per second one peer may send us, and may relay to us ...
    directed_burst: float = 200.0  # ... beyond an initial burst (camelid.p2p.routing)

    @property
    def node_id(self) -> bytes:
        """Our identity: the 33-byte compressed public key of node_key."""
        return self.node_key.public_key.to_bytes()

    @property
    def fixed_peers(self) -> tuple[AddressKey, ...]:
        """The peers to keep connected whatever the address book says."""
        return tuple((canonical_ip(host), port) for host, port in self.connect or self.addnode)


class PeerManager:
    """The P2P service: `await run()` in the node's event loop; `best_height` reports our chain's height."""

    def __init__(self, settings: P2PSettings, best_height: Callable[[], int] = lambda: 0) -> None:
        self.settings = settings
        self.node_id = settings.node_id
        datadir = settings.datadir
        # Regtest nodes all live on 127.0.0.1; elsewhere a loopback address from a peer points at the listener.
        routable = is_routable_or_loopback if settings.params.name == "regtest" else is_routable
        self.book = (
            AddressBook.load(datadir / PEERS_FILENAME, routable=routable) if datadir else AddressBook(routable=routable)
        )
        self.bans = BanList(datadir / BANLIST_FILENAME if datadir else None)
        self.listen_port: int | None = None  # the port actually bound, once run() has started
        self._best_height = best_height
        self._nonce = int.from_bytes(os.urandom(8), "little")
        self._peers: dict[int, Peer] = {}  # every open connection, handshake done or not
        self._next_peer_id = 1
        self._dialing: set[AddressKey] = set()
        self._own_addresses: set[AddressKey] = set()  # addresses that turned out to be ourselves
        self.addr_relay = AddressRelay(self.book, self._ready_peers)
        self.router = DirectedRouter(self.node_id, self._ready_peers)
        self._tasks: set[asyncio.Task[None]] = set()
        self._started = asyncio.Event()
        self._handlers: dict[str, Handler] = {
            "version": self._on_repeated_handshake,
            "verack": self._on_repeated_handshake,
            "ping": self._on_ping,
            "pong": self._on_pong,
            "getaddr": self.addr_relay.on_getaddr,
            "addr": self.addr_relay.on_addr,
            "directed": self.router.on_directed,
        }
        self._builtin = frozenset(self._handlers)
        self._ready_listeners: list[Callable[[Peer], None]] = []
        self._gone_listeners: list[Callable[[Peer], None]] = []

    # -- interface for the relay/sync layer and RPC --------------------------------------------------

    def register_handler(self, command: str, handler: Handler) -> None:
        """Have `await handler(peer, message)` called for every `command` message from a connected peer.

        A handler may raise ProtocolViolation to punish the peer for a message that is
        well-formed but invalid (a block that fails validation, say).
        """
        if command not in MESSAGE_TYPES:
            raise ValueError(f"unknown command {command!r}")
        if command in self._builtin:
            raise ValueError(f"{command!r} is handled by the peer manager itself")
        if command in self._handlers:
            raise ValueError(f"a handler for {command!r} is already registered")
        self._handlers[command] = handler

    def register_directed_handler(self, inner_command: str, handler: Handler) -> None:
        """Have `await handler(peer, directed)` called for directed messages to us with this inner command."""
        self.router.register_handler(inner_command, handler)

    def add_ready_listener(self, listener: Callable[[Peer], None]) -> None:
        """Have `listener(peer)` called once per connection, right after its handshake.

        Services whose state is not in blocks or the mempool (the job pool) use it to bring a new
        peer up to date, as Bitcoin's `mempool` message does for transactions.
        """
        self._ready_listeners.append(listener)

    def add_gone_listener(self, listener: Callable[[Peer], None]) -> None:
        """Have `listener(peer)` called once a connection that completed its handshake has closed, so that
        what a service holds for that peer (its orphan transactions) goes with it."""
        self._gone_listeners.append(listener)

    def send(self, peer: Peer, message: Message) -> None:
        """Queue `message` to `peer`; never blocks."""
        peer.send(message)

    def broadcast(self, message: Message, exclude: Collection[int] = ()) -> int:
        """Send `message` to every connected peer whose id is not in `exclude`; returns how many."""
        targets = [p for p in self._ready_peers() if p.id not in exclude]
        for peer in targets:
            peer.send(message)
        return len(targets)

    def send_directed(self, recipient: bytes, inner_command: str, payload: bytes, hops: int = DEFAULT_HOPS) -> bytes:
        """Start a directed message toward the node `recipient`; returns its message id (camelid.p2p.routing)."""
        return self.router.send(recipient, inner_command, payload, hops)

    @property
    def max_connections(self) -> int:
        return self.settings.max_inbound + self.settings.max_outbound

    def fill(self) -> Fills:
        """Connections with the bytes unsent on them, the address book, the discouraged IPs and the directed tables."""
        slots = self.max_connections
        unsent = sum(peer.unsent for peer in self._peers.values())
        return {
            "connections": Fill(len(self._peers), slots, unsent, slots * MAX_SEND_BUFFER),
            **self.book.fill(),
            "discouraged_ips": self.bans.discouraged_fill(),
            **self.router.fill(),
        }

    def peers(self) -> list[PeerInfo]:
        """Every peer that has completed its handshake, by id."""
        return [p.info() for p in sorted(self._ready_peers(), key=lambda p: p.id)]

    def peer(self, peer_id: int) -> Peer | None:
        return self._peers.get(peer_id)

    def disconnect(self, peer_id: int) -> bool:
        """Close the connection to a peer; False if there is no such peer."""
        peer = self._peers.get(peer_id)
        if peer is None:
            return False
        peer.close()
        return True

    def punish(self, peer: Peer, reason: str) -> None:
        """What a ProtocolViolation from a handler does, for a verdict reached after the handler returned."""
        log.warning("%r: protocol violation (%s); disconnecting, %s discouraged", peer, reason, peer.host)
        self.bans.discourage(peer.host)
        peer.close()

    def ban(self, ip: str, seconds: float) -> None:
        """Refuse `ip` for `seconds` (persisted) and drop any connection to it now."""
        self.bans.ban(ip, seconds)
        ip = canonical_ip(ip)
        for peer in list(self._peers.values()):
            if peer.host == ip:
                peer.close()

    def unban(self, ip: str) -> bool:
        return self.bans.unban(ip)

    def banned(self) -> dict[str, float]:
        """IP -> ban expiry (seconds since the epoch)."""
        return self.bans.banned()

    async def wait_started(self) -> None:
        """Return once run() is listening (when it listens) and dialling."""
        await self._started.wait()

    def save(self) -> None:
        if self.settings.datadir is not None:
            self.book.save(self.settings.datadir / PEERS_FILENAME)

    # -- the service ---------------------------------------------------------------------------------

    async def run(self) -> None:
        settings = self.settings
        server = None
        if settings.listen:
            port = settings.params.default_port if settings.port is None else settings.port
            server = await asyncio.start_server(self._accept, settings.bind, port)
            self.listen_port = server.sockets[0].getsockname()[1]
            log.info("P2P listening on %s port %d", settings.bind, self.listen_port)
        self._started.set()
        self._spawn(self.router.run(), "p2p-directed-announce")
        try:
            await self._keep_outbound()
        finally:
            if server is not None:
                server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self.save()

    async def _keep_outbound(self) -> None:
        saved_at = time.monotonic()
        while True:
            self._dial_missing()
            await asyncio.sleep(self.settings.dial_interval)
            if time.monotonic() - saved_at > SAVE_INTERVAL:
                self.save()
                saved_at = time.monotonic()

    def _dial_missing(self) -> None:
        outbound = {(p.host, p.port) for p in self._peers.values() if p.direction is Direction.OUTBOUND}
        busy = outbound | self._dialing
        for key in self.settings.fixed_peers:
            if key not in busy and not self.bans.refuses(key[0]):
                self._dial(key)
        if self.settings.connect:
            return
        listening_inbound = {
            (p.host, p.version.listen_port)
            for p in self._peers.values()
            if p.version is not None and p.direction is Direction.INBOUND
        }
        now = time.time()

        def unwanted(entry: KnownAddress) -> bool:
            return (
                entry.key in busy
                or entry.key in listening_inbound
                or entry.key in self._own_addresses
                or now - entry.last_attempt < REDIAL_DELAY
                or self.bans.refuses(entry.ip)
            )

        for _ in range(self.settings.max_outbound - len(outbound | self._dialing)):
            entry = self.book.select(exclude=unwanted)
            if entry is None:
                return
            busy.add(entry.key)
            self._dial(entry.key)

    def _dial(self, key: AddressKey) -> None:
        self._dialing.add(key)
        self._spawn(self._connect(key), f"p2p-dial-{key[0]}:{key[1]}")

    async def _connect(self, key: AddressKey) -> None:
        host, port = key
        try:
            self.book.attempt(host, port)
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    reader, writer = await asyncio.open_connection(host, port)
            except OSError as exc:
                log.debug("cannot connect to %s port %d: %s", host, port, exc)
                return
            peer = self._new_peer(reader, writer, key, Direction.OUTBOUND)
        finally:
            self._dialing.discard(key)
        await self._serve(peer)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None  # asyncio runs this callback as a task
        self._tasks.add(task)
        try:
            peername = writer.get_extra_info("peername")
            host = canonical_ip(peername[0]) if peername else None
            inbound = sum(p.direction is Direction.INBOUND for p in self._peers.values())
            if host is None or self.bans.refuses(host) or inbound >= self.settings.max_inbound:
                why = "gone" if host is None else "banned or discouraged" if self.bans.refuses(host) else "full"
                log.info("refusing inbound connection from %s: %s", host, why)
                writer.close()
                return
            await self._serve(self._new_peer(reader, writer, (host, peername[1]), Direction.INBOUND))
        except asyncio.CancelledError:
            # The node is stopping (run() cancels every connection). Ending normally rather than cancelled
            # keeps asyncio's stream-server callback from logging each inbound connection as an error.
            return
        finally:
            self._tasks.discard(task)

    def _new_peer(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, address: AddressKey, direction: Direction
    ) -> Peer:
        peer = Peer(
            self._next_peer_id,
            reader,
            writer,
            address,
            direction,
            self.settings.params.magic,
            directed_rate=self.settings.directed_rate,
            directed_burst=self.settings.directed_burst,
        )
        self._next_peer_id += 1
        return peer

    def _spawn(self, coroutine: Awaitable[None], name: str) -> None:
        task = asyncio.ensure_future(coroutine)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("P2P task %s failed", task.get_name(), exc_info=task.exception())

    async def _serve(self, peer: Peer) -> None:
        """Run one connection from handshake to close; every way it can end is handled here."""
        self._peers[peer.id] = peer
        pinger: asyncio.Task[None] | None = None
        try:
            version = await peer.handshake(
                self._our_version(), self._check_version, self.settings.handshake_timeout, self.settings.node_key
            )
            log.info("%r connected: %s height %d", peer, version.user_agent, version.best_height)
            self._on_handshake(peer, version)
            pinger = asyncio.create_task(self._ping_loop(peer), name=f"p2p-ping-{peer.id}")
            while True:
                await self._dispatch(peer, await peer.read())
        except ProtocolViolation as violation:
            self.punish(peer, violation.reason)
        except HandshakeRefused as refusal:
            log.info("%r: handshake refused: %s", peer, refusal.reason)
            if refusal.reason == "self-connection" and peer.direction is Direction.OUTBOUND:
                self._own_addresses.add((peer.host, peer.port))
        except TimeoutError:
            log.info("%r: handshake timed out", peer)
        except (EOFError, OSError) as exc:
            log.info("%r: disconnected (%s)", peer, exc or type(exc).__name__)
        finally:
            if pinger is not None:
                pinger.cancel()
            del self._peers[peer.id]
            peer.close()
            if peer.version is not None:
                self._notify("gone", self._gone_listeners, peer)
            await peer.wait_closed()

    def _our_version(self) -> Version:
        settings = self.settings
        return Version(
            network=settings.params.name,
            protocol_version=PROTOCOL_VERSION,
            services=int(settings.services),
            best_height=self._best_height(),
            node_id=self.node_id,
            models=settings.models,
            user_agent=settings.user_agent,
            timestamp=int(time.time()),
            listen_port=self.listen_port or 0,
            nonce=self._nonce,
            challenge=os.urandom(CHALLENGE_SIZE),
        )

    def _check_version(self, version: Version) -> None:
        if version.network != self.settings.params.name:
            raise HandshakeRefused("wrong-network")
        if version.protocol_version < MIN_PROTOCOL_VERSION:
            raise HandshakeRefused("obsolete-version")
        if version.nonce == self._nonce or version.node_id == self.node_id:
            raise HandshakeRefused("self-connection")

    def _on_handshake(self, peer: Peer, version: Version) -> None:
        self.addr_relay.on_handshake(peer, version)
        self._notify("ready", self._ready_listeners, peer)

    @staticmethod
    def _notify(kind: str, listeners: list[Callable[[Peer], None]], peer: Peer) -> None:
        for listener in listeners:
            try:
                listener(peer)
            except Exception:  # one service's bug must not cost the others their peer
                log.exception("%s listener %s failed for peer %d", kind, listener, peer.id)

    def _ready_peers(self) -> list[Peer]:
        return [p for p in self._peers.values() if p.version is not None and not p.closed]

    async def _ping_loop(self, peer: Peer) -> None:
        while not peer.closed:
            if peer.ping_overdue(self.settings.ping_timeout):
                log.info("%r: no pong for %.0f s, disconnecting", peer, self.settings.ping_timeout)
                peer.close()
                return
            if not peer.awaiting_pong:
                peer.send(Ping(peer.start_ping()))
            await asyncio.sleep(self.settings.ping_interval)

    async def _dispatch(self, peer: Peer, message: Message) -> None:
        handler = self._handlers.get(message.command)
        if handler is None:
            log.debug("%r: no handler for %s", peer, message.command)
            return
        try:
            await handler(peer, message)
        except ProtocolViolation:
            raise
        except Exception:
            log.exception("%r: %s handler failed", peer, message.command)

    # -- built-in handlers ---------------------------------------------------------------------------

    async def _on_repeated_handshake(self, peer: Peer, message: Message) -> None:
        raise ProtocolViolation(f"unexpected-message: {message.command} after the handshake")

    async def _on_ping(self, peer: Peer, ping: Ping) -> None:
        peer.send(Pong(ping.nonce))

    async def _on_pong(self, peer: Peer, pong: Pong) -> None:
        peer.pong_received(pong.nonce)
