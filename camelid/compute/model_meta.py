"""The metadata records a model id commits to: one header record and one record per GGUF tensor.

The dispute game's referee checks one weight row against the model id (docs/jobs-design.md, "Model id
v2", built as model id v3), so it must learn, from a short proof, which bytes of the file hold that row:
a tensor record names the tensor, its ggml type, its shape (ggml order, ne0 first), the absolute file
offset of its data and its byte length. The header record holds what the structural RASTiC rules need
without the model: the architecture, the vocabulary size and the end-token ids; and what the referee
needs to recompute one element of the reference pass (camelid.compute.referee): whether the output
projection is tied to the token embeddings (the file has no output.weight) and the architecture's
scalar hyperparameters, the GGUF keys `<architecture>.*` with their GGUF value type and raw bytes.

Canonical encodings (integers little-endian, text UTF-8):

    header = 0x00 | u16 len | architecture | u32 n_vocab | u16 n | n x u32 end-token id (ascending)
             | u8 output tied | u16 m | m x (u16 len | key | u8 GGUF type | value, little-endian) (keys ascending)
    tensor = 0x01 | u16 len | name | u32 ggml type | u8 n_dims | n_dims x u64 dim | u64 offset | u64 n_bytes

The records of a file are its header then its tensors in file order; a file that does not start with
the GGUF magic has none. The header is read by the small parser below rather than gguf.GGUFReader,
which builds a numpy view per vocabulary entry and takes 8 s on gemma-3-270m's 262,144 tokens; the
tests check both read the same tensors.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path

from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

GGUF_MAGIC = b"GGUF"
HEADER_KIND, TENSOR_KIND = 0, 1
MAX_DIMS = 4  # GGML_MAX_DIMS
DEFAULT_ALIGNMENT = 32
# Token texts llama.cpp treats as end of generation whatever the tokenizer keys say (its llama-vocab.cpp lists,
# the fill-in-the-middle pad, repo and file-separator tokens included). This set is the committed rule; it equals
# llama_vocab_is_eog on the tiny test models, gemma-3-270m (<eos>, <end_of_turn>, </s>) and SmolLM2-135M
# (<|endoftext|>, <|im_end|>, <reponame>).
END_TOKEN_TEXTS = frozenset(
    {
        "</s>",
        "<|fim_pad|>",
        "<fim-pad>",
        "<PAD>",
        "<|fim_repo|>",
        "<|repo_name|>",
        "<fim-repo>",
        "<REPO>",
        "<reponame>",
        "<|file_sep|>",
        "<|eot_id|>",
        "<|im_end|>",
        "<|end|>",
        "<end_of_turn>",
        "<|endoftext|>",
        "<|eom_id|>",
        "<EOT>",
        "_<EOT>",
        "<|end_of_text|>",
        "<end_of_utterance>",
        "<|return|>",
        "<|call|>",
        "<\uff5cend\u2581of\u2581sentence\uff5c>",
    }
)
END_TOKEN_KEYS = tuple(
    f"tokenizer.ggml.{kind}_token_id" for kind in ("eos", "eot", "eom", "fim_pad", "fim_rep", "fim_sep")
)
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9


def _tagged(kind: int, text: str) -> bytes:
    raw = text.encode()
    return bytes([kind]) + struct.pack("<H", len(raw)) + raw


@dataclass(frozen=True)
class HeaderRecord:
    """What the structural RASTiC rules need from a model, without the model."""

    architecture: str
    n_vocab: int
    end_tokens: tuple[int, ...]
    output_tied: bool = False
    params: tuple[tuple[str, int, bytes], ...] = ()  # (GGUF key, GGUF scalar type, raw value), keys ascending

    def encode(self) -> bytes:
        n = len(self.end_tokens)
        head = _tagged(HEADER_KIND, self.architecture) + struct.pack(f"<IH{n}I", self.n_vocab, n, *self.end_tokens)
        params = b"".join(_tagged(kind, key)[1:] + bytes([kind]) + raw for key, kind, raw in self.params)
        return head + struct.pack("<BH", self.output_tied, len(self.params)) + params

    def param(self, key: str) -> object:
        """The value of hyperparameter `key` (a Python int, float or bool), None if the file has none."""
        for name, kind, raw in self.params:
            if name == key:
                return struct.unpack(_SCALARS[kind], raw)[0]
        return None


@dataclass(frozen=True)
class TensorRecord:
    """Where one tensor's data lies in the file, and how to cut it into rows."""

    name: str
    ggml_type: int
    shape: tuple[int, ...]  # ggml order: ne0 (the elements of one row) first
    offset: int  # absolute, in the file
    n_bytes: int

    def encode(self) -> bytes:
        n = len(self.shape)
        dims = struct.pack(f"<IB{n}QQQ", self.ggml_type, n, *self.shape, self.offset, self.n_bytes)
        return _tagged(TENSOR_KIND, self.name) + dims

    def row_span(self, row: int) -> tuple[int, int]:
        """(offset, length) of row `row`: ne0 elements, in whole quantisation blocks."""
        block, type_size = quant_sizes(self.ggml_type)
        if not self.shape or self.shape[0] % block:
            raise ValueError(f"tensor {self.name}: a row of {self.shape[:1]} elements is not whole {block}-blocks")
        row_bytes = self.shape[0] // block * type_size
        n_rows = 1
        for dim in self.shape[1:]:
            n_rows *= dim
        if row_bytes * n_rows != self.n_bytes:
            raise ValueError(f"tensor {self.name}: {self.n_bytes} bytes do not fit its type and shape")
        if not 0 <= row < n_rows:
            raise ValueError(f"tensor {self.name} has {n_rows} rows, not row {row}")
        return self.offset + row * row_bytes, row_bytes


def quant_sizes(ggml_type: int) -> tuple[int, int]:
    """(elements per block, bytes per block) of a ggml type."""
    try:
        return GGML_QUANT_SIZES[GGMLQuantizationType(ggml_type)]
    except (ValueError, KeyError):
        raise ValueError(f"unknown ggml type {ggml_type}") from None


class Cursor:
    """Bounds-checked little-endian reads; every overrun is a ValueError naming what was read."""

    def __init__(self, data: bytes | mmap.mmap, pos: int = 0) -> None:
        self.data, self.pos = data, pos

    def unpack(self, fmt: str, what: str) -> tuple:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise ValueError(f"truncated at {what} (byte {self.pos})")
        values = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return values

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ValueError(f"truncated at {what} (byte {self.pos})")
        self.pos += n
        return bytes(self.data[self.pos - n : self.pos])

    def text(self, what: str, width: str = "<Q") -> str:
        raw = self.take(self.unpack(width, what)[0], what)
        try:
            return raw.decode()
        except UnicodeDecodeError:
            raise ValueError(f"{what} is not UTF-8") from None

    def end(self, what: str) -> None:
        if self.pos != len(self.data):
            raise ValueError(f"{len(self.data) - self.pos} bytes after the {what}")


def _value(cur: Cursor, kind: int, key: str) -> object:
    if kind == _STRING:
        return cur.text(key)
    if kind == _ARRAY:
        item, count = cur.unpack("<IQ", key)
        if item == _STRING:
            return [cur.text(key) for _ in range(count)]
        if item not in _SCALARS:
            raise ValueError(f"{key}: arrays of type {item} are not supported")
        fmt = _SCALARS[item]
        return list(struct.unpack_from(f"<{count}{fmt[1]}", cur.take(count * struct.calcsize(fmt), key)))
    if kind not in _SCALARS:
        raise ValueError(f"{key}: unknown value type {kind}")
    return cur.unpack(_SCALARS[kind], key)[0]


def gguf_records(path: Path) -> list[bytes]:
    """The encoded records of a file (header first); none for a file that is not GGUF; ValueError for a broken one."""
    with open(path, "rb") as f:
        if f.read(4) != GGUF_MAGIC:
            return []
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            try:
                return _parse(data)
            except (ValueError, struct.error, OverflowError) as exc:  # the last two: a field too long to encode
                raise ValueError(f"{path} is not a readable GGUF file: {exc}") from None


def _parse(data: mmap.mmap) -> list[bytes]:
    cur = Cursor(data, 4)
    version, n_tensors, n_kv = cur.unpack("<IQQ", "the GGUF header")
    if version not in (2, 3):
        raise ValueError(f"GGUF version {version} (2 and 3 are read)")
    wanted = {"general.architecture", "general.alignment", "tokenizer.ggml.tokens", *END_TOKEN_KEYS}
    kv: dict[str, object] = {}
    scalars: dict[str, tuple[int, bytes]] = {}
    for _ in range(n_kv):
        key = cur.text("a metadata key")
        (kind,) = cur.unpack("<I", key)
        start = cur.pos
        value = _value(cur, kind, key)
        if key in wanted:
            kv[key] = value
        if kind in _SCALARS:
            scalars[key] = (kind, bytes(data[start : cur.pos]))
    tensors = []
    for _ in range(n_tensors):
        name = cur.text("a tensor name")
        (n_dims,) = cur.unpack("<I", name)
        if not 1 <= n_dims <= MAX_DIMS:
            raise ValueError(f"tensor {name} has {n_dims} dimensions")
        shape = cur.unpack(f"<{n_dims}Q", name)
        ggml_type, offset = cur.unpack("<IQ", name)
        block, type_size = quant_sizes(ggml_type)
        elements = 1
        for dim in shape:
            elements *= dim
        tensors.append((name, ggml_type, shape, offset, elements * type_size // block))
    alignment = kv.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or alignment < 1:
        raise ValueError(f"general.alignment {alignment!r}")
    start = -(-cur.pos // alignment) * alignment
    tied = all(name != "output.weight" for name, *_ in tensors)
    records = [_header(kv, scalars, tied).encode()]
    for name, ggml_type, shape, offset, n_bytes in tensors:
        if start + offset + n_bytes > len(data):
            raise ValueError(f"tensor {name} runs past the end of the file")
        records.append(TensorRecord(name, ggml_type, tuple(shape), start + offset, n_bytes).encode())
    return records


def _header(kv: dict[str, object], scalars: dict[str, tuple[int, bytes]], tied: bool) -> HeaderRecord:
    tokens = kv.get("tokenizer.ggml.tokens", [])
    tokens = tokens if isinstance(tokens, list) else []
    ends = {v for k in END_TOKEN_KEYS if isinstance(v := kv.get(k), int) and 0 <= v < len(tokens)}
    ends |= {i for i, text in enumerate(tokens) if text in END_TOKEN_TEXTS}
    arch = kv.get("general.architecture", "")
    arch = arch if isinstance(arch, str) else ""
    params = tuple((k, *scalars[k]) for k in sorted(scalars) if arch and k.startswith(arch + "."))
    return HeaderRecord(arch, len(tokens), tuple(sorted(ends)), tied, params)


def decode_record(record: bytes) -> HeaderRecord | TensorRecord:
    """The inverse of encode, refusing anything but one exact canonical record."""
    cur = Cursor(record)
    (kind,) = cur.unpack("<B", "the record kind")
    if kind == HEADER_KIND:
        arch = cur.text("the architecture", "<H")
        n_vocab, n_ends = cur.unpack("<IH", "the header")
        ends = cur.unpack(f"<{n_ends}I", "the end tokens")
        tied, n_params = cur.unpack("<BH", "the hyperparameters")
        params = []
        for _ in range(n_params):
            key = cur.text("a hyperparameter key", "<H")
            (kind,) = cur.unpack("<B", key)
            if kind not in _SCALARS:
                raise ValueError(f"hyperparameter {key} has type {kind}, not a scalar")
            params.append((key, kind, cur.take(struct.calcsize(_SCALARS[kind]), key)))
        cur.end("header record")
        if list(ends) != sorted(set(ends)):
            raise ValueError("end tokens must ascend")
        keys = [key for key, _, _ in params]
        if keys != sorted(set(keys)) or tied > 1:
            raise ValueError("hyperparameter keys must ascend and the tied flag be 0 or 1")
        return HeaderRecord(arch, n_vocab, ends, bool(tied), tuple(params))
    if kind != TENSOR_KIND:
        raise ValueError(f"unknown record kind {kind}")
    name = cur.text("the tensor name", "<H")
    ggml_type, n_dims = cur.unpack("<IB", name)
    if not 1 <= n_dims <= MAX_DIMS:
        raise ValueError(f"tensor {name} has {n_dims} dimensions")
    shape = cur.unpack(f"<{n_dims}Q", name)
    offset, n_bytes = cur.unpack("<QQ", name)
    cur.end("tensor record")
    return TensorRecord(name, ggml_type, shape, offset, n_bytes)
