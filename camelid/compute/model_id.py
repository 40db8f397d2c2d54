"""Model identity (v3): the file size, the chunk size, a Merkle root over the chunks and a metadata root.

Chunking lets a node fetch a model from many peers in parallel and check every chunk on
arrival; the id names the exact bytes, so two nodes that agree on the id run the same model.

    chunk hash    = Merkle root of the chunk's 1 KiB leaves' sha256d hashes (the last leaf may be shorter)
    chunk_root    = Merkle root of the chunk hashes
    metadata_root = sha256d(record count u32 LE | Merkle root of the sha256d hashes of the metadata records)
    model id      = sha256d(MODEL_ID_TAG | file_size u64 LE | chunk_size u32 LE | chunk_root | metadata_root)

Every tree is one in which a level of odd length carries its last node up unchanged. Bitcoin's
tree duplicates that node instead, so the hash lists [a, b, c] and [a, b, c, c] share a root
(CVE-2012-2459): a manifest could then name a chunk that does not exist. Committing to the sizes
pins the number of chunks and leaves, and with them each one's exact length, so one id has
exactly one valid manifest; the metadata root commits to its record count for the same reason.

Leaves let a dispute prove a byte range (one weight row) with its leaves and two short paths
instead of a 1 MiB chunk; the metadata records (camelid.compute.model_meta) say which tensor and row
those bytes are (camelid.compute.model_proof). This is what docs/jobs-design.md called "model id v2".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from camelid.compute.model_meta import gguf_records
from camelid.crypto.hashes import sha256d
from camelid.crypto.merkle import chunk_root

CHUNK_SIZE = 1 << 20  # 1 MiB: small enough to fetch from many peers, few enough hashes to ship
LEAF_SIZE = 1 << 10  # 1 KiB: a weight row of 16 KB is proven with 16 leaves, not 1 MiB
MODEL_ID_TAG = b"CamelidCoin model id v3"


@dataclass(frozen=True)
class Manifest:
    """Everything needed to fetch and check a model chunk by chunk."""

    id: bytes
    file_size: int
    chunk_size: int
    chunk_hashes: tuple[bytes, ...]
    name: str
    metadata_root: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise ValueError("manifest name must be a string")
        if not isinstance(self.file_size, int) or not 0 < self.file_size < 1 << 64:
            raise ValueError(f"manifest file_size must be a positive 64-bit int, got {self.file_size!r}")
        if not isinstance(self.chunk_size, int) or not 0 < self.chunk_size <= CHUNK_SIZE:
            raise ValueError(f"manifest chunk_size must be an int in 1-{CHUNK_SIZE}, got {self.chunk_size!r}")
        if not all(isinstance(h, bytes) and len(h) == 32 for h in self.chunk_hashes):
            raise ValueError("every chunk hash must be 32 bytes")
        expected_chunks = -(-self.file_size // self.chunk_size)
        if len(self.chunk_hashes) != expected_chunks:
            raise ValueError(
                f"{self.file_size} bytes in chunks of {self.chunk_size} need {expected_chunks} hashes, "
                f"got {len(self.chunk_hashes)}"
            )
        if not isinstance(self.metadata_root, bytes) or len(self.metadata_root) != 32:
            raise ValueError("manifest metadata_root must be 32 bytes")
        if self.id != model_id(self.file_size, self.chunk_size, self.chunk_hashes, self.metadata_root):
            raise ValueError("manifest id does not commit to its sizes, chunk hashes and metadata root")

    @property
    def id_hex(self) -> str:
        return self.id.hex()

    def chunk_length(self, index: int) -> int:
        """The exact length chunk `index` has: the chunk size, less for the last one."""
        return min(self.chunk_size, self.file_size - index * self.chunk_size)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "file_size": self.file_size,
            "chunk_size": self.chunk_size,
            "chunk_hashes": list(self.chunk_hashes),
            "name": self.name,
            "metadata_root": self.metadata_root,
        }

    @classmethod
    def from_dict(cls, data: Any) -> Manifest:
        """Decode and check a manifest received from a peer; ValueError on anything malformed."""
        if not isinstance(data, dict):
            raise ValueError("manifest must be a dict")
        missing = {"id", "file_size", "chunk_size", "chunk_hashes", "name", "metadata_root"} - data.keys()
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
            metadata_root=data["metadata_root"],
        )


def chunk_hash(chunk: bytes) -> bytes:
    """Hash of one chunk, as listed in a manifest: the root of its 1 KiB leaves."""
    return chunk_root(leaf_hashes(chunk))


def leaf_hashes(data: bytes) -> list[bytes]:
    """sha256d of each 1 KiB leaf of `data` (one chunk, or a run of its leaves from a leaf boundary)."""
    view = memoryview(data)
    return [sha256d(view[i : i + LEAF_SIZE]) for i in range(0, len(data), LEAF_SIZE)]


def metadata_root(records: list[bytes]) -> bytes:
    """The root of a file's metadata records, committing to their count; a file with none has one too."""
    return sha256d(len(records).to_bytes(4, "little") + chunk_root([sha256d(r) for r in records]))


def model_id(file_size: int, chunk_size: int, hashes: tuple[bytes, ...] | list[bytes], meta_root: bytes) -> bytes:
    """The id of a model file of `file_size` bytes cut into `chunk_size`-byte chunks with these hashes."""
    sizes = file_size.to_bytes(8, "little") + chunk_size.to_bytes(4, "little")
    return sha256d(MODEL_ID_TAG + sizes + chunk_root(hashes) + meta_root)


def manifest_of_file(path: Path, name: str | None = None, chunk_size: int = CHUNK_SIZE) -> Manifest:
    """Hash `path` chunk by chunk and read its metadata records; `name` defaults to the file name.

    ValueError for a file that starts as GGUF but cannot be read as one (a file that is not GGUF has
    no metadata records)."""
    hashes: list[bytes] = []
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            hashes.append(chunk_hash(chunk))
            size += len(chunk)
    meta = metadata_root(gguf_records(path))
    return Manifest(
        id=model_id(size, chunk_size, hashes, meta),
        file_size=size,
        chunk_size=chunk_size,
        chunk_hashes=tuple(hashes),
        name=Path(path).name if name is None else name,
        metadata_root=meta,
    )


def model_id_of_file(path: Path) -> bytes:
    """The model id of a GGUF file cut into 1 MiB chunks."""
    return manifest_of_file(path).id
