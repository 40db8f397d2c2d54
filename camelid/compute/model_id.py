"""Model identity: the Merkle root over fixed-size chunks of a GGUF file (whitepaper 2.6.1).

Chunking lets a node fetch a model from many peers in parallel and check every chunk on
arrival; the root names the exact bytes, so two nodes that agree on the id run the same model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from camelid.crypto.hashes import sha256d
from camelid.crypto.merkle import merkle_root

CHUNK_SIZE = 1 << 20  # 1 MiB: small enough to fetch from many peers, few enough hashes to ship


@dataclass(frozen=True)
class Manifest:
    """Everything needed to fetch and check a model chunk by chunk."""

    id: bytes
    file_size: int
    chunk_size: int
    chunk_hashes: tuple[bytes, ...]
    name: str

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise ValueError("manifest name must be a string")
        if not isinstance(self.file_size, int) or self.file_size < 0:
            raise ValueError(f"manifest file_size must be a non-negative int, got {self.file_size!r}")
        if not isinstance(self.chunk_size, int) or self.chunk_size <= 0:
            raise ValueError(f"manifest chunk_size must be a positive int, got {self.chunk_size!r}")
        if not all(isinstance(h, bytes) and len(h) == 32 for h in self.chunk_hashes):
            raise ValueError("every chunk hash must be 32 bytes")
        expected_chunks = -(-self.file_size // self.chunk_size)
        if len(self.chunk_hashes) != expected_chunks:
            raise ValueError(
                f"{self.file_size} bytes in chunks of {self.chunk_size} need {expected_chunks} hashes, "
                f"got {len(self.chunk_hashes)}"
            )
        if self.id != merkle_root(self.chunk_hashes):
            raise ValueError("manifest id is not the Merkle root of its chunk hashes")

    @property
    def id_hex(self) -> str:
        return self.id.hex()

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "file_size": self.file_size,
            "chunk_size": self.chunk_size,
            "chunk_hashes": list(self.chunk_hashes),
            "name": self.name,
        }

    @classmethod
    def from_dict(cls, data: Any) -> Manifest:
        """Decode and check a manifest received from a peer; ValueError on anything malformed."""
        if not isinstance(data, dict):
            raise ValueError("manifest must be a dict")
        missing = {"id", "file_size", "chunk_size", "chunk_hashes", "name"} - data.keys()
        if missing:
            raise ValueError(f"manifest lacks {sorted(missing)}")
        if not isinstance(data["id"], bytes) or len(data["id"]) != 32:
            raise ValueError("manifest id must be 32 bytes")
        if not isinstance(data["chunk_hashes"], list | tuple):
            raise ValueError("manifest chunk_hashes must be a list")
        return cls(
            id=data["id"],
            file_size=data["file_size"],
            chunk_size=data["chunk_size"],
            chunk_hashes=tuple(data["chunk_hashes"]),
            name=data["name"],
        )


def chunk_hash(chunk: bytes) -> bytes:
    """Hash of one chunk, as listed in a manifest."""
    return sha256d(chunk)


def manifest_of_file(path: Path, name: str | None = None, chunk_size: int = CHUNK_SIZE) -> Manifest:
    """Hash `path` chunk by chunk; `name` defaults to the file name."""
    hashes: list[bytes] = []
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            hashes.append(chunk_hash(chunk))
            size += len(chunk)
    return Manifest(
        id=merkle_root(hashes),
        file_size=size,
        chunk_size=chunk_size,
        chunk_hashes=tuple(hashes),
        name=Path(path).name if name is None else name,
    )


def model_id_of_file(path: Path) -> bytes:
    """The model id of a GGUF file: the root of its 1 MiB chunk hashes."""
    return manifest_of_file(path).id
