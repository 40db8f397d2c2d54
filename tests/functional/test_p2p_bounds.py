"""A real camelidd against raw peers that try to exhaust it (issue 15): each attack is run and the bound shown.

Every misbehaving peer comes from a loopback address of its own, so punishing it cannot lock out the next.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
from chain_helpers import solve
from tiny_model import write_tiny_model

from camelid.chain.template import make_coinbase
from camelid.compute.model_id import manifest_of_file
from camelid.core.block import Block, BlockHeader
from camelid.core.consensus import block_subsidy
from camelid.core.params import REGTEST
from camelid.core.serialize import hex_to_hash
from camelid.crypto.keys import PrivateKey
from camelid.crypto.merkle import merkle_root
from camelid.p2p.messages import (
    MAX_HEADERS,
    MAX_HOPS,
    MESSAGE_ID_SIZE,
    Addr,
    BlockMessage,
    Directed,
    GetAddr,
    GetData,
    GetManifest,
    Headers,
    InvItem,
    InvType,
    ManifestMessage,
    NetAddress,
    NotFound,
)
from camelid.p2p.relay import MAX_GETDATA_ITEMS
from camelid.p2p.routing import NEIGHBOURS_COMMAND
from camelid.p2p.sync import MAX_STALLS, MAX_WANTED
from camelid.p2p.wire import encode_frame

from .framework import TestNode, wait_until
from .p2p_raw import MAGIC, RawPeer, header_branch
from .util import MINER_ADDRESS

pytestmark = pytest.mark.slow

BIG_BLOCK = 900_000  # bytes of a block's coinbase output script, as the 0.9 MB blocks
MODEL_CHUNK = 32 * 1024  # the tiny model in 15 chunks (--model-chunk-size, regtest only)


def connected(node: TestNode, source: str) -> RawPeer:
    peer = RawPeer.connect(node.p2p_port, source)
    peer.handshake()
    return peer


def test_a_getdata_naming_a_block_over_and_over_gets_its_sender_dropped_not_served(camelid_nodes):
    (node,) = camelid_nodes(1)
    (tip,) = node.generatetoaddress(1, MINER_ADDRESS)
    block = InvItem(InvType.BLOCK, hex_to_hash(tip))

    # The attack: one 1.8 MB message naming the same block 50,000 times (each copy used to be built).
    attacker = connected(node, "127.0.0.50")
    with node.assert_debug_log(["protocol violation (getdata-too-large", "127.0.0.50 discouraged"]):
        attacker.send(GetData((block,) * 50_000))
        assert attacker.closed_by_node()
    attacker.close()

    # Within the item limit, naming one block twice is refused just the same: no honest node does it.
    repeater = connected(node, "127.0.0.51")
    with node.assert_debug_log(["protocol violation (getdata-duplicate", "127.0.0.51 discouraged"]):
        repeater.send(GetData((block,) * MAX_GETDATA_ITEMS))
        assert repeater.closed_by_node()
    repeater.close()

    unknown = tuple(InvItem(InvType.TX, i.to_bytes(32, "little")) for i in range(MAX_GETDATA_ITEMS))
    # An honest request at the limit is answered: the block, and notfound for the rest.
    honest = connected(node, "127.0.0.52")
    honest.send(GetData((block, *unknown[: MAX_GETDATA_ITEMS - 1])))
    assert honest.expect(BlockMessage).block
    assert len(honest.expect(NotFound).items) == MAX_GETDATA_ITEMS - 1
    honest.close()


def test_non_routable_addresses_from_a_peer_are_neither_stored_nor_relayed(camelid_nodes):
    (node,) = camelid_nodes(1)
    listener = connected(node, "127.0.0.61")  # where the node relays a small fresh announcement
    gossip = connected(node, "127.0.0.60")
    now = int(time.time())
    internal = ["10.1.2.3", "172.16.5.5", "192.168.0.9", "169.254.3.3", "100.64.1.1", "224.0.0.5", "fe80::1"]
    allowed = ["1.2.3.4", "127.0.0.99"]  # public, and loopback (allowed on regtest only)
    gossip.send(Addr(tuple(NetAddress(ip, 9733, 1, now) for ip in internal + allowed)))
    assert {a.ip for a in listener.expect(Addr).addresses} == set(allowed)

    asker = connected(node, "127.0.0.62")  # an inbound peer's getaddr is answered from the whole small book
    asker.send(GetAddr())
    assert {a.ip for a in asker.expect(Addr).addresses} == set(allowed)
    for peer in (listener, gossip, asker):
        peer.close()


def test_unsolicited_headers_fill_a_bounded_queue_and_a_peer_that_never_serves_is_dropped(camelid_nodes):
    (node,) = camelid_nodes(1)
    attacker = connected(node, "127.0.0.70")
    branches = MAX_WANTED // MAX_HEADERS + 1  # one branch more than the download queue holds
    with node.assert_debug_log(["download queue full"], timeout=30):
        for tag in range(branches):
            headers = header_branch(REGTEST.genesis.header, MAX_HEADERS, tag)
            attacker.send(Headers(tuple(header.to_bytes() for header in headers)))
    # Asked for blocks it announced, it sends none: after MAX_STALLS timeouts in a row it is dropped, not discouraged.
    with node.assert_debug_log([f"served none of the blocks it announced {MAX_STALLS} times running"], timeout=60):
        assert attacker.closed_by_node(timeout=60)
    attacker.close()
    again = connected(node, "127.0.0.70")
    assert [peer["addr"].split(":")[0] for peer in node.getpeerinfo()] == ["127.0.0.70"]
    again.close()


def test_a_manifest_ending_in_a_repeated_chunk_gets_its_sender_dropped_and_the_fetch_goes_on(camelid_nodes, tmp_path):
    path = write_tiny_model(tmp_path / "tiny.gguf")
    manifest = manifest_of_file(path, chunk_size=MODEL_CHUNK)
    assert len(manifest.chunk_hashes) % 2  # an odd count: Bitcoin's Merkle tree would duplicate the last hash
    (fetcher,) = camelid_nodes(1)
    liar = connected(fetcher, "127.0.0.80")
    fetcher.fetchmodel(manifest.id_hex)
    liar.expect(GetManifest)
    hashes = (*manifest.chunk_hashes, manifest.chunk_hashes[-1])  # [..., c, c], its sizes made to fit
    with fetcher.assert_debug_log(["protocol violation (bad-manifest", "127.0.0.80 discouraged"]):
        size = len(hashes) * MODEL_CHUNK
        liar.send(ManifestMessage(manifest.id, size, MODEL_CHUNK, hashes, "tiny", manifest.metadata_root))
        assert liar.closed_by_node()
    liar.close()

    (server,) = camelid_nodes(1, [[f"--serve-model={path}", f"--model-chunk-size={MODEL_CHUNK}"]])
    fetcher.addnode(f"127.0.0.1:{server.p2p_port}", "add")
    wait_until(lambda: fetcher.getmodelinfo(manifest.id_hex)["status"] == "complete", what="the honest fetch")
    assert Path(fetcher.getmodelinfo(manifest.id_hex)["path"]).read_bytes() == path.read_bytes()


def directed_arriving(peer: RawPeer, seconds: float) -> list[Directed]:
    """The directed messages `peer` receives within `seconds`, routing announcements left out."""
    received: list[Directed] = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        peer.sock.settimeout(left)
        try:
            message = peer.receive()
        except TimeoutError:
            break
        if isinstance(message, Directed) and message.inner_command != NEIGHBOURS_COMMAND:
            received.append(message)
    return received


def directed(sender: bytes, recipient: bytes, command: str = "junk", payload: bytes = b"") -> Directed:
    return Directed(sender, recipient, MAX_HOPS, os.urandom(MESSAGE_ID_SIZE), command, payload)


def random_node_id() -> bytes:
    return PrivateKey.generate(network="regtest").public_key.to_bytes()


def test_a_directed_message_goes_one_way_to_a_known_recipient_and_is_dropped_for_an_unknown_one(camelid_nodes):
    (node,) = camelid_nodes(1)
    sender, recipient, bystander = (connected(node, f"127.0.0.{n}") for n in (90, 91, 92))
    assert sender.node_id is not None and recipient.node_id is not None

    # The attack: a message to an unknown recipient used to go to every peer, 16 hops deep.
    sender.send(directed(sender.node_id, random_node_id(), payload=b"x" * 100_000))
    assert directed_arriving(recipient, 1.0) == directed_arriving(bystander, 0.1) == []

    message = directed(sender.node_id, recipient.node_id, "hello")
    sender.send(message)
    assert directed_arriving(recipient, 2.0) == [replace(message, hops_left=MAX_HOPS - 1)]
    assert directed_arriving(bystander, 0.5) == []
    for peer in (sender, recipient, bystander):
        peer.close()


def test_junk_relayed_through_a_node_cannot_crowd_out_its_own_directed_messages(camelid_nodes):
    (relay,) = camelid_nodes(1)
    (target,) = camelid_nodes(1, [[f"--connect=127.0.0.1:{relay.p2p_port}"]])
    wait_until(lambda: relay.getconnectioncount() == 1, what="target connected to the relay")
    relay_id, target_id = relay.getnetworkinfo()["nodeid"], bytes.fromhex(target.getnetworkinfo()["nodeid"])
    attacker = connected(relay, "127.0.0.93")

    stop = threading.Event()

    def flood() -> None:  # junk for the target under ever new sender ids, faster than any bucket refills
        while not stop.is_set():
            attacker.send_bytes(b"".join(encode_frame(MAGIC, directed(random_node_id(), target_id)) for _ in range(50)))
            time.sleep(0.02)

    flooder = threading.Thread(target=flood, daemon=True)
    flooder.start()
    try:
        time.sleep(1.0)  # the relay's link to the target is now as full of junk as its limits allow
        for _ in range(10):
            relay.senddirected(target_id.hex(), "hello", "c0ffee")
            time.sleep(0.1)
        wait_until(lambda: log_count(target, f"directed hello from {relay_id} delivered") == 10, timeout=10,
                   what="all ten of the relay's own messages")  # fmt: skip
    finally:
        stop.set()
        flooder.join()
        attacker.close()
    assert relay.getblockcount() == target.getblockcount() == 0  # both still answering


def log_count(node: TestNode, text: str) -> int:
    return node.debug_log.read_text(errors="replace").count(text)



def big_block(parent: Block, height: int) -> Block:
    """A valid regtest block of about BIG_BLOCK bytes: its coinbase pays to an OP_RETURN script that long."""
    coinbase = make_coinbase(height, 0, b"\x6a" + bytes(BIG_BLOCK), block_subsidy(height))
    header = BlockHeader(
        1, parent.hash_bytes, merkle_root([coinbase.hash]), parent.header.time + REGTEST.target_spacing,
        parent.header.bits, 0,
    )  # fmt: skip
    return solve(Block(header, (coinbase,)), REGTEST.pow_limit)


def test_a_getdata_is_served_only_as_fast_as_its_peer_reads(camelid_nodes):
    (node,) = camelid_nodes(1)
    blocks, parent = [], REGTEST.genesis
    for height in range(1, 17):  # 16 blocks of 0.9 MB: 14.4 MB, under the 16 MiB send buffer limit
        parent = big_block(parent, height)
        assert node.submitblock(parent.to_bytes().hex()) is None
        blocks.append(parent)

    reader = connected(node, "127.0.0.100")
    reader.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    reader.send(GetData(tuple(InvItem(InvType.BLOCK, block.hash_bytes) for block in blocks)))
    time.sleep(2)  # ample time to queue all 14.4 MB if the node did not wait for the peer to read
    (info,) = node.getpeerinfo()
    assert info["bytessent"] < 8_000_000  # socket buffers, the 1 MiB high water mark and a block in hand
    reader.close()

    honest = connected(node, "127.0.0.101")  # one that reads gets every block, in order
    honest.send(GetData(tuple(InvItem(InvType.BLOCK, block.hash_bytes) for block in blocks)))
    assert [honest.expect(BlockMessage).block for _ in blocks] == [block.to_bytes() for block in blocks]
    honest.close()
