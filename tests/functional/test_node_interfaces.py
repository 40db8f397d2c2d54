"""The node's interfaces from outside: a stock Bitcoin RPC client, hostile requests, and camelid-cli."""

from __future__ import annotations

import json
import subprocess
import sys

import bitcoin
import bitcoin.rpc
import pytest

from camelid.rpc.auth import Credentials

from .util import MINER_ADDRESS

pytestmark = pytest.mark.slow


def test_python_bitcoinlib_rawproxy_reads_the_chain(camelid_nodes):
    (node,) = camelid_nodes(1, [["--mine-processes=1"]])
    hashes = node.generatetoaddress(3, MINER_ADDRESS)
    # RawProxy finds rpcport in the conf file and the cookie in <conf dir>/regtest/, Bitcoin Core's layout.
    bitcoin.SelectParams("regtest")
    proxy = bitcoin.rpc.RawProxy(btc_conf_file=str(node.conf_file))
    assert proxy.getblockcount() == 3
    info = proxy.getblockchaininfo()
    assert (info["chain"], info["bestblockhash"]) == ("regtest", hashes[-1])
    block = proxy.getblock(hashes[0])
    assert block["height"] == 1 and block["nextblockhash"] == hashes[1]
    with pytest.raises(bitcoin.rpc.JSONRPCError) as error:
        proxy.getblockhash(99)
    assert error.value.error["code"] == -8


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b'{"method": "getblockcount", ', 500, -32700),
        (b"\xff\xfe garbage", 500, -32700),
        (b'{"id": 1, "method": "nosuchmethod"}', 404, -32601),
        (b'{"id": 1, "method": "getblockhash", "params": ["ten"]}', 500, -3),
        (b'{"id": 1, "method": "getblock", "params": [12]}', 500, -3),
        (b'{"id": 1, "method": "getblock", "params": ["xyz"]}', 500, -8),
        (b'{"id": 1, "method": "sendrawtransaction", "params": ["deadbeef"]}', 500, -22),
        (b'{"id": 1, "method": "decoderawtransaction", "params": ["0100000001"]}', 500, -22),
        (b'{"id": 1, "method": "submitblock", "params": ["00"]}', 500, -22),
        (b'{"id": 1, "method": "generatetoaddress", "params": [1, "1BitcoinEaterAddressDontSendf59kuE"]}', 500, -5),
        (b'{"id": 1, "method": 42}', 400, -32600),
    ],
)
def test_bad_requests_get_error_codes_and_the_node_keeps_running(camelid_nodes, body, status, code):
    (node,) = camelid_nodes(1, [["--mine-processes=1"]])
    before = node.gettxoutsetinfo()
    reply_status, reply = node.raw_post(body)
    assert reply_status == status
    assert reply["error"]["code"] == code, reply
    assert node.running
    assert node.gettxoutsetinfo() == before


def test_wrong_password_is_refused_with_401(camelid_nodes):
    (node,) = camelid_nodes(1)
    status, reply = node.raw_post(b'{"id": 1, "method": "getblockcount"}', Credentials("__cookie__", "guess"))
    assert (status, reply) == (401, None)
    assert node.getblockcount() == 0


def test_sigterm_shuts_down_cleanly(camelid_nodes):
    (node,) = camelid_nodes(1)
    with node.assert_debug_log(["shutdown requested: SIGTERM", "chain state closed", "shutdown complete"]):
        node.signal(15)
        assert node.wait_for_exit() == 0
    assert not (node.net_datadir / ".cookie").exists()


def cli(node, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "camelid.cli.camelid_cli", f"--datadir={node.datadir}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_camelid_cli_end_to_end(camelid_nodes):
    (node,) = camelid_nodes(1, [["--mine-processes=1"]])
    (block_hash,) = node.generatetoaddress(1, MINER_ADDRESS)

    count = cli(node, "getblockcount")
    assert (count.returncode, count.stdout) == (0, "1\n")
    assert cli(node, "getbestblockhash").stdout == block_hash + "\n"  # strings print bare
    header = json.loads(cli(node, "getblockheader", block_hash).stdout)
    assert header["height"] == 1
    named = cli(node, "--named", "getblockheader", f"blockhash={block_hash}", "verbose=false")
    assert len(named.stdout.strip()) == 160

    failed = cli(node, "getblockhash", "-1")
    assert failed.returncode == 1
    assert failed.stderr == "error code: -8\nerror message:\nBlock height out of range\n"
    unknown = cli(node, "nosuchmethod")
    assert unknown.returncode == 1 and "error code: -32601" in unknown.stderr

    node.stop()
    refused = cli(node, "getblockcount")
    assert refused.returncode == 1
    assert "Could not" in refused.stderr

    node.start(wait=False)
    waited = cli(node, "--rpcwait", "--rpcwaittimeout=60", "getblockcount")
    assert (waited.returncode, waited.stdout) == (0, "1\n")
