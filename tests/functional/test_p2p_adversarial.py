"""A real camelidd against a raw socket peer sending broken, hostile and oddly cut bytes.

Every misbehaving connection is dropped and its IP discouraged (refused from then
on); the node keeps answering RPC and an honest camelidd peer keeps syncing.
"""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

import pytest

from camelid.p2p.messages import BlockMessage, Ping, Pong

from .framework import TestNode, wait_until
from .p2p_raw import USER_AGENT, RawPeer, our_version, raw_frame
from .util import MINER_ADDRESS

pytestmark = pytest.mark.slow

PING_PAYLOAD = Ping(7).to_payload()
JUNK_SEED = 20261125


def assert_punished(node: TestNode, source: str, data: bytes, reason: str) -> None:
    """`data` from `source` gets the connection dropped with `reason`, and `source` refused afterwards."""
    peer = RawPeer.connect(node.p2p_port, source)
    with node.assert_debug_log([f"protocol violation ({reason}", f"{source} discouraged"]):
        peer.send_bytes(data)
        assert peer.closed_by_node()
    peer.close()
    with node.assert_debug_log([f"refusing inbound connection from {source}: banned or discouraged"]):
        again = RawPeer.connect(node.p2p_port, source)
        assert again.closed_by_node()
        again.close()


def test_malformed_frames_drop_and_discourage_only_their_sender(camelid_nodes):
    (node,) = camelid_nodes(1)
    junk = random.Random(JUNK_SEED).randbytes(200)
    cases = [
        (raw_frame(b"ping", PING_PAYLOAD, magic=b"\xde\xad\xbe\xef"), "bad-magic"),
        (raw_frame(b"ping", PING_PAYLOAD, frame_checksum=b"\0\0\0\0"), "bad-checksum"),
        (raw_frame(b"block", b"", length=0xFFFFFFFF), "oversized"),
        (raw_frame(b"nosuchcmd", b""), "unknown-command"),
        (raw_frame(b"ping", b"\xc1"), "bad-payload"),  # 0xc1 is never valid msgpack
        (raw_frame(b"ping", PING_PAYLOAD), "unexpected-message: ping before version"),
        (junk, "bad-magic"),
    ]
    for number, (data, reason) in enumerate(cases, start=10):
        assert_punished(node, f"127.0.0.{number}", data, reason)

    # After a handshake: well-framed messages whose content is invalid.
    for source, message, reason in [
        ("127.0.0.30", BlockMessage(b"\0" * 10), "bad-payload: block"),
        ("127.0.0.31", our_version(), "unexpected-message: version after the handshake"),
    ]:
        peer = RawPeer.connect(node.p2p_port, source)
        peer.handshake()
        with node.assert_debug_log([f"protocol violation ({reason}", f"{source} discouraged"]):
            peer.send(message)
            assert peer.closed_by_node()
        peer.close()

    # A truncated frame and a hang-up is no misbehaviour: the same address may come back.
    truncated = RawPeer.connect(node.p2p_port, "127.0.0.40")
    with node.assert_debug_log(["disconnected"]):
        truncated.send_bytes(raw_frame(b"version", our_version().to_payload())[:40])
        truncated.close()
    returned = RawPeer.connect(node.p2p_port, "127.0.0.40")
    returned.handshake()

    assert node.getblockcount() == 0  # still up and answering
    assert [peer["subver"] for peer in node.getpeerinfo()] == [USER_AGENT]  # the one well-behaved raw peer
    returned.close()


def test_frames_cut_into_one_byte_writes_are_reassembled(camelid_nodes):
    (node,) = camelid_nodes(1)
    peer = RawPeer.connect(node.p2p_port)
    theirs = peer.handshake(piece_size=1)
    assert theirs.node_id.hex() == node.getnetworkinfo()["nodeid"]

    peer.send(Ping(123456789), piece_size=1)
    assert peer.expect(Pong).nonce == 123456789
    assert [p["subver"] for p in node.getpeerinfo()] == [USER_AGENT]
    peer.close()


def junk_connection(port: int, number: int) -> bool:
    """Open a connection from a loopback address of its own, send junk; whether the node hung up on it."""
    peer = RawPeer.connect(port, f"127.0.{1 + number // 250}.{1 + number % 250}")
    try:
        peer.send_bytes(random.Random(number).randbytes(64 + number % 500))
        return peer.closed_by_node()
    finally:
        peer.close()


def test_a_flood_of_junk_connections_leaves_an_honest_peer_syncing(camelid_nodes):
    node0, node1 = camelid_nodes(2, [["--mine-processes=1"], []])
    node1.addnode(f"127.0.0.1:{node0.p2p_port}", "add")
    wait_until(lambda: node0.getconnectioncount() == 1, what="node1 connected")
    (honest,) = node0.getpeerinfo()

    flood_size = 300
    with ThreadPoolExecutor(max_workers=4) as pool:
        hung_up = pool.map(junk_connection, [node0.p2p_port] * flood_size, range(flood_size))
        for _ in range(10):
            (tip,) = node0.generatetoaddress(1, MINER_ADDRESS)
            wait_until(lambda tip=tip: node1.getbestblockhash() == tip, what="node1 following node0's blocks")
        assert all(hung_up)

    assert node0.getblockcount() == node1.getblockcount() == 10
    # The honest connection is the very same one: never dropped, never discouraged.
    assert [(p["id"], p["conntime"]) for p in node0.getpeerinfo()] == [(honest["id"], honest["conntime"])]
    log = node0.debug_log.read_text(errors="replace")
    assert log.count("discouraged") >= flood_size
    assert "127.0.0.1 discouraged" not in log


def test_a_peer_claiming_another_nodes_id_without_its_key_is_dropped(camelid_nodes):
    """Node ids are proven at the handshake: an impostor of node1 is cut off and discouraged, node1 stays."""
    node0, node1 = camelid_nodes(2)
    node1.addnode(f"127.0.0.1:{node0.p2p_port}", "add")
    wait_until(lambda: node0.getconnectioncount() == 1, what="node1 connected")
    node1_id = bytes.fromhex(node1.getnetworkinfo()["nodeid"])

    impostor = RawPeer.connect(node0.p2p_port, "127.0.0.50")
    with node0.assert_debug_log(["protocol violation (bad-handshake-signature", "127.0.0.50 discouraged"]):
        impostor.handshake(claimed_id=node1_id)  # announces node1's id, signs with a key of its own
        assert impostor.closed_by_node()
    impostor.close()

    assert [peer["nodeid"] for peer in node0.getpeerinfo()] == [node1_id.hex()]
    honest = RawPeer.connect(node0.p2p_port, "127.0.0.51")  # who signs for its own id is welcome
    honest.handshake()
    wait_until(lambda: node0.getconnectioncount() == 2, what="the honest raw peer connected")
    honest.close()
