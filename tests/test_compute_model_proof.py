"""Proofs against a model id (v3): byte ranges, weight rows and the header record, and the metadata they rest on."""

from __future__ import annotations

import struct
from pathlib import Path

import gguf
import pytest
from tiny_model import write_tiny_gemma3, write_tiny_model

from camelid.compute.engine import Engine
from camelid.compute.model_id import CHUNK_SIZE, LEAF_SIZE, Manifest, chunk_root, manifest_of_file
from camelid.compute.model_meta import HeaderRecord, TensorRecord, decode_record, gguf_records
from camelid.compute.model_proof import (
    prove_header,
    prove_range,
    prove_row,
    range_path,
    range_root,
    verify_header,
    verify_range,
    verify_row,
)
from camelid.compute.reference import ReferenceModel

WRITERS = {"llama": write_tiny_model, "gemma3": write_tiny_gemma3}
# 1 MiB (the default: the file is one chunk), a leaf multiple, and a size that cuts leaves short at every chunk's end
CHUNK_SIZES = (CHUNK_SIZE, 8 * LEAF_SIZE, 3000)


@pytest.fixture(scope="module", params=sorted(WRITERS))
def model(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return WRITERS[request.param](tmp_path_factory.mktemp("tiny") / f"{request.param}.gguf")


def test_range_paths_rebuild_the_root_of_every_run_of_every_tree() -> None:
    for n in range(1, 18):
        hashes = [bytes([i]) * 32 for i in range(n)]
        for lo in range(n):
            for hi in range(lo + 1, n + 1):
                path = range_path(hashes, lo, hi)
                assert range_root(n, lo, hashes[lo:hi], path) == chunk_root(hashes)
                if path:
                    with pytest.raises(ValueError, match="too short"):
                        range_root(n, lo, hashes[lo:hi], path[:-1])
                with pytest.raises(ValueError, match="too many"):
                    range_root(n, lo, hashes[lo:hi], [*path, bytes(32)])
    with pytest.raises(ValueError, match="not in a tree"):
        range_root(3, 2, [bytes(32), bytes(32)], [])


def test_the_records_are_the_tensors_gguf_reads_and_the_end_tokens_llama_cpp_uses(model: Path) -> None:
    header, *tensors = (decode_record(r) for r in gguf_records(model))
    reader = gguf.GGUFReader(str(model))
    assert tensors == [
        TensorRecord(t.name, int(t.tensor_type), tuple(int(d) for d in t.shape), t.data_offset, t.n_bytes)
        for t in reader.tensors
    ]
    with Engine(model, n_ctx=64) as engine:
        ends = tuple(t for t in range(engine.n_vocab) if engine.is_end(t))
        arch = str(reader.get_field("general.architecture").contents())
        assert header == HeaderRecord(arch, engine.n_vocab, ends, header.output_tied, header.params)
    # what the referee reads instead of the file: the architecture's scalar hyperparameters and the tied output
    scalars = {
        f.name: f.contents()
        for f in reader.fields.values()
        if f.name.startswith(arch + ".") and f.types[0] not in (gguf.GGUFValueType.STRING, gguf.GGUFValueType.ARRAY)
    }
    assert scalars and {key: header.param(key) for key, _, _ in header.params} == scalars
    assert header.output_tied == all(t.name != "output.weight" for t in reader.tensors)
    assert all(decode_record(r.encode()) == r for r in (header, *tensors))


def test_a_file_that_is_not_gguf_has_no_records_and_a_broken_gguf_is_refused(tmp_path: Path, model: Path) -> None:
    plain = tmp_path / "plain.bin"
    plain.write_bytes(b"not a model" * 100)
    assert gguf_records(plain) == []
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(model.read_bytes()[:200])
    with pytest.raises(ValueError, match="not a readable GGUF file: truncated"):
        manifest_of_file(broken)


@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
def test_any_byte_range_is_proven_against_the_id(model: Path, chunk_size: int) -> None:
    manifest = manifest_of_file(model, chunk_size=chunk_size)
    data = model.read_bytes()
    for offset, length in [
        (0, 1),
        (1023, 2),
        (5000, 9000),
        (min(chunk_size, len(data) // 2) - 1, 2),
        (len(data) - 3, 3),
        (7, 70_000),
    ]:
        proof = prove_range(model, manifest, offset, length)
        assert verify_range(manifest.id, offset, length, proof) == data[offset : offset + length]
    with pytest.raises(ValueError, match="range"):
        prove_range(model, manifest, len(data) - 1, 2)


@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
def test_a_proven_row_is_the_row_the_reference_pass_reads(model: Path, chunk_size: int) -> None:
    manifest = manifest_of_file(model, chunk_size=chunk_size)
    reference = ReferenceModel(model)
    for name in ("token_embd.weight", "blk.1.ffn_down.weight", "output_norm.weight"):
        weight = reference.weight(name).reshape(-1, reference.weight(name).shape[-1])
        for row in (0, len(weight) // 2, len(weight) - 1):
            record, data = verify_row(manifest.id, name, row, prove_row(model, manifest, name, row))
            assert record.ggml_type == gguf.GGMLQuantizationType.F32
            assert data == weight[row].astype("<f4").tobytes()  # float32 tiny models: the row, byte for byte


def test_quantised_rows_are_whole_blocks() -> None:
    q4k = TensorRecord("w", int(gguf.GGMLQuantizationType.Q4_K), (512, 3), 1000, 3 * 2 * 144)
    assert [q4k.row_span(r) for r in range(3)] == [(1000, 288), (1288, 288), (1576, 288)]
    with pytest.raises(ValueError, match="not whole"):
        TensorRecord("w", int(gguf.GGMLQuantizationType.Q4_K), (100, 3), 0, 0).row_span(0)
    with pytest.raises(ValueError, match="do not fit"):
        TensorRecord("w", int(gguf.GGMLQuantizationType.Q4_K), (512, 3), 0, 10).row_span(0)
    with pytest.raises(ValueError, match="has 3 rows"):
        q4k.row_span(3)


def _every_change_is_refused(proof: bytes, verify) -> None:
    for i in range(len(proof)):
        tampered = bytearray(proof)
        tampered[i] ^= 0x01
        with pytest.raises(ValueError):
            verify(bytes(tampered))
    for cut in range(len(proof)):
        with pytest.raises(ValueError):
            verify(proof[:cut])
    with pytest.raises(ValueError, match="after the range proof"):
        verify(proof + b"\x00")


def test_every_flipped_byte_and_every_truncation_of_a_range_proof_is_refused(tmp_path: Path) -> None:
    model = write_tiny_model(tmp_path / "tiny.gguf")
    manifest = manifest_of_file(model, chunk_size=3000)
    proof = prove_range(model, manifest, 2990, 20)  # two chunks, a short leaf at the end of the first
    verify_range(manifest.id, 2990, 20, proof)
    _every_change_is_refused(proof, lambda p: verify_range(manifest.id, 2990, 20, p))


def test_every_flipped_byte_and_every_truncation_of_a_row_proof_is_refused(tmp_path: Path) -> None:
    model = write_tiny_gemma3(tmp_path / "gemma3.gguf")
    manifest = manifest_of_file(model, chunk_size=8 * LEAF_SIZE)
    proof = prove_row(model, manifest, "blk.2.attn_k.weight", 5)
    verify_row(manifest.id, "blk.2.attn_k.weight", 5, proof)
    _every_change_is_refused(proof, lambda p: verify_row(manifest.id, "blk.2.attn_k.weight", 5, p))


def test_a_proof_never_passes_for_another_range_tensor_row_or_model(tmp_path: Path) -> None:
    model = write_tiny_model(tmp_path / "tiny.gguf")
    manifest = manifest_of_file(model, chunk_size=4096)
    data = model.read_bytes()
    proof = prove_range(model, manifest, 10_000, 600)
    for offset, length in [(10_000 + LEAF_SIZE, 600), (10_000 - LEAF_SIZE, 600), (10_000, 600 + LEAF_SIZE)]:
        with pytest.raises(ValueError):
            verify_range(manifest.id, offset, length, proof)
    # Within the same leaves a proof opens other bytes too, but only ever the file's own.
    assert verify_range(manifest.id, 10_001, 599, proof) == data[10_001:10_600]

    row = prove_row(model, manifest, "output.weight", 7)
    with pytest.raises(ValueError, match="not tensor token_embd.weight"):
        verify_row(manifest.id, "token_embd.weight", 7, row)
    with pytest.raises(ValueError):
        verify_row(manifest.id, "output.weight", 200, row)
    with pytest.raises(ValueError, match="has 260 rows"):
        verify_row(manifest.id, "output.weight", 260, row)
    other = manifest_of_file(write_tiny_model(tmp_path / "other.gguf", seed=1), chunk_size=4096)
    with pytest.raises(ValueError, match="model id"):
        verify_row(other.id, "output.weight", 7, row)


def test_a_short_proof_of_a_long_range_is_refused_before_any_hashing() -> None:
    claim = struct.pack("<QI", 1 << 40, 1) + bytes(32)  # 1-byte chunks: a 1 MiB range would touch 2^20 of them
    with pytest.raises(ValueError, match="shorter than the 1048576 bytes"):
        verify_range(bytes(32), 0, 1 << 20, claim + bytes(64))


def _record_part_length(proof: bytes) -> int:
    (size,) = struct.unpack_from("<H", proof)
    return 2 + size + 8 + 1 + 32 * proof[2 + size + 8]


def test_a_record_taken_from_another_tensor_or_model_does_not_pass(tmp_path: Path) -> None:
    model = write_tiny_model(tmp_path / "tiny.gguf")
    manifest = manifest_of_file(model, chunk_size=4096)
    proof = prove_row(model, manifest, "output.weight", 7)
    split = _record_part_length(proof)
    # A record that claims output.weight lies where token_embd.weight does: its path cannot reach the metadata root.
    embd = prove_row(model, manifest, "token_embd.weight", 7)
    record = decode_record(embd[2 : 2 + struct.unpack_from("<H", embd)[0]])
    assert isinstance(record, TensorRecord)
    moved = TensorRecord("output.weight", record.ggml_type, record.shape, record.offset, record.n_bytes).encode()
    forged_part = struct.pack("<H", len(moved)) + moved + proof[2 + len(moved) : split]
    forged_range = prove_range(model, manifest, *record.row_span(7))
    with pytest.raises(ValueError, match="not in the model's metadata"):
        verify_row(manifest.id, "output.weight", 7, forged_part + forged_range)
    # The record of another model, with that model's own path, is not in this model's metadata either.
    gemma = write_tiny_gemma3(tmp_path / "gemma3.gguf")
    other = prove_row(gemma, manifest_of_file(gemma, chunk_size=4096), "token_embd.weight", 7)
    other_record = decode_record(other[2 : 2 + struct.unpack_from("<H", other)[0]])
    assert isinstance(other_record, TensorRecord) and other_record.offset != record.offset
    spliced = other[: _record_part_length(other)] + prove_range(model, manifest, *other_record.row_span(7))
    with pytest.raises(ValueError, match="not in the model's metadata"):
        verify_row(manifest.id, "token_embd.weight", 7, spliced)


def test_the_header_record_is_proven_and_cannot_stand_in_for_a_tensor(model: Path) -> None:
    manifest = manifest_of_file(model, chunk_size=4096)
    header = verify_header(manifest.id, prove_header(model, manifest))
    assert header == decode_record(gguf_records(model)[0]) and header.n_vocab == 260
    proof = prove_header(model, manifest)
    assert [i for i in range(len(proof)) if _passes_flipped(manifest, proof, i)] == []
    row = prove_row(model, manifest, "output_norm.weight", 0)
    header_part = proof[4 + 8 + 32 :]
    with pytest.raises(ValueError, match="not tensor"):
        verify_row(manifest.id, "output_norm.weight", 0, header_part + row[_record_part_length(row) :])


def _passes_flipped(manifest: Manifest, proof: bytes, flip: int) -> bool:
    tampered = bytearray(proof)
    tampered[flip] ^= 0x01
    try:
        verify_header(manifest.id, bytes(tampered))
    except ValueError:
        return False
    return True
