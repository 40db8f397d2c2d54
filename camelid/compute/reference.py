"""The reference forward pass: logits and a checkpoint trace that every model holder computes bit for bit.

The RASTiC dispute game (docs/jobs-design.md, "The RASTiC dispute game") judges a claim against the
scores of this pass, not against anyone's fast kernels, so its every value must have one answer on every
machine. It runs in numpy on float32 with the kernels of camelid.compute.refmath (correctly rounded
element-wise operations, fixed pairwise trees for every reduction, fixed polynomials for exp, sin and
cos) and dequantises weights as GGUF defines them (gguf.quants, element-wise float32 arithmetic).

The trace is the list of checkpoint tensors of `checkpoint_names`, each made by one operator whose
every element reads at most two contiguous runs of earlier checkpoints and one weight row, so that a
referee can recompute one element (`recompute`) from values proven against the checkpoints' Merkle
roots (`checkpoint_root`). Architectures: llama and gemma3, as llama.cpp builds their graphs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np

from camelid.compute import refmath as rm
from camelid.core.jobgame import LEAF_VALUES
from camelid.crypto.hashes import sha256d
from camelid.crypto.merkle import chunk_root

F32 = np.float32
ARCHITECTURES = ("llama", "gemma3")
_GEMMA3_SWA_PATTERN = 6  # llama.cpp: every 6th layer attends globally, the others through the window
_GEMMA3_SWA_ROPE_BASE = 10000.0

Reader = Callable[[str, int, int], np.ndarray]
"""read(checkpoint name, start, length): that run of the checkpoint's values in row-major order."""


@dataclass(frozen=True)
class Hparams:
    """What the pass needs from the GGUF metadata, with llama.cpp's defaults for what it leaves out."""

    arch: str
    n_embd: int
    n_layer: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_ff: int
    n_vocab: int
    eps: np.float32
    rope_neox: bool
    rope_base: tuple[float, ...]  # per layer
    window: tuple[int, ...]  # per layer; 0: full causal attention
    embed_scale: np.float32 | None
    qk_norm: bool
    post_norms: bool
    gelu: bool
    attn_scale: np.float32


def _field(reader: gguf.GGUFReader, key: str, default: object = None) -> object:
    field = reader.get_field(key)
    if field is None:
        if default is None:
            raise ValueError(f"model metadata lacks {key}")
        return default
    return field.contents()


def read_hparams(reader: gguf.GGUFReader) -> Hparams:
    embd = next(t for t in reader.tensors if t.name == "token_embd.weight")

    def lookup(key: str) -> object:
        field = reader.get_field(key)
        return None if field is None else field.contents()

    return hparams_of(str(_field(reader, "general.architecture")), lookup, int(embd.shape[1]))


def hparams_of(arch: str, lookup: Callable[[str], object], n_vocab: int) -> Hparams:
    """The pass's hyperparameters from the GGUF metadata (`lookup(key)`, None where absent): from the file,
    or, for the referee, from the header record the model id commits to (model_meta.HeaderRecord.params)."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"the reference pass supports {ARCHITECTURES}, not {arch!r}")

    def key(name: str, default: object = None) -> object:
        value = lookup(f"{arch}.{name}")
        if value is None:
            if default is None:
                raise ValueError(f"model metadata lacks {arch}.{name}")
            return default
        return value

    n_embd, n_layer, n_head = int(key("embedding_length")), int(key("block_count")), int(key("attention.head_count"))
    head_dim = int(key("attention.key_length", n_embd // n_head))
    if (
        int(key("attention.value_length", head_dim)) != head_dim
        or int(key("rope.dimension_count", head_dim)) != head_dim
    ):
        raise ValueError("the reference pass needs value and rope dimensions equal to the key dimension")
    n_head_kv = int(key("attention.head_count_kv", n_head))
    if n_head % n_head_kv:
        raise ValueError(f"{n_head} heads cannot share {n_head_kv} key/value heads")
    base = float(key("rope.freq_base", 10000.0))
    gemma = arch == "gemma3"
    window = int(key("attention.sliding_window", 0)) if gemma else 0
    swa = [bool(window) and il % _GEMMA3_SWA_PATTERN < _GEMMA3_SWA_PATTERN - 1 for il in range(n_layer)]
    # llama.cpp scales gemma3's queries by 1/sqrt(n_embd / n_head) for the 62-layer 27B, 1/sqrt(head_dim) otherwise
    scale_dim = n_embd // n_head if gemma and n_layer == 62 else head_dim
    return Hparams(
        arch=arch,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
        n_head_kv=n_head_kv,
        head_dim=head_dim,
        n_ff=int(key("feed_forward_length")),
        n_vocab=n_vocab,
        eps=F32(float(key("attention.layer_norm_rms_epsilon"))),
        rope_neox=gemma,
        rope_base=tuple(_GEMMA3_SWA_ROPE_BASE if s else base for s in swa),
        window=tuple(window if s else 0 for s in swa),
        embed_scale=F32(np.sqrt(F32(n_embd))) if gemma else None,
        qk_norm=gemma,
        post_norms=gemma,
        gelu=gemma,
        attn_scale=F32(1) / np.sqrt(F32(scale_dim)),
    )


def checkpoint_root(values: np.ndarray) -> bytes:
    """Merkle root of a checkpoint: its float32 values (little-endian, row-major) in 256-value leaves."""
    return chunk_root(checkpoint_leaves(values))


def checkpoint_leaves(values: np.ndarray) -> list[bytes]:
    """The leaf hashes of a checkpoint's tree, which the dispute game's descent opens level by level."""
    data = np.ascontiguousarray(values, dtype="<f4").tobytes()
    leaf = 4 * LEAF_VALUES
    return [sha256d(data[i : i + leaf]) for i in range(0, len(data), leaf)]


def _rmsnorm(x: np.ndarray, weight: np.ndarray, eps: np.float32) -> np.ndarray:
    """llama.cpp's RMS norm on rows: x / sqrt(mean(x^2) + eps), then times the weight."""
    mean = rm.tree_sum(x * x) / F32(x.shape[-1])
    scale = F32(1) / np.sqrt(mean + eps)
    return (x * scale[..., None]) * weight


def _softmax(x: np.ndarray) -> np.ndarray:
    """Softmax over rows; -inf (masked) entries get exactly 0."""
    masked = x == -np.inf
    e = np.where(masked, F32(0), rm.exp(x - x.max(axis=-1, keepdims=True)))
    return e / rm.tree_sum(e)[..., None]


class ReferenceModel:
    """A GGUF model's weights, dequantised to float32 on first use, and the reference pass over them."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ValueError(f"model file {self.path} does not exist")
        self._reader = gguf.GGUFReader(str(self.path))
        self.hparams = read_hparams(self._reader)
        self._tensors = {t.name: t for t in self._reader.tensors}
        self._weights: dict[str, np.ndarray] = {}
        self._freqs: dict[float, np.ndarray] = {}
        self.output_name = "output.weight" if "output.weight" in self._tensors else "token_embd.weight"

    # -- weights ------------------------------------------------------------------------------------

    def tensor_names(self) -> list[str]:
        return list(self._tensors)

    def weight(self, name: str) -> np.ndarray:
        """Tensor `name` as float32, rows = output features (numpy order)."""
        if name not in self._weights:
            tensor = self._tensors.get(name)
            if tensor is None:
                raise ValueError(f"model has no tensor {name}")
            try:
                values = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
            except NotImplementedError as exc:
                raise ValueError(f"cannot dequantise {name} of type {tensor.tensor_type.name}") from exc
            self._weights[name] = np.ascontiguousarray(values, dtype=F32)
        return self._weights[name]

    def weight_row(self, name: str, row: int) -> np.ndarray:
        """Row `row` of tensor `name` as (1, ne0), a vector being one row: all that `recompute` reads of a weight."""
        weight = self.weight(name)
        return weight.reshape(-1, weight.shape[-1])[row : row + 1]

    def weight_rows(self, name: str) -> int:
        """How many rows tensor `name` has (ne1 x ne2 x ...)."""
        shape = self.weight(name).shape
        return int(np.prod(shape[:-1], dtype=np.int64))

    def _freq(self, base: float) -> np.ndarray:
        """theta_i = base^(-2i/d), as llama.cpp builds it: theta_scale multiplied in, one pair at a time."""
        if base not in self._freqs:
            d = self.hparams.head_dim
            theta_scale = rm.power(base, np.array([-2.0 / d], dtype=F32))[0]
            freqs = np.empty(d // 2, dtype=F32)
            freqs[0] = F32(1)
            for i in range(1, d // 2):
                freqs[i] = freqs[i - 1] * theta_scale
            self._freqs[base] = freqs
        return self._freqs[base]

    # -- the operators, on rows: the full pass and `recompute` share them -------------------------------

    def _embed(self, tokens: Sequence[int]) -> np.ndarray:
        return self._scale_embd(self.weight("token_embd.weight")[list(tokens)])

    def _scale_embd(self, rows: np.ndarray) -> np.ndarray:
        scale = self.hparams.embed_scale
        return rows if scale is None else rows * scale

    def _rope(self, x: np.ndarray, positions: np.ndarray, base: float) -> np.ndarray:
        """Rotate rows x (r, d) at `positions` (r,): pairs (2i, 2i+1) for llama, (i, i + d/2) for neox."""
        angle = positions.astype(F32)[:, None] * self._freq(base)[None, :]
        sin, cos = rm.sin_cos(angle)
        half = x.shape[-1] // 2
        x0, x1 = (x[:, :half], x[:, half:]) if self.hparams.rope_neox else (x[:, 0::2], x[:, 1::2])
        out0, out1 = x0 * cos - x1 * sin, x0 * sin + x1 * cos
        if self.hparams.rope_neox:
            return np.concatenate([out0, out1], axis=1)
        return np.stack([out0, out1], axis=2).reshape(x.shape)

    def _activation(self, gate: np.ndarray, up: np.ndarray) -> np.ndarray:
        return (rm.gelu_tanh(gate) if self.hparams.gelu else rm.silu(gate)) * up

    def _masked(self, layer: int, t: np.ndarray, s: np.ndarray) -> np.ndarray:
        """Key s hidden from query t: in the future, or (sliding-window layers) n_swa or more behind."""
        window = self.hparams.window[layer]
        return (s > t) | ((t - s >= window) if window else False)

    # -- the pass ------------------------------------------------------------------------------------

    def checkpoint_names(self) -> list[str]:
        """The trace's tensors, in the order the pass makes them (K of them)."""
        layers = [f"blk.{il}.{kind}" for il in range(self.hparams.n_layer) for kind in self._layer_kinds()]
        return ["embd", *layers, "output_norm", "logits"]

    def _layer_kinds(self) -> list[str]:
        hp = self.hparams
        kinds = ["attn_norm", "q", "k", "v"] + (["q_norm", "k_norm"] if hp.qk_norm else [])
        kinds += ["q_rope", "k_rope", "scores", "probs", "attn", "attn_out"]
        kinds += (["attn_post_norm"] if hp.post_norms else []) + ["attn_res", "ffn_norm", "gate", "up", "act", "down"]
        return kinds + (["ffn_post_norm"] if hp.post_norms else []) + ["ffn_res"]

    def checkpoint_shape(self, name: str, n_tokens: int, n_rows: int) -> tuple[int, ...]:
        """The shape of checkpoint `name` in a trace over `n_tokens` tokens asking for `n_rows` logit rows."""
        hp = self.hparams
        kind = name.rsplit(".", 1)[-1]
        if name not in self.checkpoint_names():
            raise ValueError(f"no checkpoint named {name}")
        if kind == "logits":
            return (n_rows,)
        if kind in ("q_norm", "q_rope", "k_norm", "k_rope"):  # a row per position and head
            return (n_tokens * (hp.n_head if kind[0] == "q" else hp.n_head_kv), hp.head_dim)
        if kind in ("q", "attn"):
            return (n_tokens, hp.n_head * hp.head_dim)
        if kind == "k":
            return (n_tokens, hp.n_head_kv * hp.head_dim)
        if kind == "v":
            return (hp.n_head_kv * hp.head_dim, n_tokens)
        if kind in ("scores", "probs"):
            return (hp.n_head, n_tokens, n_tokens)
        if kind in ("gate", "up", "act"):
            return (n_tokens, hp.n_ff)
        return (n_tokens, hp.n_embd)

    def trace(self, tokens: Sequence[int], rows: Sequence[int]) -> dict[str, np.ndarray]:
        """Every checkpoint of the pass over `tokens`; "logits" holds logit rows `rows` at the last position.

        Layouts (row-major, `checkpoint_shape`): (n, width), except the query and key norms and ropes, a row
        per position and head, v, stored transposed (kv features, n) so that attention reads a contiguous
        column, and scores and probs, (heads, n queries, n keys)."""
        rows = self._check_ids(rows, "rows")
        out: dict[str, np.ndarray] = {}
        last = self._run(tokens, out.__setitem__)
        out["logits"] = rm.dot_rows(last[-1:], self.weight(self.output_name)[rows])[0]
        return out

    def logits(self, tokens: Sequence[int], positions: Sequence[int], rows: Sequence[int] | None = None) -> np.ndarray:
        """Reference logits predicting the token after each of `positions`: (len(positions), n_vocab), or only
        the vocabulary entries `rows` (a dispute needs two: the challenger's j* and the claimed o)."""
        if not positions or not all(0 <= p < len(tokens) for p in positions):
            raise ValueError(f"positions must be in [0, {len(tokens)})")
        output = self.weight(self.output_name)
        if rows is not None:
            output = output[self._check_ids(rows, "rows")]
        final = self._run(tokens, lambda _name, _value: None)
        return rm.dot_rows(final[list(positions)], output)

    def _run(self, tokens: Sequence[int], put: Callable[[str, np.ndarray], None]) -> np.ndarray:
        """The pass over `tokens`, each checkpoint handed to `put`; returns the final norm (n, n_embd)."""
        hp = self.hparams
        tokens = self._check_ids(tokens, "tokens")
        n, d, group = len(tokens), hp.head_dim, hp.n_head // hp.n_head_kv
        pos = np.arange(n)
        h = self._embed(tokens)
        put("embd", h)
        for il in range(hp.n_layer):
            blk = f"blk.{il}."

            def w(name: str, blk: str = blk) -> np.ndarray:
                return self.weight(f"{blk}{name}.weight")

            def rec(kind: str, value: np.ndarray, blk: str = blk) -> np.ndarray:
                put(blk + kind, value)
                return value

            x = rec("attn_norm", _rmsnorm(h, w("attn_norm"), hp.eps))
            q = rec("q", rm.dot_rows(x, w("attn_q"))).reshape(n * hp.n_head, d)
            k = rec("k", rm.dot_rows(x, w("attn_k"))).reshape(n * hp.n_head_kv, d)
            v_t = rec("v", rm.dot_rows(w("attn_v"), x))  # (kv features, n): a row-major dot of the same pairs
            if hp.qk_norm:
                q = rec("q_norm", _rmsnorm(q, w("attn_q_norm"), hp.eps))
                k = rec("k_norm", _rmsnorm(k, w("attn_k_norm"), hp.eps))
            q = rec("q_rope", self._rope(q, np.repeat(pos, hp.n_head), hp.rope_base[il])).reshape(n, hp.n_head, d)
            k = rec("k_rope", self._rope(k, np.repeat(pos, hp.n_head_kv), hp.rope_base[il])).reshape(n, hp.n_head_kv, d)
            masked = self._masked(il, pos[:, None], pos[None, :])
            scores = np.stack([rm.dot_rows(q[:, hd], k[:, hd // group]) * hp.attn_scale for hd in range(hp.n_head)])
            scores = rec("scores", np.where(masked[None], F32(-np.inf), scores))
            probs = rec("probs", _softmax(scores))
            v_heads = v_t.reshape(hp.n_head_kv, d, n)
            attn = np.concatenate([rm.dot_rows(probs[hd], v_heads[hd // group]) for hd in range(hp.n_head)], axis=1)
            a = rec("attn_out", rm.dot_rows(rec("attn", attn), w("attn_output")))
            if hp.post_norms:
                a = rec("attn_post_norm", _rmsnorm(a, w("post_attention_norm"), hp.eps))
            h = rec("attn_res", a + h)
            x = rec("ffn_norm", _rmsnorm(h, w("ffn_norm"), hp.eps))
            act = rec(
                "act",
                self._activation(rec("gate", rm.dot_rows(x, w("ffn_gate"))), rec("up", rm.dot_rows(x, w("ffn_up")))),
            )
            f = rec("down", rm.dot_rows(act, w("ffn_down")))
            if hp.post_norms:
                f = rec("ffn_post_norm", _rmsnorm(f, w("post_ffw_norm"), hp.eps))
            h = rec("ffn_res", f + h)
        final = _rmsnorm(h, self.weight("output_norm.weight"), hp.eps)
        put("output_norm", final)
        return final

    # -- one element, as the referee will recompute it --------------------------------------------------

    def recompute(self, name: str, index: int, tokens: Sequence[int], rows: Sequence[int], read: Reader) -> np.float32:
        """Element `index` (row-major) of checkpoint `name` from the runs of earlier checkpoints it reads
        (`read`) and one weight row: bit for bit the value the full pass puts there."""
        hp = self.hparams
        tokens, rows = self._check_ids(tokens, "tokens"), self._check_ids(rows, "rows")
        n, d, group = len(tokens), hp.head_dim, hp.n_head // hp.n_head_kv
        size = int(np.prod(self.checkpoint_shape(name, n, len(rows))))
        if not 0 <= index < size:
            raise ValueError(f"element {index} is outside {name}'s {size} values")
        if name == "embd":
            t, c = divmod(index, hp.n_embd)
            return self._scale_embd(self.weight_row("token_embd.weight", tokens[t]))[0, c]
        if name == "output_norm":
            t, c = divmod(index, hp.n_embd)
            src = read(f"blk.{hp.n_layer - 1}.ffn_res", t * hp.n_embd, hp.n_embd)
            return _rmsnorm(src[None], self.weight_row("output_norm.weight", 0), hp.eps)[0, c]
        if name == "logits":
            final = read("output_norm", (n - 1) * hp.n_embd, hp.n_embd)
            return rm.dot_rows(final[None], self.weight_row(self.output_name, rows[index]))[0, 0]
        _, layer, kind = name.split(".")
        il = int(layer)
        blk = f"blk.{il}."

        def w(wname: str, r: int = 0) -> np.ndarray:
            return self.weight_row(f"{blk}{wname}.weight", r)

        def source(src: str) -> str:
            return self._layer_input(il) if src == "input" else blk + src

        def row(src: str, r: int, width: int) -> np.ndarray:
            return read(source(src), r * width, width)[None]

        def norm(src: str, wname: str, width: int) -> np.float32:
            r, c = divmod(index, width)
            return _rmsnorm(row(src, r, width), w(wname), hp.eps)[0, c]

        def project(src: str, wname: str) -> np.float32:
            t, i = divmod(index, self.weight_rows(f"{blk}{wname}.weight"))
            weight = w(wname, i)
            return rm.dot_rows(row(src, t, weight.shape[1]), weight)[0, 0]

        def added(a: str, b: str) -> np.float32:
            return (read(source(a), index, 1) + read(source(b), index, 1))[0]

        if kind in ("attn_norm", "ffn_norm", "attn_post_norm", "ffn_post_norm"):
            src = {"attn_norm": "input", "ffn_norm": "attn_res", "attn_post_norm": "attn_out", "ffn_post_norm": "down"}
            weights = {"attn_post_norm": "post_attention_norm", "ffn_post_norm": "post_ffw_norm"}
            return norm(src[kind], weights.get(kind, kind), hp.n_embd)
        if kind in ("q", "k", "gate", "up"):
            return project(
                "ffn_norm" if kind in ("gate", "up") else "attn_norm",
                {"q": "attn_q", "k": "attn_k"}.get(kind, f"ffn_{kind}"),
            )
        if kind == "v":
            i, t = divmod(index, n)
            return rm.dot_rows(row("attn_norm", t, hp.n_embd), w("attn_v", i))[0, 0]
        if kind in ("q_norm", "k_norm"):
            return norm(kind[0], f"attn_{kind}", d)
        if kind in ("q_rope", "k_rope"):
            r, c = divmod(index, d)
            heads = hp.n_head if kind == "q_rope" else hp.n_head_kv
            src = (kind[0] + "_norm") if hp.qk_norm else kind[0]
            return self._rope(row(src, r, d), np.array([r // heads]), hp.rope_base[il])[0, c]
        if kind == "scores":
            hd, rest = divmod(index, n * n)
            t, s = divmod(rest, n)
            if self._masked(il, np.array(t), np.array(s)):
                return F32(-np.inf)
            q, k = row("q_rope", t * hp.n_head + hd, d), row("k_rope", s * hp.n_head_kv + hd // group, d)
            return (rm.dot_rows(q, k) * hp.attn_scale)[0, 0]
        if kind == "probs":
            r, s = divmod(index, n)
            return _softmax(row("scores", r, n))[0, s]
        if kind == "attn":
            t, rest = divmod(index, hp.n_head * d)
            hd, c = divmod(rest, d)
            return rm.dot_rows(row("probs", hd * n + t, n), row("v", (hd // group) * d + c, n))[0, 0]
        if kind == "attn_out":
            return project("attn", "attn_output")
        if kind == "attn_res":
            return added("attn_post_norm" if hp.post_norms else "attn_out", "input")
        if kind == "act":
            return self._activation(read(blk + "gate", index, 1), read(blk + "up", index, 1))[0]
        if kind == "down":
            return project("act", "ffn_down")
        return added("ffn_post_norm" if hp.post_norms else "down", "attn_res")  # ffn_res

    def _check_ids(self, ids: Sequence[int], what: str) -> list[int]:
        """`ids` as a list; ValueError unless it is non-empty and every id is a token of the vocabulary."""
        ids = list(ids)
        n_vocab = self.hparams.n_vocab
        if not ids or not all(isinstance(t, int) and not isinstance(t, bool) and 0 <= t < n_vocab for t in ids):
            raise ValueError(f"{what} must be a non-empty list of token ids in [0, {n_vocab})")
        return ids

    def _layer_input(self, il: int) -> str:
        return "embd" if il == 0 else f"blk.{il - 1}.ffn_res"
