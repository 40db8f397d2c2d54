"""The model store on disk: import, reload, chunks, partial fetches that resume, removal; and the upload budget."""

from __future__ import annotations

import json

import pytest
from tiny_model import write_tiny_model

from camelid.compute.model_id import Manifest, manifest_of_file, model_id
from camelid.compute.model_store import ModelStore, manifest_from_json, manifest_to_json, parse_model_id
from camelid.node.model_service import ByteBudget

CHUNK = 64 * 1024


@pytest.fixture
def model_file(tmp_path):
    return write_tiny_model(tmp_path / "tiny.gguf")


def test_an_imported_model_is_found_again_by_a_new_store(tmp_path, model_file):
    store = ModelStore(tmp_path / "models")
    manifest = store.import_file(model_file, CHUNK)
    assert manifest == manifest_of_file(model_file, chunk_size=CHUNK)
    assert len(manifest.chunk_hashes) > 3
    assert store.model_path(manifest.id).read_bytes() == model_file.read_bytes()

    reopened = ModelStore(tmp_path / "models")
    assert reopened.manifests() == [manifest]
    data = model_file.read_bytes()
    assert reopened.read_chunk(manifest.id, 1) == data[CHUNK : 2 * CHUNK]
    last = len(manifest.chunk_hashes) - 1
    assert reopened.read_chunk(manifest.id, last) == data[last * CHUNK :]
    with pytest.raises(IndexError):
        reopened.read_chunk(manifest.id, last + 1)
    with pytest.raises(KeyError):
        reopened.read_chunk(bytes(32), 0)


def test_removing_a_model_deletes_its_files(tmp_path, model_file):
    store = ModelStore(tmp_path / "models")
    manifest = store.import_file(model_file, CHUNK)
    assert store.remove(manifest.id)
    assert store.get(manifest.id) is None and list(store.root.iterdir()) == []
    assert not store.remove(manifest.id)
    assert model_file.exists()  # the imported original is the operator's


def test_a_partial_model_resumes_with_the_chunks_flushed_and_still_intact(tmp_path, model_file):
    manifest = manifest_of_file(model_file, chunk_size=CHUNK)
    data = model_file.read_bytes()
    store = ModelStore(tmp_path / "models")
    partial = store.open_partial(manifest)
    for index in (0, 2, 3):
        partial.write_chunk(index, data[index * CHUNK : (index + 1) * CHUNK])
    partial.flush()
    partial.write_chunk(4, data[4 * CHUNK : 5 * CHUNK])  # written after the last flush, then a crash: not recorded
    with open(partial.path, "r+b") as f:  # chunk 3 damaged on disk after its flush
        f.seek(3 * CHUNK)
        f.write(b"\0" * 16)

    assert store.partial_manifest(manifest.id) == manifest
    resumed = ModelStore(tmp_path / "models").open_partial(manifest)
    assert [i for i, done in enumerate(resumed.done) if done] == [0, 2]
    assert resumed.bytes_done == 2 * CHUNK
    assert resumed.missing()[:3] == [1, 3, 4]
    for index in resumed.missing():
        resumed.write_chunk(index, data[index * CHUNK : (index + 1) * CHUNK])
    path = resumed.finish()
    assert path.read_bytes() == data
    assert not resumed.path.exists() and not resumed.progress_path.exists()
    assert ModelStore(tmp_path / "models").get(manifest.id) == manifest


def test_a_partial_file_that_does_not_hash_to_its_id_is_discarded(tmp_path, model_file):
    manifest = manifest_of_file(model_file, chunk_size=CHUNK)
    store = ModelStore(tmp_path / "models")
    partial = store.open_partial(manifest)
    for index in partial.missing():
        partial.write_chunk(index, b"\x01" * partial.manifest.chunk_length(index))
    with pytest.raises(ValueError, match="does not hash to its id"):
        partial.finish()
    assert store.get(manifest.id) is None
    assert not store.model_path(manifest.id).exists() and not partial.path.exists()


def test_an_id_committing_to_false_metadata_never_becomes_a_stored_model(tmp_path, model_file):
    """Every chunk matches, but the id names other tensor records than the file has: the file is refused."""
    true = manifest_of_file(model_file, chunk_size=CHUNK)
    false_root = bytes(32)
    forged = Manifest(
        model_id(true.file_size, CHUNK, true.chunk_hashes, false_root),
        true.file_size,
        CHUNK,
        true.chunk_hashes,
        "forged",
        false_root,
    )
    store = ModelStore(tmp_path / "models")
    partial = store.open_partial(forged)
    data = model_file.read_bytes()
    for index in partial.missing():
        partial.write_chunk(index, data[index * CHUNK : (index + 1) * CHUNK])
    with pytest.raises(ValueError, match="does not hash to its id"):
        partial.finish()
    assert store.get(forged.id) is None and not store.model_path(forged.id).exists()


def test_an_old_manifest_file_without_a_metadata_root_is_refused(model_file):
    old = manifest_to_json(manifest_of_file(model_file, chunk_size=CHUNK))
    del old["metadata_root"]
    with pytest.raises(ValueError, match="metadata_root"):
        manifest_from_json(old)


def test_manifest_json_round_trips_and_refuses_a_wrong_root(model_file):
    manifest = manifest_of_file(model_file, chunk_size=CHUNK)
    assert manifest_from_json(json.loads(json.dumps(manifest_to_json(manifest)))) == manifest
    forged = manifest_to_json(manifest) | {"id": "00" * 32}
    with pytest.raises(ValueError, match="does not commit"):
        manifest_from_json(forged)
    with pytest.raises(ValueError, match="chunk_hashes"):
        manifest_from_json({"id": "00" * 32})


@pytest.mark.parametrize("text", ["", "zz" * 32, "00" * 31, "00" * 33])
def test_a_malformed_model_id_is_refused(text):
    with pytest.raises(ValueError, match="64 hex digits"):
        parse_model_id(text)


def test_the_byte_budget_allows_a_burst_then_the_rate():
    now = [0.0]
    budget = ByteBudget(rate=1000, burst=2000, clock=lambda: now[0])
    assert budget.reserve(1500) == 0
    assert budget.reserve(1500) == pytest.approx(1.0)  # 1000 bytes of debt at 1000 B/s
    assert budget.reserve(500) == pytest.approx(1.5)  # queued behind the debt
    now[0] = 10.0
    assert budget.reserve(2000) == 0  # refilled, but never beyond the burst
    assert budget.reserve(1) == pytest.approx(0.001)


def test_a_damaged_manifest_file_loses_that_model_only(tmp_path, model_file):
    store = ModelStore(tmp_path / "models")
    manifest = store.import_file(model_file, CHUNK)
    other = store.import_file(write_tiny_model(tmp_path / "other.gguf", seed=1), CHUNK)
    store.manifest_path(other.id).write_text("{not json")
    assert ModelStore(tmp_path / "models").manifests() == [manifest]
