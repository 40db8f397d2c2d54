"""The fetcher against simulated peers: each peer answers from a real ModelStore, as the model service does.

The simulated network stands in for the PeerManager only (peers(), peer(), send()); a ProtocolViolation
raised by the fetcher disconnects the peer, as the manager would, and is recorded so tests can see it.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from tiny_model import write_tiny_model

from camelid.compute.model_id import manifest_of_file
from camelid.compute.model_store import ModelStore
from camelid.p2p.errors import ProtocolViolation
from camelid.p2p.messages import Chunk, GetManifest, ManifestMessage, Message, NoModel
from camelid.p2p.model_fetch import ModelFetch
from camelid.p2p.peer import Direction, PeerInfo

CHUNK = 32 * 1024


class SimPeer:
    """A peer serving `store`'s models; `corrupt` flips a byte of every chunk, `silent` never answers chunks."""

    def __init__(self, peer_id: int, store: ModelStore | None, *, corrupt: bool = False, silent: bool = False):
        self.id = peer_id
        self.store = store
        self.corrupt = corrupt
        self.silent = silent
        self.closed = False
        self.inbox: list[Message] = []
        self.chunks_sent = 0

    def info(self) -> PeerInfo:
        models = tuple(m.id for m in self.store.manifests()) if self.store else ()
        return PeerInfo(self.id, "127.0.0.1", 9000 + self.id, Direction.OUTBOUND, b"\x02" * 33, 4, models, "/sim/",
                        1, 0, None, 0, 0, time.time())

    def answer(self, request: Message) -> Message | None:
        manifest = self.store.get(request.model) if self.store else None
        if manifest is None:
            return NoModel(request.model)
        if isinstance(request, GetManifest):
            return ManifestMessage(manifest.id, manifest.file_size, manifest.chunk_size, manifest.chunk_hashes,
                                   manifest.name, manifest.metadata_root)
        if self.silent:
            return None
        data = self.store.read_chunk(request.model, request.index)
        self.chunks_sent += 1
        return Chunk(request.model, request.index, bytes([data[0] ^ 1]) + data[1:] if self.corrupt else data)


class SimNetwork:
    def __init__(self, peers: list[SimPeer]) -> None:
        self.by_id = {p.id: p for p in peers}
        self.violations: dict[int, str] = {}

    def peers(self) -> list[PeerInfo]:
        return [p.info() for p in self.by_id.values() if not p.closed]

    def peer(self, peer_id: int) -> SimPeer | None:
        return self.by_id.get(peer_id)

    def send(self, peer: SimPeer, message: Message) -> None:
        peer.inbox.append(message)

    async def serve(self, fetch: ModelFetch) -> None:
        """Deliver every peer's answers to the fetch, a little later, as a network would."""
        while True:
            await asyncio.sleep(0.001)
            for peer in list(self.by_id.values()):
                requests, peer.inbox = peer.inbox, []
                for request in requests:
                    if peer.closed or (answer := peer.answer(request)) is None:
                        continue
                    try:
                        if isinstance(answer, ManifestMessage):
                            fetch.on_manifest(peer, answer)
                        elif isinstance(answer, Chunk):
                            fetch.on_chunk(peer, answer)
                        else:
                            fetch.on_not_found(peer)
                    except ProtocolViolation as violation:
                        self.violations[peer.id] = violation.reason
                        peer.closed = True


@pytest.fixture
def source(tmp_path):
    """A store holding the tiny model in 32 KiB chunks, and the model's manifest."""
    store = ModelStore(tmp_path / "source")
    manifest = store.import_file(write_tiny_model(tmp_path / "tiny.gguf"), CHUNK)
    return store, manifest


async def fetch_with(network: SimNetwork, fetch: ModelFetch, timeout: float = 20.0):
    server = asyncio.create_task(network.serve(fetch))
    try:
        async with asyncio.timeout(timeout):
            return await fetch.run()
    finally:
        server.cancel()


async def test_chunks_come_from_several_peers_and_make_the_exact_file(tmp_path, source):
    store, manifest = source
    peers = [SimPeer(i, store) for i in (1, 2, 3)]
    local = ModelStore(tmp_path / "local")
    network = SimNetwork(peers)
    fetch = ModelFetch(manifest.id, local, network)
    assert await fetch_with(network, fetch) == manifest
    assert local.model_path(manifest.id).read_bytes() == store.model_path(manifest.id).read_bytes()
    assert all(p.chunks_sent > 0 for p in peers)
    assert sum(p.chunks_sent for p in peers) == len(manifest.chunk_hashes)
    assert fetch.progress()["chunks_done"] == len(manifest.chunk_hashes) and fetch.state == "done"


async def test_a_peer_sending_a_bad_chunk_is_punished_and_the_chunk_fetched_elsewhere(tmp_path, source):
    store, manifest = source
    peers = [SimPeer(1, store), SimPeer(2, store, corrupt=True), SimPeer(3, store)]
    network = SimNetwork(peers)
    local = ModelStore(tmp_path / "local")
    assert await fetch_with(network, ModelFetch(manifest.id, local, network)) == manifest
    assert local.model_path(manifest.id).read_bytes() == store.model_path(manifest.id).read_bytes()
    assert network.violations == {2: f"bad-chunk: {network.violations[2].split()[1]} of model {manifest.id_hex}"}


async def test_an_unanswered_chunk_is_asked_of_another_peer(tmp_path, source):
    store, manifest = source
    peers = [SimPeer(1, store, silent=True), SimPeer(2, store)]
    network = SimNetwork(peers)
    local = ModelStore(tmp_path / "local")
    fetch = ModelFetch(manifest.id, local, network, chunk_timeout=0.2)
    assert await fetch_with(network, fetch) == manifest
    assert peers[1].chunks_sent == len(manifest.chunk_hashes) and network.violations == {}


async def test_peers_without_the_model_are_skipped(tmp_path, source):
    store, manifest = source
    peers = [SimPeer(1, None), SimPeer(2, ModelStore(tmp_path / "empty")), SimPeer(3, store)]
    network = SimNetwork(peers)
    local = ModelStore(tmp_path / "local")
    assert await fetch_with(network, ModelFetch(manifest.id, local, network)) == manifest
    assert peers[2].chunks_sent == len(manifest.chunk_hashes)


async def test_a_manifest_whose_root_is_not_the_id_is_refused(tmp_path, source):
    store, manifest = source
    fetch = ModelFetch(manifest.id, ModelStore(tmp_path / "local"), SimNetwork([]))
    liar = SimPeer(1, store)
    forged_hashes = (bytes(32), *manifest.chunk_hashes[1:])
    forged = ManifestMessage(manifest.id, manifest.file_size, manifest.chunk_size, forged_hashes, "forged",
                             manifest.metadata_root)
    with pytest.raises(ProtocolViolation, match="bad-manifest.*does not commit"):
        fetch.on_manifest(liar, forged)
    inconsistent = ManifestMessage(manifest.id, manifest.file_size + CHUNK, manifest.chunk_size,
                                   manifest.chunk_hashes, "short", manifest.metadata_root)
    with pytest.raises(ProtocolViolation, match="bad-manifest"):
        fetch.on_manifest(liar, inconsistent)
    other = manifest_of_file(write_tiny_model(tmp_path / "other.gguf", seed=1), chunk_size=CHUNK)
    fetch.on_manifest(liar, ManifestMessage(other.id, other.file_size, CHUNK, other.chunk_hashes, "other",
                                              other.metadata_root))
    assert fetch.manifest is None and fetch.progress()["chunks_total"] is None


async def test_an_interrupted_fetch_resumes_without_asking_again_for_what_it_has(tmp_path, source):
    store, manifest = source
    local = ModelStore(tmp_path / "local")
    partial = local.open_partial(manifest)
    done = list(range(0, len(manifest.chunk_hashes), 2))
    for index in done:
        partial.write_chunk(index, store.read_chunk(manifest.id, index))
    partial.close()

    peer = SimPeer(1, store)
    network = SimNetwork([peer])
    fetch = ModelFetch(manifest.id, ModelStore(tmp_path / "local"), network)
    assert fetch.state == "fetching"  # the manifest came from disk
    assert await fetch_with(network, fetch) == manifest
    assert peer.chunks_sent == len(manifest.chunk_hashes) - len(done)
    assert local.model_path(manifest.id).read_bytes() == store.model_path(manifest.id).read_bytes()


async def test_a_chunk_nobody_asked_for_is_ignored_before_the_manifest(tmp_path, source):
    store, manifest = source
    fetch = ModelFetch(manifest.id, ModelStore(tmp_path / "local"), SimNetwork([]))
    fetch.on_chunk(SimPeer(1, store), Chunk(manifest.id, 0, b"junk"))
    assert fetch.progress()["chunks_done"] == 0

