"""The model service's upload side: answers, the cap on queued chunk requests, and the per-peer byte budget."""

from __future__ import annotations

import asyncio

from tiny_model import write_tiny_model

from camelid.node.config import NodeConfig
from camelid.node.model_service import MAX_UPLOADS_PER_PEER, ModelService
from camelid.p2p.messages import Chunk, GetChunk, GetManifest, ManifestMessage, Message, NoModel

CHUNK = 1024


class Downloader:
    """The peer side of a connection: what the service sends it is collected."""

    def __init__(self) -> None:
        self.id = 1
        self.closed = False
        self.received: list[Message] = []

    def send(self, message: Message) -> None:
        self.received.append(message)

    def chunks(self) -> list[Chunk]:
        return [m for m in self.received if isinstance(m, Chunk)]


def service(tmp_path, peer_rate_kib: int) -> ModelService:
    model = write_tiny_model(tmp_path / "tiny.gguf")
    config = NodeConfig(
        network="regtest",
        datadir=tmp_path,
        serve_model=(str(model),),
        model_chunk_size=CHUNK,
        model_peer_upload_rate=peer_rate_kib,
    )
    return ModelService(config)


async def test_manifests_and_unknown_models_are_answered(tmp_path):
    models = service(tmp_path, 1024)
    (model_id,) = models.announced()
    peer = Downloader()
    await models._on_getmanifest(peer, GetManifest(model_id))
    await models._on_getmanifest(peer, GetManifest(bytes(32)))
    await models._on_getchunk(peer, GetChunk(model_id, 10_000))
    manifest = models.store.get(model_id)
    assert peer.received == [
        ManifestMessage(
            model_id, manifest.file_size, CHUNK, manifest.chunk_hashes, "tiny.gguf", manifest.metadata_root
        ),
        NoModel(bytes(32)),
        NoModel(model_id),
    ]


async def test_queued_requests_are_capped_and_paced_by_the_peer_budget(tmp_path):
    models = service(tmp_path, 8)  # 8 KiB/s, a burst of 8 one-KiB chunks
    (model_id,) = models.announced()
    peer = Downloader()
    for index in range(MAX_UPLOADS_PER_PEER + 4):
        await models._on_getchunk(peer, GetChunk(model_id, index))
    await asyncio.sleep(0.3)
    assert sorted(c.index for c in peer.chunks()) == list(range(MAX_UPLOADS_PER_PEER))  # the excess dropped

    for index in range(20, 28):  # beyond the burst: one chunk per 1/8 s
        await models._on_getchunk(peer, GetChunk(model_id, index))
    await asyncio.sleep(0.3)
    assert MAX_UPLOADS_PER_PEER < len(peer.chunks()) < 2 * MAX_UPLOADS_PER_PEER
    for _ in range(40):
        await asyncio.sleep(0.05)
    assert sorted(c.index for c in peer.chunks()[MAX_UPLOADS_PER_PEER:]) == list(range(20, 28))
    assert all(c.data == models.store.read_chunk(model_id, c.index) for c in peer.chunks())


async def test_a_peers_upload_budget_goes_when_it_disconnects(tmp_path):
    models = service(tmp_path, 1024)
    (model_id,) = models.announced()
    for peer_id in range(1, 101):  # a hundred connections that each fetch a chunk, then leave
        peer = Downloader()
        peer.id = peer_id
        await models._on_getchunk(peer, GetChunk(model_id, 0))
        await asyncio.sleep(0.01)  # the upload done, the connection still open
        assert peer.chunks()
        peer.closed = True
        models._forget_uploads(peer)
    assert models._uploads == {}
