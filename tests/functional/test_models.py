"""Real nodes distributing a model: a parallel fetch from three peers (one of them lying), and a resumed fetch.

The tiny test model is ~470 KB, one chunk at the real 1 MiB chunk size, so the serving nodes use the
regtest-only --model-chunk-size=32768 (15 chunks). The chunk size is part of the id: every node serving
the model must import it with the same chunk size, and the id tests use is that of the 32 KiB chunks.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_model import write_tiny_model

from camelid.compute.model_id import manifest_of_file

from .framework import wait_until

pytestmark = pytest.mark.slow

CHUNK = 32 * 1024
COMPUTE = 4


@pytest.fixture
def model(tmp_path):
    path = write_tiny_model(tmp_path / "tiny.gguf")
    return path, manifest_of_file(path, chunk_size=CHUNK)


def serving(path) -> list[str]:
    return [f"--serve-model={path}", f"--model-chunk-size={CHUNK}"]


def complete(node, model_id: str) -> bool:
    return node.getmodelinfo(model_id)["status"] == "complete"


def test_a_model_is_fetched_from_three_peers_and_a_lying_one_is_dropped(camelid_nodes, model):
    path, manifest = model
    model_id = manifest.id_hex
    servers = camelid_nodes(3, [serving(path), [*serving(path), "--corrupt-model-chunks"], serving(path)])
    (fetcher,) = camelid_nodes(1, [["--nolisten", *(f"--connect=127.0.0.1:{node.p2p_port}" for node in servers)]])
    assert servers[0].listmodels()[0]["id"] == model_id
    assert int(servers[0].getnetworkinfo()["localservices"], 16) & COMPUTE
    wait_until(lambda: len(fetcher.getpeerinfo()) == 3, what="the fetcher connected to the three servers")
    assert all(peer["models"] == [model_id] for peer in fetcher.getpeerinfo())
    assert not int(fetcher.getnetworkinfo()["localservices"], 16) & COMPUTE

    with fetcher.assert_debug_log(["protocol violation (bad-chunk"]):
        started = fetcher.fetchmodel(model_id)
        assert started["started"] is True and started["status"] == "fetching"
        wait_until(lambda: complete(fetcher, model_id), what="the fetched model")

    info = fetcher.getmodelinfo(model_id)
    assert info["chunks"] == len(manifest.chunk_hashes) and info["size"] == manifest.file_size
    assert Path(info["path"]).read_bytes() == path.read_bytes()
    corrupt_port = servers[1].p2p_port
    assert corrupt_port not in [int(peer["addr"].rsplit(":", 1)[1]) for peer in fetcher.getpeerinfo()]
    assert int(fetcher.getnetworkinfo()["localservices"], 16) & COMPUTE  # it now serves the model too
    assert fetcher.fetchmodel(model_id)["started"] is False

    fetcher.removemodel(model_id)
    assert fetcher.listmodels() == [] and list((fetcher.net_datadir / "models").iterdir()) == []
    assert not int(fetcher.getnetworkinfo()["localservices"], 16) & COMPUTE
    with pytest.raises(Exception, match="neither held nor being fetched"):
        fetcher.getmodelinfo(model_id)


def cli(node, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "camelid.cli.camelid_cli", f"--datadir={node.datadir}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def chunks_on_disk(node, model_id: str) -> int:
    """Chunks the fetcher has fsynced, from its progress bitmap."""
    progress = node.net_datadir / "models" / f"{model_id}.progress.json"
    try:
        bits = bytes.fromhex(json.loads(progress.read_text())["done"])
    except (FileNotFoundError, json.JSONDecodeError):
        return 0
    return sum(bin(b).count("1") for b in bits)


def test_a_killed_fetch_resumes_where_it_was_after_restart(camelid_nodes, model):
    path, manifest = model
    model_id = manifest.id_hex
    (server,) = camelid_nodes(1, [[*serving(path), "--model-peer-upload-rate=48"]])  # ~1.5 chunks per second
    fetching = ["--nolisten", f"--connect=127.0.0.1:{server.p2p_port}", f"--serve-model={model_id}"]
    (fetcher,) = camelid_nodes(1, [fetching])

    wait_until(lambda: chunks_on_disk(fetcher, model_id) >= 4, timeout=60, what="four chunks on disk")
    progress = fetcher.getmodelinfo(model_id)
    assert progress["status"] == "fetching" and progress["chunks_total"] == len(manifest.chunk_hashes)
    assert progress["peers"] == [f"127.0.0.1:{server.p2p_port}"]
    fetcher.kill()
    kept = chunks_on_disk(fetcher, model_id)
    assert 4 <= kept < len(manifest.chunk_hashes)

    fetcher.start()
    waited = cli(fetcher, "--wait", "fetchmodel", model_id)  # draws progress until the resumed fetch completes
    assert waited.returncode == 0 and "chunks" in waited.stderr
    assert json.loads(waited.stdout)["status"] == "complete"
    assert Path(fetcher.getmodelinfo(model_id)["path"]).read_bytes() == path.read_bytes()
    (peer,) = fetcher.getpeerinfo()
    assert peer["bytesrecv"] < manifest.file_size - (kept - 1) * CHUNK  # the chunks it kept were not fetched again
