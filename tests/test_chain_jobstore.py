"""The job store keeps each job's parts on LevelDB, atomically, and survives damaged values."""

from __future__ import annotations

import pytest

from camelid.chain.jobstore import CLIENT, COMPUTE, POOL, JobStore
from camelid.chain.storage import LevelDBStore

JOB_A, JOB_B = b"\xaa" * 32, b"\xbb" * 32


def open_store(tmp_path) -> JobStore:
    return JobStore(LevelDBStore(tmp_path / "jobs"))


def test_parts_survive_closing_and_reopening(tmp_path):
    store = open_store(tmp_path)
    store.save(JOB_A, {POOL: {"history": [["created", 1.5]], "raw": b"\x00\x01"}, CLIENT: {"reward": 10**8}})
    store.save(JOB_B, {POOL: {"history": []}, COMPUTE: {"tokens": [1, 2, 3]}})
    store.close()
    loaded = open_store(tmp_path).load()
    assert loaded.skipped == []
    assert loaded.parts == {
        JOB_A: {POOL: {"history": [["created", 1.5]], "raw": b"\x00\x01"}, CLIENT: {"reward": 10**8}},
        JOB_B: {POOL: {"history": []}, COMPUTE: {"tokens": [1, 2, 3]}},
    }


def test_a_part_mapped_to_none_is_deleted_and_delete_forgets_the_job(tmp_path):
    store = open_store(tmp_path)
    store.save(JOB_A, {POOL: {"n": 1}, CLIENT: {"n": 2}})
    store.save(JOB_A, {CLIENT: None, POOL: {"n": 3}})
    assert store.load().parts == {JOB_A: {POOL: {"n": 3}}}
    store.save(JOB_B, {COMPUTE: {"n": 4}})
    store.delete(JOB_A)
    assert store.load().parts == {JOB_B: {COMPUTE: {"n": 4}}}


def test_damaged_values_and_keys_are_skipped_with_a_reason(tmp_path):
    raw = LevelDBStore(tmp_path / "jobs")
    store = JobStore(raw)
    store.save(JOB_A, {POOL: {"ok": True}})
    raw.put(POOL + JOB_B, b"\xc1")  # a msgpack byte that is never valid
    raw.put(CLIENT + JOB_B, b"\x93\x01\x02\x03")  # a list, not a map
    raw.put(COMPUTE + b"short", b"\x80")
    loaded = store.load()
    assert loaded.parts == {JOB_A: {POOL: {"ok": True}}}
    assert len(loaded.skipped) == 3
    assert any("not a map" in reason for reason in loaded.skipped)
    assert any("key is 6 bytes" in reason for reason in loaded.skipped)


def test_bad_arguments_are_refused_before_anything_is_written(tmp_path):
    store = open_store(tmp_path)
    with pytest.raises(ValueError, match="Job ID is 32 bytes"):
        store.save(b"\x01", {POOL: {}})
    with pytest.raises(ValueError, match="unknown job store part"):
        store.save(JOB_A, {POOL: {"n": 1}, b"x": {}})
    assert store.load().parts == {}
