"""Fetching one model from many peers at once, chunk by chunk, checked as it arrives (whitepaper 2.6.1).

The manifest is taken only from a peer whose answer hashes to the id we asked for; as the id commits
to the file and chunk sizes, that is the one manifest the id has (a list ending [..., c, c] is refused
as a ProtocolViolation, and its sender discouraged and dropped). After that every chunk can be checked
on arrival, its exact length first and then its hash: a wrong chunk is a ProtocolViolation and the
chunk is asked of another peer. Requests are spread over the peers that announce the
model (else over every peer), a few in flight per peer; one unanswered past `chunk_timeout` is asked of
someone else. Written chunks are fsynced with a progress bitmap every `flush_interval` seconds, so a
restarted node resumes where it was (see camelid.compute.model_store.PartialModel). A file that
still fails the final check (our disk, not a peer, since every chunk matched; or an id whose metadata
root, only checkable on the whole file, is not the file's) fails the fetch with that error: it is never
downloaded again in a loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import Any, Protocol

from camelid.compute.model_id import Manifest, chunk_hash
from camelid.compute.model_store import ModelStore, PartialModel
from camelid.p2p.errors import ProtocolViolation
from camelid.p2p.messages import Chunk, GetChunk, GetManifest, ManifestMessage, Message
from camelid.p2p.peer import Peer, PeerInfo

log = logging.getLogger(__name__)

CHUNK_TIMEOUT = 30.0  # seconds before an unanswered chunk is asked of another peer
REQUESTS_PER_PEER = 4  # chunks in flight to one peer: enough to keep its pipe full, below its upload cap
FLUSH_INTERVAL = 2.0  # seconds between fsyncs of the partial file and its progress bitmap
POLL_INTERVAL = 0.5  # how often timeouts and new peers are looked at when no chunk arrives


class PeerDirectory(Protocol):
    """What the fetcher needs of the PeerManager."""

    def peers(self) -> list[PeerInfo]: ...

    def peer(self, peer_id: int) -> Peer | None: ...

    def send(self, peer: Peer, message: Message) -> None: ...


class ModelFetch:
    """One model being fetched; `await run()` returns its manifest once the checked file is in the store."""

    def __init__(
        self,
        model_id: bytes,
        store: ModelStore,
        network: PeerDirectory,
        *,
        chunk_timeout: float = CHUNK_TIMEOUT,
        requests_per_peer: int = REQUESTS_PER_PEER,
        flush_interval: float = FLUSH_INTERVAL,
    ) -> None:
        self.model_id = model_id
        self.store = store
        self.network = network
        self.chunk_timeout = chunk_timeout
        self.requests_per_peer = requests_per_peer
        self.flush_interval = flush_interval
        self.manifest: Manifest | None = store.partial_manifest(model_id)
        self.partial: PartialModel | None = None
        self.state = "awaiting-manifest" if self.manifest is None else "fetching"
        self.error: str | None = None
        self._holders: set[int] = set()  # peers that sent the manifest
        self._lacking: set[int] = set()  # peers that said nomodel
        self._in_flight: dict[int, tuple[int, float]] = {}  # chunk index -> (peer id, deadline)
        self._avoid: dict[int, set[int]] = {}  # chunk index -> peers that let it time out
        self._delivered: Counter[int] = Counter()  # peer id -> chunks received from it
        self._wake = asyncio.Event()

    # -- progress, for RPC ---------------------------------------------------------------------------

    def progress(self) -> dict[str, Any]:
        manifest, partial = self.manifest, self.partial
        return {
            "state": self.state,
            "chunks_done": partial.chunks_done if partial else 0,
            "chunks_total": len(manifest.chunk_hashes) if manifest else None,
            "bytes_done": partial.bytes_done if partial else 0,
            "bytes_total": manifest.file_size if manifest else None,
            "peers": sorted({peer for peer, _ in self._in_flight.values()} | set(self._delivered)),
            **({"error": self.error} if self.error else {}),
        }

    # -- messages, routed here by the model service ---------------------------------------------------

    def on_manifest(self, peer: Peer, message: ManifestMessage) -> None:
        """Take the first manifest our id commits to; a wrong one is a violation."""
        if message.model != self.model_id:
            return  # another model's: not what we are fetching
        try:
            manifest = Manifest.from_dict(message.manifest_fields())
        except ValueError as exc:
            raise ProtocolViolation(f"bad-manifest: {exc}") from None
        self._holders.add(peer.id)
        if self.manifest is None:
            self.manifest = manifest
            self._wake.set()

    def on_not_found(self, peer: Peer) -> None:
        self._lacking.add(peer.id)
        self._holders.discard(peer.id)
        for index in [i for i, (p, _) in self._in_flight.items() if p == peer.id]:
            del self._in_flight[index]
        self._wake.set()

    def on_chunk(self, peer: Peer, message: Chunk) -> None:
        """Keep a chunk that hashes as the manifest says, from whoever sent it; a wrong one is a violation."""
        partial = self.partial
        if partial is None:
            return  # not asked for yet (or after a restart): ignore rather than guess
        manifest = partial.manifest
        index = message.index
        wrong = (
            index >= len(manifest.chunk_hashes)
            or len(message.data) != manifest.chunk_length(index)  # pinned: cheaper than hashing, and no gaps
            or chunk_hash(message.data) != manifest.chunk_hashes[index]
        )
        if wrong:
            if self._in_flight.get(index, (None,))[0] == peer.id:
                del self._in_flight[index]
            self._wake.set()
            raise ProtocolViolation(f"bad-chunk: {index} of model {self.model_id.hex()}")
        self._in_flight.pop(message.index, None)
        if not partial.done[message.index]:
            partial.write_chunk(message.index, message.data)
            self._delivered[peer.id] += 1
        self._wake.set()

    # -- the fetch -----------------------------------------------------------------------------------

    async def run(self) -> Manifest:
        try:
            manifest = self.manifest or await self._get_manifest()
            self.state = "fetching"
            self.partial = await asyncio.to_thread(self.store.open_partial, manifest)
            await self._fetch_chunks(self.partial)
            self.state = "verifying"
            # ValueError if the chunks, each checked, still make a wrong file: disk trouble, or our bug.
            await asyncio.to_thread(self.partial.finish)
            self.state = "done"
            log.info("model %s fetched: %d bytes from peers %s", manifest.id_hex, manifest.file_size,
                     sorted(self._delivered))
            return manifest
        except BaseException as exc:
            if self.state != "done":
                self.state = "failed" if not isinstance(exc, asyncio.CancelledError) else "stopped"
                self.error = str(exc) or type(exc).__name__
            if self.partial is not None and self.state != "done":
                self.partial.close()
            raise

    async def _get_manifest(self) -> Manifest:
        asked: dict[int, float] = {}  # peer id -> when we last asked it
        while self.manifest is None:
            now = time.monotonic()
            for info in self._candidates():
                due = now - asked.get(info.id, -self.chunk_timeout) >= self.chunk_timeout
                if due and (peer := self.network.peer(info.id)) is not None:
                    asked[info.id] = now
                    self.network.send(peer, GetManifest(self.model_id))
            await self._sleep(POLL_INTERVAL)
        return self.manifest

    async def _fetch_chunks(self, partial: PartialModel) -> None:
        flushed_at = time.monotonic()
        while missing := partial.missing():
            self._expire_requests()
            self._request(missing)
            await self._sleep(POLL_INTERVAL)
            if time.monotonic() - flushed_at > self.flush_interval:
                await asyncio.to_thread(partial.flush)
                flushed_at = time.monotonic()

    def _candidates(self) -> list[PeerInfo]:
        """Peers to ask: those known to hold the model, else everyone who has not said it lacks it."""
        ready = [info for info in self.network.peers() if info.id not in self._lacking]
        holders = [info for info in ready if info.id in self._holders or self.model_id in info.models]
        return holders or ready

    def _expire_requests(self) -> None:
        connected = {info.id for info in self.network.peers()}
        now = time.monotonic()
        for index, (peer_id, deadline) in list(self._in_flight.items()):
            if peer_id not in connected or now > deadline:
                del self._in_flight[index]
                self._avoid.setdefault(index, set()).add(peer_id)

    def _request(self, missing: list[int]) -> None:
        load = Counter(peer_id for peer_id, _ in self._in_flight.values())
        peers = [info.id for info in self._candidates()]
        for index in missing:
            if index in self._in_flight:
                continue
            free = [p for p in peers if load[p] < self.requests_per_peer]
            if not free:
                return
            fresh = [p for p in free if p not in self._avoid.get(index, ())]
            peer_id = min(fresh or free, key=lambda p: load[p])
            peer = self.network.peer(peer_id)
            if peer is None:
                continue
            self.network.send(peer, GetChunk(self.model_id, index))
            self._in_flight[index] = (peer_id, time.monotonic() + self.chunk_timeout)
            load[peer_id] += 1

    async def _sleep(self, seconds: float) -> None:
        """Wait until a message arrives for this fetch (or arrived since the last wait) or `seconds` pass."""
        try:
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        except TimeoutError:
            pass
        self._wake.clear()
