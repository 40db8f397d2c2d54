"""Real camelidd networks: a long sync from several peers, address discovery by gossip, two-hop directed routing."""

from __future__ import annotations

import json

import pytest

from camelid.core.params import REGTEST
from camelid.p2p.messages import Headers
from camelid.p2p.wire import encode_frame
from camelid.rpc.client import JSONRPCError

from .framework import TestNode, wait_until
from .util import MINER_ADDRESS, active_chain_hashes

pytestmark = pytest.mark.slow

CHAIN_LENGTH = 2_000
MINE_BATCH = 500


def peer_addresses(node: TestNode, *, inbound: bool | None = None) -> set[str]:
    return {p["addr"] for p in node.getpeerinfo() if inbound is None or p["inbound"] is inbound}


def test_a_new_node_syncs_2000_blocks_from_three_peers(camelid_nodes):
    (miner,) = camelid_nodes(1, [["--mine-processes=1"]])
    for _ in range(CHAIN_LENGTH // MINE_BATCH):
        miner.generatetoaddress(MINE_BATCH, MINER_ADDRESS)
    tip = miner.getbestblockhash()
    copies = camelid_nodes(2, [[f"--connect=127.0.0.1:{miner.p2p_port}"]] * 2)
    servers = [miner, *copies]
    wait_until(lambda: all(n.getbestblockhash() == tip for n in copies), timeout=60, what="three nodes on the chain")

    (fresh,) = camelid_nodes(1, [[f"--connect=127.0.0.1:{n.p2p_port}" for n in servers]])
    wait_until(lambda: fresh.getbestblockhash() == tip, timeout=60, what="the fresh node synced")
    assert fresh.getblockcount() == CHAIN_LENGTH
    assert fresh.gettxoutsetinfo()["hash_serialized"] == miner.gettxoutsetinfo()["hash_serialized"]

    # Blocks came from more than one peer. No RPC counts blocks per peer, so count bytes: every server sends
    # the whole chain's headers; one that also served blocks has sent well beyond that.
    hashes = active_chain_hashes(miner)
    headers = tuple(bytes.fromhex(miner.getblockheader(block_hash, False)) for block_hash in hashes)
    headers_bytes = len(encode_frame(REGTEST.magic, Headers(headers)))
    block_bytes = sum(len(miner.getblock(block_hash, 0)) // 2 for block_hash in hashes)
    received = [p["bytesrecv"] for p in fresh.getpeerinfo()]
    assert len(received) == 3
    served_blocks = [r for r in received if r > headers_bytes + block_bytes // 10]
    assert len(served_blocks) >= 2, (received, headers_bytes, block_bytes)
    # Blocks arriving out of order from different peers must not set off fresh header downloads each time.
    assert max(received) < 2 * headers_bytes + block_bytes, (received, headers_bytes, block_bytes)


def test_a_node_seeded_with_one_address_finds_the_others_through_addr_gossip(camelid_nodes):
    (hub,) = camelid_nodes(1)
    # The listeners dial only the hub (--connect), so any connection between them and the newcomer is the
    # newcomer's doing. The hub learns their addresses from their version messages (listen_port).
    listeners = camelid_nodes(2, [[f"--connect=127.0.0.1:{hub.p2p_port}"]] * 2)
    wait_until(lambda: len(peer_addresses(hub, inbound=True)) == 2, what="both listeners connected to the hub")

    (newcomer,) = camelid_nodes(1, [[f"--seednode=127.0.0.1:{hub.p2p_port}"]])
    wanted = {f"127.0.0.1:{n.p2p_port}" for n in listeners}
    wait_until(lambda: wanted <= peer_addresses(newcomer, inbound=False), what="the newcomer dialled both listeners")
    listener_ids = {n.getnetworkinfo()["nodeid"] for n in listeners}
    assert listener_ids <= {p["nodeid"] for p in newcomer.getpeerinfo()}


def test_a_node_given_only_a_seed_file_finds_the_network(camelid_nodes, tmp_path):
    (hub,) = camelid_nodes(1)
    listeners = camelid_nodes(2, [[f"--connect=127.0.0.1:{hub.p2p_port}"]] * 2)
    wait_until(lambda: len(peer_addresses(hub, inbound=True)) == 2, what="both listeners connected to the hub")
    seedfile = tmp_path / "private-seeds.json"
    seedfile.write_text(json.dumps({"_comment": "a private network", "regtest": [f"127.0.0.1:{hub.p2p_port}"]}))

    (newcomer,) = camelid_nodes(1, [[f"--seedfile={seedfile}"]])  # no --connect, --addnode or --seednode
    wanted = {f"127.0.0.1:{n.p2p_port}" for n in [hub, *listeners]}
    wait_until(lambda: wanted <= peer_addresses(newcomer, inbound=False), what="the newcomer dialled all three")


def test_a_directed_message_crosses_two_hops(camelid_nodes):
    (sender,) = camelid_nodes(1)
    (middle,) = camelid_nodes(1, [[f"--connect=127.0.0.1:{sender.p2p_port}"]])
    # The recipient does not listen, so nobody can learn its address and shortcut the line.
    (recipient,) = camelid_nodes(1, [[f"--connect=127.0.0.1:{middle.p2p_port}", "--nolisten"]])
    wait_until(lambda: middle.getconnectioncount() == 2, what="the line sender - middle - recipient")
    sender_id = sender.getnetworkinfo()["nodeid"]
    recipient_id = recipient.getnetworkinfo()["nodeid"]
    assert recipient_id not in {p["nodeid"] for p in sender.getpeerinfo()}

    with recipient.assert_debug_log([f"directed hello from {sender_id} delivered"]):
        message_id = sender.senddirected(recipient_id, "hello", "c0ffee")
    assert len(bytes.fromhex(message_id)) == 16
    assert recipient_id not in {p["nodeid"] for p in sender.getpeerinfo()}

    for bad_args in [
        (sender_id, "hello"),
        (recipient_id, "Not A Command"),
        ("00" * 33, "hello"),
        (recipient_id, "x", "zz"),
    ]:
        with pytest.raises(JSONRPCError) as refused:
            sender.senddirected(*bad_args)
        assert refused.value.code == -8, bad_args
