"""The referee step of the RASTiC dispute game: one element of the reference pass, judged from its proofs.

In move 3 (docs/jobs-design.md, "The RASTiC dispute game") the accused opens the element e of checkpoint
T_i the challenger named, the runs of its own earlier checkpoints that element reads and the one weight
row it reads; the referee, who holds no model, recomputes T_i[e] with `ReferenceModel.recompute` over the
opened values and compares bits. What the recompute needs besides those values, and where it comes from:

- the tokens (prompt and output prefix) and the two logit rows (j*, o): the game's public data (move 0);
  positions, for rope and the attention mask, are indices into them;
- the hyperparameters (widths, heads, eps, rope bases, the sliding window) and whether the output
  projection is tied to the embeddings: the header record, proven against the model id
  (`model_proof.verify_header`);
- the weight row: `model_proof.verify_row` against the model id, dequantised as GGUF defines it.

A checkpoint opening proves a contiguous run of a checkpoint's values against its root
(`reference.checkpoint_root`: 256-value leaves of 1 KiB, the odd-carry tree of model_id): the covering
leaves, then the siblings of `model_proof.range_path`. Its sizes come from the checkpoint's shape,
which the referee knows, so the proof carries none. Encodings (little-endian):

    opening    = covering leaves' float32 values | u8 n | n x 32-byte hash
    step claim = u16 checkpoint index | u64 element
    step proof = u32 len | header proof | u32 len | opening of T_i[e] | u8 n | n x (u32 len | opening of an input run,
                 in the order the recompute reads them) | u32 len | weight row proof (empty if the step reads none)
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType
from gguf.quants import dequantize

from camelid.compute.model_id import Manifest, leaf_hashes, manifest_of_file
from camelid.compute.model_meta import Cursor, HeaderRecord, TensorRecord
from camelid.compute.model_proof import (
    path_bytes,
    prove_header,
    prove_row,
    range_path,
    range_root,
    read_path,
    row_proof_record,
    verify_header,
    verify_row,
)
from camelid.compute.reference import F32, LEAF_VALUES, Hparams, ReferenceModel, hparams_of

_LEAF_BYTES = 4 * LEAF_VALUES
_MAX_INPUTS = 2  # every operator reads at most two runs of earlier checkpoints


def _leaf_span(size: int, start: int, length: int) -> tuple[int, int]:
    if length < 1 or start < 0 or start + length > size:
        raise ValueError(f"run [{start}, {start + length}) is not within a checkpoint of {size} values")
    return start // LEAF_VALUES, -(-(start + length) // LEAF_VALUES)


def prove_run(values: np.ndarray, start: int, length: int) -> bytes:
    """An opening of values[start:start + length] (row-major) against checkpoint_root(values)."""
    data = np.ascontiguousarray(values, dtype="<f4").tobytes()
    lo, hi = _leaf_span(len(data) // 4, start, length)
    return data[lo * _LEAF_BYTES : hi * _LEAF_BYTES] + path_bytes(range_path(leaf_hashes(data), lo, hi))


def _open_run(root: bytes, size: int, start: int, length: int, cur: Cursor) -> np.ndarray:
    lo, hi = _leaf_span(size, start, length)
    leaves = cur.take(min(hi * LEAF_VALUES, size) * 4 - lo * _LEAF_BYTES, "the opened values")
    if range_root(-(-size // LEAF_VALUES), lo, leaf_hashes(leaves), read_path(cur, "a checkpoint path")) != root:
        raise ValueError("the opened values do not hash to the checkpoint's root")
    skip = start - lo * LEAF_VALUES
    return np.frombuffer(leaves, dtype="<f4")[skip : skip + length].astype(F32)


def verify_run(root: bytes, size: int, start: int, length: int, opening: bytes) -> np.ndarray:
    """Values [start, start + length) of the `size`-value checkpoint with root `root`; ValueError unless proven."""
    cur = Cursor(opening)
    values = _open_run(root, size, start, length, cur)
    cur.end("checkpoint opening")
    return values


@dataclass(frozen=True)
class StepClaim:
    """Move 2: the challenger disputes element `element` (row-major) of checkpoint number `checkpoint`."""

    checkpoint: int
    element: int

    def encode(self) -> bytes:
        return struct.pack("<HQ", self.checkpoint, self.element)

    @classmethod
    def decode(cls, data: bytes) -> StepClaim:
        if len(data) != 10:
            raise ValueError(f"a step claim is 10 bytes, not {len(data)}")
        return cls(*struct.unpack("<HQ", data))


@dataclass(frozen=True)
class StepProof:
    """Move 3: the accused's openings of the disputed element and of what its recompute reads."""

    header: bytes  # model_proof.prove_header
    value: bytes  # opening of T_i[e]
    inputs: tuple[bytes, ...]  # openings of the runs of earlier checkpoints, in the order the recompute reads them
    weight: bytes  # model_proof.prove_row of the weight row it reads; empty if it reads none

    def encode(self) -> bytes:
        def part(data: bytes) -> bytes:
            return struct.pack("<I", len(data)) + data

        runs = bytes([len(self.inputs)]) + b"".join(map(part, self.inputs))
        return part(self.header) + part(self.value) + runs + part(self.weight)

    @classmethod
    def decode(cls, data: bytes) -> StepProof:
        """The inverse of encode; ValueError for anything else."""
        cur = Cursor(data)

        def part(what: str) -> bytes:
            return cur.take(cur.unpack("<I", what)[0], what)

        header, value = part("the header proof"), part("the value opening")
        (n,) = cur.unpack("<B", "the input count")
        if n > _MAX_INPUTS:
            raise ValueError(f"a step reads at most {_MAX_INPUTS} input runs, not {n}")
        inputs = tuple(part("an input opening") for _ in range(n))
        weight = part("the weight proof")
        cur.end("step proof")
        return cls(header, value, inputs, weight)


class _StepModel(ReferenceModel):
    """The reference operators over one step's weight row, without the model file (it never calls __init__)."""

    def __init__(
        self, hparams: Hparams, output_name: str, row: Callable[[str, int], np.ndarray], count: Callable[[str], int]
    ):
        self.hparams, self.output_name, self._freqs = hparams, output_name, {}
        self._row, self._count = row, count

    def weight(self, name: str) -> np.ndarray:
        raise ValueError(f"a step reads one row of {name}, not the tensor")

    def weight_row(self, name: str, row: int) -> np.ndarray:
        return self._row(name, row)

    def weight_rows(self, name: str) -> int:
        return self._count(name)


class _ProvenWeight:
    """The one weight row a step may read, checked against the model id when the recompute asks for it."""

    def __init__(self, model_id: bytes, proof: bytes) -> None:
        self.model_id, self.proof, self.used = model_id, proof, False

    def row(self, name: str, row: int) -> np.ndarray:
        if self.used or not self.proof:
            raise ValueError("the step proof lacks the weight row the recompute reads")
        self.used = True
        record, raw = verify_row(self.model_id, name, row, self.proof)
        try:
            values = dequantize(np.frombuffer(raw, dtype=np.uint8), GGMLQuantizationType(record.ggml_type))
        except (NotImplementedError, ValueError) as exc:
            raise ValueError(f"cannot dequantise {name}'s ggml type {record.ggml_type}") from exc
        return np.asarray(values, dtype=F32).reshape(1, -1)

    def count(self, name: str) -> int:
        record = row_proof_record(self.proof) if self.proof else None
        if not isinstance(record, TensorRecord) or record.name != name:
            raise ValueError(f"the step proof's weight row is not of {name}")
        return math.prod(record.shape[1:])


def _hparams(header: HeaderRecord, n_roots: int) -> Hparams:
    """The header's hyperparameters, refused unless sane: the id commits to them, but anyone may make a model.

    The layer count is checked against the roots before `hparams_of` builds its per-layer tuples, so a
    header claiming billions of layers costs nothing; every other size is only used through openings,
    whose bytes the proof must carry."""
    layers = header.param(f"{header.architecture}.block_count")
    if not isinstance(layers, int) or not 1 <= layers <= n_roots:
        raise ValueError(f"the model's block count {layers!r} does not fit its {n_roots} checkpoint roots")
    try:
        hp = hparams_of(header.architecture, header.param, header.n_vocab)
    except (ArithmeticError, TypeError) as exc:
        raise ValueError(f"the model's hyperparameters are unusable: {exc}") from None
    if min(hp.n_embd, hp.n_head, hp.n_head_kv, hp.head_dim, hp.n_ff, hp.n_vocab) < 1 or hp.head_dim % 2:
        raise ValueError("the model's hyperparameters are unusable: a size below 1 or an odd head dimension")
    return hp


def header_model(header: HeaderRecord, n_roots: int) -> ReferenceModel:
    """The reference pass of the model `header` describes, without its weights: its checkpoint names and shapes,
    which moves 1 and 2 of a game are checked against. ValueError for a model the referee cannot judge, or one
    with more layers than `n_roots` checkpoints could hold."""

    def no_weights(name: str, *_: int) -> np.ndarray:
        raise ValueError(f"{name}: no weights without a step proof")

    output = "token_embd.weight" if header.output_tied else "output.weight"
    return _StepModel(_hparams(header, n_roots), output, no_weights, no_weights)


def _names_and_shape(
    model: ReferenceModel, roots: Sequence[bytes], tokens: Sequence[int], rows: Sequence[int], claim: StepClaim
) -> tuple[list[str], Callable[[str], int]]:
    names = model.checkpoint_names()
    if len(roots) != len(names) or not all(isinstance(r, bytes) and len(r) == 32 for r in roots):
        raise ValueError(f"the model's trace has {len(names)} checkpoints: as many 32-byte roots are needed")
    if not 0 <= claim.checkpoint < len(names):
        raise ValueError(f"checkpoint {claim.checkpoint} is not one of the {len(names)}")

    def size(name: str) -> int:
        return math.prod(model.checkpoint_shape(name, len(tokens), len(rows)))

    if not 0 <= claim.element < size(names[claim.checkpoint]):
        raise ValueError(f"element {claim.element} is outside {names[claim.checkpoint]}")
    return names, size


def judge_step(
    model_id: bytes,
    roots: Sequence[bytes],
    tokens: Sequence[int],
    rows: Sequence[int],
    claim: StepClaim,
    proof: StepProof,
) -> bool:
    """True if the accused's committed T_i[e] is bit for bit the recompute from its own committed inputs (the
    accused wins), False if not (the challenger wins).

    `roots` are the K checkpoint roots of move 1, `tokens` and `rows` (j*, o) the game's public data. A
    ValueError means a malformed claim (out of range: move 2 is invalid and never mined) or a malformed
    proof (anything unproven against the roots or the model id, missing or left over): in the game the
    party that made it loses, so a move 3 that raises loses for the accused. A model the referee cannot
    judge (another architecture, unusable hyperparameters) raises as well, whatever the proof: the game
    must refuse such a model id when it opens (move 0), where the header proof shows the architecture.
    Work is bounded by the proof's size and one dot product of a row's width."""
    header = verify_header(model_id, proof.header)
    weight = _ProvenWeight(model_id, proof.weight)
    hparams = _hparams(header, len(roots))
    output = "token_embd.weight" if header.output_tied else "output.weight"
    model = _StepModel(hparams, output, weight.row, weight.count)
    names, size = _names_and_shape(model, roots, tokens, rows, claim)
    name = names[claim.checkpoint]
    earlier = {n: i for i, n in enumerate(names[: claim.checkpoint])}
    claimed = verify_run(roots[claim.checkpoint], size(name), claim.element, 1, proof.value)[0]
    openings = iter(proof.inputs)

    def read(source: str, start: int, length: int) -> np.ndarray:
        if source not in earlier:
            raise ValueError(f"{name} cannot read {source}, which is not an earlier checkpoint")
        opening = next(openings, None)
        if opening is None:
            raise ValueError("the step proof lacks an input run the recompute reads")
        return verify_run(roots[earlier[source]], size(source), start, length, opening)

    value = model.recompute(name, claim.element, list(tokens), list(rows), read)
    if next(openings, None) is not None or (proof.weight and not weight.used):
        raise ValueError("the step proof opens more than the recompute reads")
    return F32(value).tobytes() == F32(claimed).tobytes()


def prove_step(
    reference: ReferenceModel,
    tokens: Sequence[int],
    rows: Sequence[int],
    trace: dict[str, np.ndarray],
    name: str,
    index: int,
    manifest: Manifest | None = None,
) -> StepProof:
    """The accused's move 3 for element `index` of checkpoint `name` of its committed `trace`."""
    path = Path(reference.path)
    manifest = manifest or manifest_of_file(path)
    reads: list[tuple[str, int, int]] = []
    weights: list[tuple[str, int]] = []

    def read(source: str, start: int, length: int) -> np.ndarray:
        reads.append((source, start, length))
        return np.asarray(trace[source], dtype=F32).reshape(-1)[start : start + length]

    def row(tensor: str, r: int) -> np.ndarray:
        weights.append((tensor, r))
        return reference.weight_row(tensor, r)

    _StepModel(reference.hparams, reference.output_name, row, reference.weight_rows).recompute(
        name, index, list(tokens), list(rows), read
    )
    return StepProof(
        header=prove_header(path, manifest),
        value=prove_run(trace[name], index, 1),
        inputs=tuple(prove_run(trace[source], start, length) for source, start, length in reads),
        weight=prove_row(path, manifest, *weights[0]) if weights else b"",
    )
