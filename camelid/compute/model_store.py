"""The models a node holds on disk, and the half-fetched ones it is still assembling.

Layout, in <network datadir>/models/:

    <id_hex>.gguf            a complete model, whose chunks hash to <id_hex>
    <id_hex>.manifest.json   its manifest (chunk size and hashes), so it is never hashed again at start-up
    <id_hex>.partial         a model being fetched: the full-size file, chunks written where they belong
    <id_hex>.progress.json   the partial's manifest and a bitmap of the chunks written and fsynced

A complete model appears only by rename, after the whole file was checked against its id, so a
crash never leaves a wrong file under a final name; a crash mid-fetch loses at most the chunks written
since the last progress flush.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from camelid.atomicfile import write_atomically
from camelid.compute.model_id import CHUNK_SIZE, Manifest, chunk_hash, manifest_of_file

MODEL_SUFFIX = ".gguf"
MANIFEST_SUFFIX = ".manifest.json"
PARTIAL_SUFFIX = ".partial"
PROGRESS_SUFFIX = ".progress.json"

log = logging.getLogger(__name__)


def manifest_to_json(manifest: Manifest) -> dict[str, Any]:
    return {
        "id": manifest.id_hex,
        "file_size": manifest.file_size,
        "chunk_size": manifest.chunk_size,
        "chunk_hashes": [h.hex() for h in manifest.chunk_hashes],
        "name": manifest.name,
        "metadata_root": manifest.metadata_root.hex(),
    }


def manifest_from_json(data: Any) -> Manifest:
    """The inverse of manifest_to_json; ValueError naming the defect for anything else."""
    if not isinstance(data, dict) or not isinstance(data.get("id"), str):
        raise ValueError("a manifest file must hold an object with a hex id")
    if not isinstance(data.get("chunk_hashes"), list):
        raise ValueError("a manifest file must hold a chunk_hashes list")
    if not isinstance(data.get("metadata_root"), str):
        raise ValueError("a manifest file must hold a hex metadata_root (a model id v3 manifest)")
    try:
        return Manifest.from_dict(
            {
                **data,
                "id": bytes.fromhex(data["id"]),
                "chunk_hashes": [bytes.fromhex(h) for h in data["chunk_hashes"]],
                "metadata_root": bytes.fromhex(data["metadata_root"]),
            }
        )
    except TypeError:
        raise ValueError("manifest chunk hashes must be hex strings") from None


def parse_model_id(text: str) -> bytes:
    """A model id given as 64 hex digits."""
    try:
        model_id = bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"a model id is 64 hex digits, got {text!r:.80}") from None
    if len(model_id) != 32:
        raise ValueError(f"a model id is 64 hex digits, got {len(text)} characters")
    return model_id


class PartialModel:
    """A model being fetched: chunks land at their offsets in the .partial file, in any order."""

    def __init__(self, store: ModelStore, manifest: Manifest) -> None:
        self.manifest = manifest
        self.path = store.root / f"{manifest.id_hex}{PARTIAL_SUFFIX}"
        self.progress_path = store.root / f"{manifest.id_hex}{PROGRESS_SUFFIX}"
        self._store = store
        self.done = [False] * len(manifest.chunk_hashes)
        if self.progress_path.exists() and self.path.exists():
            self._resume()
        else:
            with open(self.path, "wb") as f:
                f.truncate(manifest.file_size)
            self.flush()
        self._file = open(self.path, "r+b")  # noqa: SIM115 -- closed by finish() or close()

    def _resume(self) -> None:
        """Trust a chunk marked done only if it still hashes right: the bitmap may be newer than the data."""
        saved = json.loads(self.progress_path.read_text())
        bits = bytes.fromhex(saved.get("done", ""))
        with open(self.path, "rb") as f:
            for index in range(len(self.done)):
                if index // 8 < len(bits) and bits[index // 8] >> (index % 8) & 1:
                    f.seek(index * self.manifest.chunk_size)
                    chunk = f.read(self.manifest.chunk_size)
                    self.done[index] = chunk_hash(chunk) == self.manifest.chunk_hashes[index]

    @property
    def chunks_done(self) -> int:
        return sum(self.done)

    @property
    def bytes_done(self) -> int:
        return sum(self.manifest.chunk_length(i) for i, done in enumerate(self.done) if done)

    def missing(self) -> list[int]:
        return [i for i, done in enumerate(self.done) if not done]

    def write_chunk(self, index: int, data: bytes) -> None:
        """Store a chunk the caller has checked against the manifest."""
        self._file.seek(index * self.manifest.chunk_size)
        self._file.write(data)
        self.done[index] = True

    def flush(self) -> None:
        """Make the chunks written so far survive a crash: data first, then the bitmap that names them."""
        if hasattr(self, "_file"):
            self._file.flush()
            os.fsync(self._file.fileno())
        bits = bytearray((len(self.done) + 7) // 8)
        for index, done in enumerate(self.done):
            if done:
                bits[index // 8] |= 1 << (index % 8)
        record = {"manifest": manifest_to_json(self.manifest), "done": bits.hex()}
        write_atomically(self.progress_path, json.dumps(record).encode())

    def finish(self) -> Path:
        """Check the whole file against its id and rename it into place; ValueError (the partial discarded) if wrong.

        The id is recomputed from the file, metadata records included: a manifest whose metadata root does
        not match the file's is refused here, as every chunk matched but the file is not the model named."""
        self.flush()
        self._file.close()
        manifest = self.manifest
        try:
            matches = manifest_of_file(self.path, chunk_size=manifest.chunk_size).id == manifest.id
        except ValueError:  # starts as GGUF but does not parse
            matches = False
        if not matches:
            self.discard()
            raise ValueError(f"model {manifest.id_hex}: assembled file does not hash to its id; discarded")
        self._store.adopt(self.path, manifest)
        self.progress_path.unlink(missing_ok=True)
        return self._store.model_path(manifest.id)

    def close(self) -> None:
        """Stop writing, keeping the partial file and its progress for a later resume."""
        if not self._file.closed:
            self.flush()
            self._file.close()

    def discard(self) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)
        self.progress_path.unlink(missing_ok=True)


class ModelStore:
    """Complete models by id under `root`, plus the partial ones (see the module doc for the layout)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._manifests: dict[bytes, Manifest] = {}
        for path in sorted(root.glob(f"*{MANIFEST_SUFFIX}")):
            try:
                manifest = manifest_from_json(json.loads(path.read_text()))
            except ValueError as exc:  # JSON errors included: a damaged manifest loses one model, not the node
                log.warning("ignoring model manifest %s: %s", path, exc)
                continue
            if self.model_path(manifest.id).exists():
                self._manifests[manifest.id] = manifest

    def model_path(self, model_id: bytes) -> Path:
        return self.root / f"{model_id.hex()}{MODEL_SUFFIX}"

    def manifest_path(self, model_id: bytes) -> Path:
        return self.root / f"{model_id.hex()}{MANIFEST_SUFFIX}"

    def manifests(self) -> list[Manifest]:
        return list(self._manifests.values())

    def get(self, model_id: bytes) -> Manifest | None:
        return self._manifests.get(model_id)

    def path_of(self, model_id: bytes) -> Path | None:
        """The file of a model the store holds whole; None for one it lacks (or still fetches)."""
        return self.model_path(model_id) if model_id in self._manifests else None

    def import_file(self, source: Path, chunk_size: int = CHUNK_SIZE) -> Manifest:
        """Hash a GGUF file and put it in the store: hard-linked when possible, else copied."""
        manifest = manifest_of_file(source, chunk_size=chunk_size)
        if manifest.id in self._manifests:
            return manifest
        staging = self.root / f"{manifest.id_hex}.import"
        staging.unlink(missing_ok=True)
        try:
            os.link(source, staging)
        except OSError:
            shutil.copyfile(source, staging)
        self.adopt(staging, manifest)
        return manifest

    def adopt(self, path: Path, manifest: Manifest) -> None:
        """Move a checked file into place under its id, manifest first so the model is never without one."""
        write_atomically(self.manifest_path(manifest.id), json.dumps(manifest_to_json(manifest)).encode())
        os.replace(path, self.model_path(manifest.id))
        self._manifests[manifest.id] = manifest

    def read_chunk(self, model_id: bytes, index: int) -> bytes:
        """Chunk `index` of a held model; KeyError if the model is not held, IndexError past its end."""
        manifest = self._manifests[model_id]
        if not 0 <= index < len(manifest.chunk_hashes):
            raise IndexError(f"model {manifest.id_hex} has {len(manifest.chunk_hashes)} chunks, not {index + 1}")
        with open(self.model_path(model_id), "rb") as f:
            f.seek(index * manifest.chunk_size)
            return f.read(manifest.chunk_size)

    def partial_manifest(self, model_id: bytes) -> Manifest | None:
        """The manifest of an interrupted fetch of `model_id`, if one is on disk."""
        path = self.root / f"{model_id.hex()}{PROGRESS_SUFFIX}"
        if not path.exists() or not (self.root / f"{model_id.hex()}{PARTIAL_SUFFIX}").exists():
            return None
        manifest = manifest_from_json(json.loads(path.read_text())["manifest"])
        return manifest if manifest.id == model_id else None

    def open_partial(self, manifest: Manifest) -> PartialModel:
        return PartialModel(self, manifest)

    def remove(self, model_id: bytes) -> bool:
        """Delete a model, complete or partial; False if there was nothing to delete."""
        found = self._manifests.pop(model_id, None) is not None
        for suffix in (MODEL_SUFFIX, MANIFEST_SUFFIX, PARTIAL_SUFFIX, PROGRESS_SUFFIX):
            path = self.root / f"{model_id.hex()}{suffix}"
            if path.exists():
                path.unlink()
                found = True
        return found
