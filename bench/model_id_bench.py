"""The cost of a model id, v2 (1 MiB chunk hashes) against v3 (1 KiB leaves and metadata records), and v3's proof sizes.

Run: .venv/bin/python bench/model_id_bench.py [--model NAME|PATH]   (default: gemma-3-270m Q4_K_M)

Both ids are computed over the same file, alternately, three times each (the medians are printed), so the
page cache and the machine's load treat them alike. Then a row proof of the largest and of the smallest
weight row, and a header proof, are made and checked, with their sizes and times; the proven rows are
dequantised and compared with what the reference pass reads, and the header's end tokens with llama.cpp's.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import gguf
import numpy as np
from rastic_common import model_path

from camelid.compute.engine import Engine
from camelid.compute.model_id import CHUNK_SIZE, chunk_root, manifest_of_file
from camelid.compute.model_meta import TensorRecord, decode_record, gguf_records
from camelid.compute.model_proof import prove_header, prove_row, verify_header, verify_row
from camelid.compute.reference import ReferenceModel
from camelid.crypto.hashes import sha256d

V2_TAG = b"CamelidCoin model id v2"
RUNS = 3


def v2_id(path: Path) -> bytes:
    """The id before v3: sha256d of each 1 MiB chunk, no leaves, no metadata."""
    hashes, size = [], 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_SIZE):
            hashes.append(sha256d(chunk))
            size += len(chunk)
    return sha256d(V2_TAG + size.to_bytes(8, "little") + CHUNK_SIZE.to_bytes(4, "little") + chunk_root(hashes))


def timed(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main() -> None:
    path = model_path()
    print(f"model: {path.name}, {path.stat().st_size:,} bytes")
    path.read_bytes()  # warm the page cache for both
    v2, v3 = [], []
    for _ in range(RUNS):
        v2.append(timed(lambda: v2_id(path)))
        v3.append(timed(lambda: manifest_of_file(path)))
    old, new = statistics.median(v2), statistics.median(v3)
    print(f"id v2: {old:.2f} s   id v3: {new:.2f} s   ratio v3/v2: {new / old:.2f}   (medians of {RUNS})")
    records_time = timed(lambda: gguf_records(path))
    print(f"of which reading the metadata records: {records_time:.2f} s")

    manifest = manifest_of_file(path)
    reference = ReferenceModel(path)
    tensors = [r for r in map(decode_record, gguf_records(path)) if isinstance(r, TensorRecord)]
    for label, record in (
        ("largest row", max(tensors, key=lambda t: t.row_span(0)[1])),
        ("smallest row", min(tensors, key=lambda t: t.row_span(0)[1])),
    ):
        proof = prove_row(path, manifest, record.name, 0)
        seconds = timed(lambda p=proof, r=record: verify_row(manifest.id, r.name, 0, p))
        kind = gguf.GGMLQuantizationType(record.ggml_type)
        raw = np.frombuffer(
            verify_row(manifest.id, record.name, 0, proof)[1], dtype="<f4" if kind.name == "F32" else np.uint8
        )
        same = np.array_equal(
            gguf.quants.dequantize(raw, kind).reshape(-1), reference.weight(record.name).reshape(-1, record.shape[0])[0]
        )
        print(
            f"{label}: {record.name} ({kind.name}, {record.row_span(0)[1]:,} bytes): proof {len(proof):,} bytes,"
            f" verified in {seconds * 1e3:.2f} ms; dequantised equal to the reference pass's row: {same}"
        )
    header = verify_header(manifest.id, proof := prove_header(path, manifest))
    with Engine(path, n_ctx=64) as engine:
        ends = tuple(t for t in range(engine.n_vocab) if engine.is_end(t))
    print(f"header proof: {len(proof)} bytes, {header}; end tokens as llama.cpp's: {ends == header.end_tokens}")


if __name__ == "__main__":
    main()
