"""Short proofs against a model id (v3): a byte range of the file, a weight row, the header record.

The dispute game's referee recomputes one element from one weight row (docs/jobs-design.md, "The RASTiC
dispute game"); it holds no model, only its id. A range proof carries the file's sizes and metadata
root, the whole 1 KiB leaves that cover the range, a leaf path per chunk touched and one chunk path; a
row proof adds the tensor's metadata record with its path, which says where the row lies. The
verifiers are pure (no file, only hashing) and raise ValueError on anything malformed, as consensus
code must; the provers read the file.

Paths prove a contiguous run of nodes of an odd-carrying tree (camelid.compute.model_id.chunk_root):
level by level, the left sibling of the run if it starts at an odd index and the right sibling if it
ends at an even index that is not the level's carried last node, so a single leaf's path is the usual
one. Encodings (little-endian):

    path        = u8 n | n x 32-byte hash
    range proof = u64 file_size | u32 chunk_size | metadata_root | covering leaves | leaf path per chunk | chunk path
    record part = u16 len | record | u32 index | u32 record count | path
    row proof   = record part | range proof
    header proof = u64 file_size | u32 chunk_size | chunk_root | record part
"""

from __future__ import annotations

import struct
from pathlib import Path

from camelid.compute.model_id import (
    CHUNK_SIZE,
    LEAF_SIZE,
    MODEL_ID_TAG,
    Manifest,
    chunk_root,
    leaf_hashes,
)
from camelid.compute.model_meta import Cursor, HeaderRecord, TensorRecord, decode_record, gguf_records
from camelid.crypto.hashes import sha256d

MAX_RANGE = CHUNK_SIZE  # the most bytes one range proof opens; a weight row is far less


def range_path(hashes: list[bytes] | tuple[bytes, ...], lo: int, hi: int) -> list[bytes]:
    """The siblings that, with hashes[lo:hi], give the tree's root (range_root)."""
    level, path = list(hashes), []
    while len(level) > 1:
        if lo % 2:
            path.append(level[lo - 1])
        if hi % 2 and hi < len(level):
            path.append(level[hi])
        paired = [sha256d(level[i] + level[i + 1]) for i in range(0, len(level) - 1, 2)]
        level = paired + level[-1:] if len(level) % 2 else paired
        lo, hi = lo // 2, (hi + 1) // 2
    return path


def range_root(n: int, lo: int, known: list[bytes], path: list[bytes]) -> bytes:
    """The root of an n-leaf tree whose leaves lo.. are `known`, the rest proven by `path` (all of it)."""
    if not known or lo < 0 or lo + len(known) > n:
        raise ValueError(f"leaves {lo}..{lo + len(known)} are not in a tree of {n}")
    nodes, hi, used = list(known), lo + len(known), 0

    def sibling() -> bytes:
        nonlocal used
        if used == len(path):
            raise ValueError("Merkle path too short")
        used += 1
        return path[used - 1]

    while n > 1:
        if lo % 2:
            nodes.insert(0, sibling())
            lo -= 1
        if hi % 2 and hi < n:
            nodes.append(sibling())
            hi += 1
        paired = [sha256d(nodes[i] + nodes[i + 1]) for i in range(0, len(nodes) - 1, 2)]
        nodes = paired + nodes[-1:] if len(nodes) % 2 else paired
        lo, hi, n = lo // 2, (hi + 1) // 2, (n + 1) // 2
    if used != len(path):
        raise ValueError(f"Merkle path has {len(path) - used} hashes too many")
    return nodes[0]


def _spans(file_size: int, chunk_size: int, offset: int, length: int) -> list[tuple[int, int, int, int]]:
    """Per chunk the range touches: (chunk index, chunk length, first leaf, end leaf)."""
    if not 0 < file_size < 1 << 64 or not 0 < chunk_size <= CHUNK_SIZE:
        raise ValueError(f"bad sizes: file {file_size}, chunk {chunk_size}")
    if not 0 < length <= MAX_RANGE or offset < 0 or offset + length > file_size:
        raise ValueError(f"range [{offset}, {offset + length}) is not 1-{MAX_RANGE} bytes of a {file_size}-byte file")
    spans = []
    for c in range(offset // chunk_size, (offset + length - 1) // chunk_size + 1):
        start = c * chunk_size
        size = min(chunk_size, file_size - start)
        lo, hi = max(offset, start) - start, min(offset + length, start + size) - start
        spans.append((c, size, lo // LEAF_SIZE, -(-hi // LEAF_SIZE)))
    return spans


def path_bytes(path: list[bytes]) -> bytes:
    return bytes([len(path)]) + b"".join(path)


def read_path(cur: Cursor, what: str) -> list[bytes]:
    (n,) = cur.unpack("<B", what)
    return [cur.take(32, what) for _ in range(n)]


def _id(file_size: int, chunk_size: int, root: bytes, meta_root: bytes) -> bytes:
    return sha256d(MODEL_ID_TAG + struct.pack("<QI", file_size, chunk_size) + root + meta_root)


def prove_range(path: Path, manifest: Manifest, offset: int, length: int) -> bytes:
    """A proof that the file's bytes [offset, offset + length) are what verify_range returns."""
    spans = _spans(manifest.file_size, manifest.chunk_size, offset, length)
    cs = manifest.chunk_size
    out, paths = [struct.pack("<QI", manifest.file_size, cs), manifest.metadata_root], []
    with open(path, "rb") as f:
        for c, size, a, b in spans:
            f.seek(c * cs)
            chunk = f.read(size)
            out.append(chunk[a * LEAF_SIZE : b * LEAF_SIZE])
            paths.append(path_bytes(range_path(leaf_hashes(chunk), a, b)))
    chunks = range_path(manifest.chunk_hashes, spans[0][0], spans[-1][0] + 1)
    return b"".join(out + paths) + path_bytes(chunks)


def _verify_range(model_id: bytes, offset: int, length: int, cur: Cursor) -> tuple[bytes, bytes]:
    """(the range's bytes, the metadata root the id commits to), reading the range proof to its end."""
    file_size, chunk_size = cur.unpack("<QI", "the range proof's sizes")
    meta_root = cur.take(32, "the metadata root")
    if len(cur.data) - cur.pos < length:  # before any work: the work then grows with the proof, not the claim
        raise ValueError(f"the proof is shorter than the {length} bytes it would open")
    spans = _spans(file_size, chunk_size, offset, length)
    segments = [cur.take(min(b * LEAF_SIZE, size) - a * LEAF_SIZE, "the leaves") for _, size, a, b in spans]
    hashes = [
        range_root(-(-size // LEAF_SIZE), a, leaf_hashes(segment), read_path(cur, "a leaf path"))
        for (_, size, a, _), segment in zip(spans, segments, strict=True)
    ]
    root = range_root(-(-file_size // chunk_size), spans[0][0], hashes, read_path(cur, "the chunk path"))
    cur.end("range proof")
    if _id(file_size, chunk_size, root, meta_root) != model_id:
        raise ValueError("the proof does not hash to the model id")
    skip = offset - (spans[0][0] * chunk_size + spans[0][2] * LEAF_SIZE)
    return b"".join(segments)[skip : skip + length], meta_root


def verify_range(model_id: bytes, offset: int, length: int, proof: bytes) -> bytes:
    """Bytes [offset, offset + length) of model `model_id`'s file, as `proof` proves them; ValueError if it does not."""
    return _verify_range(model_id, offset, length, Cursor(proof))[0]


def _record_part(records: list[bytes], index: int) -> bytes:
    path = range_path([sha256d(r) for r in records], index, index + 1)
    return (
        struct.pack("<H", len(records[index]))
        + records[index]
        + struct.pack("<II", index, len(records))
        + path_bytes(path)
    )


def _read_record(cur: Cursor) -> tuple[HeaderRecord | TensorRecord, bytes]:
    """A record and the metadata root its path leads to."""
    (size,) = cur.unpack("<H", "the record length")
    record = cur.take(size, "the record")
    index, count = cur.unpack("<II", "the record index")
    root = range_root(count, index, [sha256d(record)], read_path(cur, "the record path"))
    return decode_record(record), sha256d(struct.pack("<I", count) + root)


def prove_row(path: Path, manifest: Manifest, name: str, row: int) -> bytes:
    """A proof that row `row` of tensor `name` is the bytes verify_row returns."""
    records = gguf_records(path)
    decoded = [decode_record(r) for r in records]
    record = next((r for r in decoded if isinstance(r, TensorRecord) and r.name == name), None)
    if record is None:
        raise ValueError(f"model has no tensor {name}")
    return _record_part(records, decoded.index(record)) + prove_range(path, manifest, *record.row_span(row))


def row_proof_record(proof: bytes) -> HeaderRecord | TensorRecord:
    """The record a row proof opens with, unchecked: its shape tells a caller which row to ask verify_row for."""
    return _read_record(Cursor(proof))[0]


def verify_row(model_id: bytes, name: str, row: int, proof: bytes) -> tuple[TensorRecord, bytes]:
    """Tensor `name`'s record and the raw bytes of its row `row` (ggml's layout), as `proof` proves them."""
    cur = Cursor(proof)
    record, meta_root = _read_record(cur)
    if not isinstance(record, TensorRecord) or record.name != name:
        raise ValueError(f"the proof is for {getattr(record, 'name', 'the header')}, not tensor {name}")
    data, committed = _verify_range(model_id, *record.row_span(row), cur)
    if meta_root != committed:
        raise ValueError(f"tensor {name}'s record is not in the model's metadata")
    return record, data


def prove_header(path: Path, manifest: Manifest) -> bytes:
    """A proof of the header record (architecture, vocabulary size, end tokens)."""
    records = gguf_records(path)
    if not records:
        raise ValueError(f"{path} is not GGUF: it has no header record")
    sizes = struct.pack("<QI", manifest.file_size, manifest.chunk_size)
    return sizes + chunk_root(manifest.chunk_hashes) + _record_part(records, 0)


def verify_header(model_id: bytes, proof: bytes) -> HeaderRecord:
    """Model `model_id`'s header record, as `proof` proves it."""
    cur = Cursor(proof)
    file_size, chunk_size = cur.unpack("<QI", "the header proof's sizes")
    root = cur.take(32, "the chunk root")
    record, meta_root = _read_record(cur)
    cur.end("header proof")
    if not isinstance(record, HeaderRecord) or _id(file_size, chunk_size, root, meta_root) != model_id:
        raise ValueError("the proof is not of the model's header record")
    return record
