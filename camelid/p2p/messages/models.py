"""getmanifest / manifest / nomodel, getchunk / chunk: fetching a model's file from peers (whitepaper 2.6.1).

A model's id commits to its sizes, chunk hashes and metadata root (camelid.compute.model_id), so a manifest is checked
against the id it was asked for and every chunk against the manifest's hash as it arrives: a peer can
waste our time but never make us keep a wrong byte.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from camelid.p2p.schema import MAX_TEXT_LEN, Blob, ListOf, Message, Text, UInt, wire

MODEL_ID_SIZE = 32
MAX_CHUNK_SIZE = 1 << 20  # the 1 MiB of camelid.compute.model_id.CHUNK_SIZE; a manifest may choose less
MAX_MODEL_CHUNKS = 50_000  # 50 GB in 1 MiB chunks, and the longest array a payload may hold


@dataclass(frozen=True)
class GetManifest(Message):
    """Asks for the manifest of a model, to learn its chunk size and chunk hashes."""

    command: ClassVar[str] = "getmanifest"
    max_payload: ClassVar[int] = 64

    model: bytes = wire(Blob(MODEL_ID_SIZE))


@dataclass(frozen=True)
class ManifestMessage(Message):
    """A model's manifest; the receiver accepts it only if `model` is the id of its sizes, chunk hashes and
    metadata root (checked against the file itself once it is assembled)."""

    command: ClassVar[str] = "manifest"
    max_payload: ClassVar[int] = MAX_MODEL_CHUNKS * (MODEL_ID_SIZE + 2) + 512

    model: bytes = wire(Blob(MODEL_ID_SIZE))
    file_size: int = wire(UInt(64))
    chunk_size: int = wire(UInt(32, MAX_CHUNK_SIZE))
    chunk_hashes: tuple[bytes, ...] = wire(ListOf(Blob(32), MAX_MODEL_CHUNKS))
    name: str = wire(Text(MAX_TEXT_LEN))
    metadata_root: bytes = wire(Blob(32))

    def manifest_fields(self) -> dict[str, Any]:
        """The fields as camelid.compute.model_id.Manifest.from_dict takes them."""
        return {
            "id": self.model,
            "file_size": self.file_size,
            "chunk_size": self.chunk_size,
            "chunk_hashes": list(self.chunk_hashes),
            "name": self.name,
            "metadata_root": self.metadata_root,
        }


@dataclass(frozen=True)
class NoModel(Message):
    """Answers getmanifest or getchunk for a model the node does not hold (or a chunk past its end)."""

    command: ClassVar[str] = "nomodel"
    max_payload: ClassVar[int] = 64

    model: bytes = wire(Blob(MODEL_ID_SIZE))


@dataclass(frozen=True)
class GetChunk(Message):
    """Asks for one chunk of a model the peer announced or gave us the manifest of."""

    command: ClassVar[str] = "getchunk"
    max_payload: ClassVar[int] = 64

    model: bytes = wire(Blob(MODEL_ID_SIZE))
    index: int = wire(UInt(32, MAX_MODEL_CHUNKS - 1))


@dataclass(frozen=True)
class Chunk(Message):
    """One chunk; the receiver checks its hash against the manifest and discourages a peer that sent it wrong."""

    command: ClassVar[str] = "chunk"
    max_payload: ClassVar[int] = MAX_CHUNK_SIZE + 128

    model: bytes = wire(Blob(MODEL_ID_SIZE))
    index: int = wire(UInt(32, MAX_MODEL_CHUNKS - 1))
    data: bytes = wire(Blob(1, MAX_CHUNK_SIZE))
