"""PeerManagers talking over real TCP on 127.0.0.1: handshake, pings, gossip, routing and misbehaviour."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import pytest

from camelid.core.params import get_params
from camelid.crypto.keys import PrivateKey
from camelid.p2p.auth import INITIATOR, sign_handshake
from camelid.p2p.errors import ProtocolViolation
from camelid.p2p.manager import PEERS_FILENAME, P2PSettings, PeerManager
from camelid.p2p.messages import (
    PROTOCOL_VERSION,
    Directed,
    NetAddress,
    ServiceFlags,
    TxMessage,
    Verack,
    Version,
)
from camelid.p2p.peer import Direction, Peer
from camelid.p2p.wire import FrameDecoder, encode_frame

REGTEST = get_params("regtest")
LOCALHOST = "127.0.0.1"
IMPOSTOR = "127.0.0.2"  # discouragement is per IP: an impostor must not lock the honest nodes out
pytestmark = pytest.mark.timeout(60)


def settings(**changes: object) -> P2PSettings:
    """Settings for a test node: a fresh identity, any free port, and timers short enough for tests."""
    base = P2PSettings(
        params=REGTEST,
        node_key=PrivateKey.generate(),
        bind=LOCALHOST,
        port=0,
        handshake_timeout=2.0,
        ping_interval=0.05,
        dial_interval=0.05,
    )
    return replace(base, **changes)


def at(manager: PeerManager) -> tuple[str, int]:
    assert manager.listen_port is not None
    return (LOCALHOST, manager.listen_port)


@contextlib.asynccontextmanager
async def running(node_settings: P2PSettings, best_height: Callable[[], int] = lambda: 0) -> AsyncIterator[PeerManager]:
    manager = PeerManager(node_settings, best_height)
    task = asyncio.create_task(manager.run())
    await manager.wait_started()
    try:
        yield manager
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def eventually(condition: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def connected_to(manager: PeerManager, other: PeerManager) -> bool:
    return any(info.node_id == other.node_id for info in manager.peers())


async def raw_client(
    manager: PeerManager, source: str = LOCALHOST
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(*at(manager), local_addr=(source, 0))


async def read_until_closed(reader: asyncio.StreamReader) -> bytes:
    received = b""
    async with asyncio.timeout(5):
        while chunk := await reader.read(65536):
            received += chunk
    return received


async def test_handshake_exchanges_identity_services_models_and_height():
    model = b"\x42" * 32
    async with (
        running(settings(services=ServiceFlags.FULL_NODE | ServiceFlags.COMPUTE, models=(model,)), lambda: 7) as a,
        running(settings(connect=(at(a),), listen=False, user_agent="/test:1/")) as b,
    ):
        await eventually(lambda: connected_to(a, b) and connected_to(b, a))
        [b_seen_by_a] = a.peers()
        [a_seen_by_b] = b.peers()
    assert b_seen_by_a.direction is Direction.INBOUND
    assert b_seen_by_a.user_agent == "/test:1/"
    assert b_seen_by_a.protocol_version == PROTOCOL_VERSION
    assert a_seen_by_b.direction is Direction.OUTBOUND
    assert (a_seen_by_b.host, a_seen_by_b.port) == at(a)
    assert a_seen_by_b.services == ServiceFlags.FULL_NODE | ServiceFlags.COMPUTE
    assert a_seen_by_b.models == (model,)
    assert a_seen_by_b.best_height == 7
    assert a_seen_by_b.connected_since <= time.time()


async def test_pings_measure_latency_and_count_traffic():
    async with running(settings()) as a, running(settings(connect=(at(a),), listen=False)) as b:
        await eventually(lambda: b.peers() and b.peers()[0].latency is not None and a.peers()[0].latency is not None)
        [info] = b.peers()
        assert 0 < info.latency < 1
        assert info.bytes_sent > 0 and info.bytes_received > 0
        before = info.bytes_received
        await eventually(lambda: b.peers()[0].bytes_received > before)  # pongs and pings keep coming


async def test_a_node_of_another_network_is_refused_without_being_discouraged(caplog):
    caplog.set_level(logging.INFO, logger="camelid.p2p")
    other_network = replace(REGTEST, name="othernet")  # same magic, so the refusal comes from version
    async with running(settings()) as a, running(settings(params=other_network, connect=(at(a),), listen=False)):
        await eventually(lambda: "wrong-network" in caplog.text)
        assert a.peers() == []
        assert not a.bans.is_discouraged(LOCALHOST)


def raw_version(protocol_version: int = PROTOCOL_VERSION, node_id: bytes | None = None) -> Version:
    node_id = PrivateKey.generate().public_key.to_bytes() if node_id is None else node_id
    return Version("regtest", protocol_version, 1, 0, node_id, (), "/raw/", int(time.time()), 0, 1, os.urandom(32))


async def raw_handshake(
    manager: PeerManager, key: PrivateKey, claimed_id: bytes | None = None, source: str = LOCALHOST
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Dial `manager` from `source` as `claimed_id` (by default key's own id) and sign the handshake with `key`."""
    reader, writer = await raw_client(manager, source)
    ours = raw_version(node_id=key.public_key.to_bytes() if claimed_id is None else claimed_id)
    writer.write(encode_frame(REGTEST.magic, ours))
    decoder = FrameDecoder(REGTEST.magic)
    theirs: list[Version] = []
    while not theirs:
        theirs = [m for m in decoder.feed(await reader.read(65536)) if isinstance(m, Version)]
    signature = sign_handshake(key, REGTEST.magic, ours, theirs[0], INITIATOR)
    writer.write(encode_frame(REGTEST.magic, Verack(signature)))
    return reader, writer


async def test_a_peer_with_an_obsolete_protocol_version_is_refused(caplog):
    caplog.set_level(logging.INFO, logger="camelid.p2p")
    async with running(settings()) as a:
        reader, writer = await raw_client(a)
        writer.write(encode_frame(REGTEST.magic, raw_version(protocol_version=0)))
        received = await read_until_closed(reader)
        writer.close()
        [theirs] = list(FrameDecoder(REGTEST.magic).feed(received))  # their version, and no verack
        assert isinstance(theirs, Version)
        assert "obsolete-version" in caplog.text
        assert not a.bans.is_discouraged(LOCALHOST)


async def test_a_silent_connection_is_dropped_when_the_handshake_times_out(caplog):
    caplog.set_level(logging.INFO, logger="camelid.p2p")
    async with running(settings(handshake_timeout=0.2)) as a:
        reader, writer = await raw_client(a)
        await read_until_closed(reader)
        writer.close()
        assert "handshake timed out" in caplog.text
        assert not a.bans.is_discouraged(LOCALHOST)


async def test_a_peer_that_stops_answering_pings_is_dropped(caplog):
    caplog.set_level(logging.INFO, logger="camelid.p2p")
    async with running(settings(ping_timeout=0.2)) as a:
        reader, writer = await raw_handshake(a, PrivateKey.generate())
        await eventually(lambda: a.peers())
        received = list(FrameDecoder(REGTEST.magic).feed(await read_until_closed(reader)))
        writer.close()
        assert {m.command for m in received} <= {"verack", "ping"}
        assert any(m.command == "ping" for m in received)
        assert "no pong" in caplog.text


async def test_inbound_connections_beyond_the_limit_are_refused(caplog):
    caplog.set_level(logging.INFO, logger="camelid.p2p")
    async with running(settings(max_inbound=1)) as a, running(settings(connect=(at(a),), listen=False)) as b:
        await eventually(lambda: connected_to(a, b))
        reader, writer = await raw_client(a)
        assert await read_until_closed(reader) == b""
        writer.close()
        assert "full" in caplog.text
        assert connected_to(a, b)


async def test_directed_messages_beyond_a_peers_rate_are_dropped():
    limited = settings(directed_burst=3, directed_rate=0.001)
    async with running(limited) as b, running(settings(connect=(at(b),), listen=False)) as a:
        received: list[bytes] = []

        async def on_output(peer: Peer, message: Directed) -> None:
            received.append(message.payload)

        b.register_directed_handler("output", on_output)
        await eventually(lambda: connected_to(a, b))
        for i in range(6):
            a.send_directed(b.node_id, "output", bytes([i]))
        await eventually(lambda: len(received) == 3)
        await asyncio.sleep(0.1)
        assert received == [b"\x00", b"\x01", b"\x02"]
        assert connected_to(b, a)  # the excess is dropped, not punished


async def test_a_node_that_dials_itself_notices_and_does_not_retry(caplog):
    caplog.set_level(logging.INFO, logger="camelid.p2p")
    async with running(settings()) as a:
        a.book.add([NetAddress(LOCALHOST, a.listen_port, 1, int(time.time()))], source=LOCALHOST)
        await eventually(lambda: "self-connection" in caplog.text)
        await asyncio.sleep(0.2)
        assert a.peers() == []
        assert caplog.text.count("self-connection") == 2  # once for each end of the one connection


async def test_getaddr_gossip_lets_a_third_node_find_a_fourth():
    async with running(settings()) as b, running(settings(connect=(at(b),))) as d:
        await eventually(lambda: connected_to(b, d))
        assert at(d) in b.book  # learnt from d's version: its address and listening port
        async with running(settings(addnode=(at(b),))) as c:
            await eventually(lambda: at(d) in c.book)  # c's getaddr to b returned d
            await eventually(lambda: connected_to(c, d))  # and c dialled d from its book
            assert c.book.get(*at(d)).tried


async def test_a_directed_message_is_forwarded_across_two_hops_once():
    async with (
        running(settings()) as b,
        running(settings(connect=(at(b),), listen=False)) as a,
        running(settings(connect=(at(b),), listen=False)) as c,
    ):
        received: list[tuple[Peer, Directed]] = []

        async def on_offer(peer: Peer, message: Directed) -> None:
            received.append((peer, message))

        c.register_directed_handler("joboffer", on_offer)
        b.register_directed_handler("joboffer", on_offer)  # must not fire: b only forwards
        await eventually(lambda: len(b.peers()) == 2 and a.peers() and c.peers())

        message_id = a.send_directed(c.node_id, "joboffer", b"offer", hops=1)
        await eventually(lambda: received)
        [(via, message)] = received
        assert message.sender == a.node_id and message.recipient == c.node_id
        assert message.message_id == message_id and message.payload == b"offer"
        assert message.hops_left == 0
        assert via.node_id == b.node_id

        [b_info] = a.peers()
        a.send(a.peer(b_info.id), replace(message, hops_left=3))  # the same message id again
        a.send_directed(c.node_id, "joboffer", b"too far", hops=0)  # b may not forward it
        a.send_directed(c.node_id, "joboffer", b"last")
        await eventually(lambda: len(received) == 2)
        await asyncio.sleep(0.1)
        assert [m.payload for _, m in received] == [b"offer", b"last"]


async def test_junk_from_one_connection_is_punished_while_an_honest_peer_carries_on(caplog):
    caplog.set_level(logging.INFO, logger="camelid.p2p")
    async with running(settings()) as a, running(settings(connect=(at(a),), listen=False)) as honest:
        await eventually(lambda: connected_to(a, honest))
        [before] = a.peers()

        reader, writer = await raw_client(a)
        writer.write(os.urandom(64))
        await read_until_closed(reader)  # returns only once a has closed the junk connection
        writer.close()
        assert "protocol violation (bad-magic)" in caplog.text
        assert a.bans.is_discouraged(LOCALHOST)

        reader, writer = await raw_client(a)  # a discouraged address is refused before any message
        assert await read_until_closed(reader) == b""
        writer.close()
        assert "banned or discouraged" in caplog.text

        await eventually(lambda: a.peers()[0].bytes_received > before.bytes_received + 100)
        [after] = a.peers()
        assert after.id == before.id and after.latency is not None
        assert connected_to(honest, a)


async def test_handlers_receive_messages_and_may_punish_the_sender(caplog):
    caplog.set_level(logging.INFO, logger="camelid.p2p")
    async with running(settings()) as a, running(settings(connect=(at(a),), listen=False)) as b:
        seen: list[bytes] = []

        async def on_tx(peer: Peer, message: TxMessage) -> None:
            if message.tx == b"crash":
                raise RuntimeError("handler bug")
            if message.tx == b"invalid":
                raise ProtocolViolation("bad-tx")
            seen.append(message.tx)

        a.register_handler("tx", on_tx)
        await eventually(lambda: connected_to(a, b))
        assert b.broadcast(TxMessage(b"crash")) == 1
        assert b.broadcast(TxMessage(b"good")) == 1
        await eventually(lambda: seen == [b"good"])
        assert connected_to(a, b)  # our own handler's bug is not the peer's fault
        assert "tx handler failed" in caplog.text

        b.broadcast(TxMessage(b"invalid"))
        await eventually(lambda: not a.peers())
        assert a.bans.is_discouraged(LOCALHOST)


async def test_handshakes_prove_node_ids_and_a_peer_may_sign_only_for_its_own(caplog):
    caplog.set_level(logging.INFO, logger="camelid.p2p")
    async with running(settings()) as a, running(settings(connect=(at(a),), listen=False)) as b:
        await eventually(lambda: connected_to(a, b) and connected_to(b, a))
        assert all(peer.authenticated for peer in a._ready_peers())

        honest_key = PrivateKey.generate()
        reader, writer = await raw_handshake(a, honest_key)
        await eventually(lambda: len(a.peers()) == 2)
        writer.close()

        # An impostor claims b's node id, but can only sign with its own key.
        reader, writer = await raw_handshake(a, PrivateKey.generate(), claimed_id=b.node_id, source=IMPOSTOR)
        received = list(FrameDecoder(REGTEST.magic).feed(await read_until_closed(reader)))
        writer.close()
        assert {m.command for m in received} <= {"verack"}  # its own verack, then nothing: dropped
        assert "bad-handshake-signature" in caplog.text
        assert a.bans.is_discouraged(IMPOSTOR) and not a.bans.is_discouraged(LOCALHOST)
        assert [info.node_id for info in a.peers()] == [b.node_id]  # the real b is still a's only b


async def test_directed_messages_for_a_node_never_reach_an_impostor_of_it():
    """Routing trusts a direct peer's node id: an impostor of b that connects before b must not draw b's messages."""
    b_settings = settings(listen=False)
    async with running(settings()) as a:
        reader, writer = await raw_handshake(a, PrivateKey.generate(), claimed_id=b_settings.node_id, source=IMPOSTOR)
        async with running(replace(b_settings, connect=(at(a),))) as b:
            received: list[bytes] = []

            async def on_offer(peer: Peer, message: Directed) -> None:
                received.append(message.payload)

            b.register_directed_handler("joboffer", on_offer)
            await eventually(lambda: connected_to(a, b))
            a.send_directed(b.node_id, "joboffer", b"for b only")
            await eventually(lambda: received == [b"for b only"])
        writer.close()


def test_handlers_cannot_take_over_built_in_or_unknown_commands():
    manager = PeerManager(settings())

    async def handler(peer: Peer, message: object) -> None:
        return None

    manager.register_handler("inv", handler)
    for command, problem in [("inv", "already registered"), ("ping", "peer manager"), ("reject", "unknown")]:
        with pytest.raises(ValueError, match=problem):
            manager.register_handler(command, handler)


async def test_ban_drops_the_peer_and_unban_lets_it_back():
    async with running(settings()) as a, running(settings(connect=(at(a),), listen=False)) as b:
        await eventually(lambda: connected_to(a, b))
        a.ban(LOCALHOST, 3600)
        assert set(a.banned()) == {LOCALHOST}
        await eventually(lambda: not a.peers())
        await asyncio.sleep(0.2)  # b keeps redialling and keeps being refused
        assert not a.peers()
        assert a.unban(LOCALHOST)
        assert not a.unban(LOCALHOST)
        await eventually(lambda: connected_to(a, b))


async def test_disconnect_closes_one_peer(tmp_path):
    async with running(settings(datadir=tmp_path)) as a, running(settings(connect=(at(a),), listen=False)) as b:
        await eventually(lambda: connected_to(b, a))
        [info] = b.peers()
        assert b.disconnect(info.id)
        assert not b.disconnect(info.id + 1000)
        await eventually(lambda: b.peers() and b.peers()[0].id != info.id)  # the --connect peer is redialled


async def test_the_address_book_is_saved_at_shutdown_and_reloaded(tmp_path):
    async with running(settings()) as a, running(settings(datadir=tmp_path, addnode=(at(a),), listen=False)) as b:
        await eventually(lambda: connected_to(b, a))
    reloaded = PeerManager(settings(datadir=tmp_path))
    assert (tmp_path / PEERS_FILENAME).exists()
    assert reloaded.book.get(*at(a)).tried


async def test_ready_listeners_hear_of_each_new_peer_once_even_when_another_listener_fails(caplog):
    caplog.set_level(logging.INFO, logger="camelid.p2p")
    heard: list[bytes | None] = []

    def broken(peer: Peer) -> None:
        raise RuntimeError("listener bug")

    async with running(settings()) as a:
        a.add_ready_listener(broken)
        a.add_ready_listener(lambda peer: heard.append(peer.node_id))
        async with running(settings(connect=(at(a),), listen=False)) as b:
            await eventually(lambda: connected_to(a, b))
            await eventually(lambda: heard == [b.node_id])
            assert "ready listener" in caplog.text and "listener bug" in caplog.text
            assert connected_to(a, b)  # the failing listener did not cost the peer
            await asyncio.sleep(0.2)  # pings go back and forth; the listener is not called again
            assert heard == [b.node_id]


async def test_stopping_with_inbound_peers_connected_logs_no_error(caplog):
    caplog.set_level(logging.INFO)
    server = PeerManager(settings(), lambda: 0)
    serving = asyncio.create_task(server.run())
    await server.wait_started()
    async with running(settings(connect=(at(server),), listen=False)) as client:
        await eventually(lambda: connected_to(server, client))
        serving.cancel()  # the server stops while its inbound peer is still connected
        await asyncio.gather(serving, return_exceptions=True)
        await asyncio.sleep(0.05)  # asyncio reports a failed stream callback on a later loop iteration
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
