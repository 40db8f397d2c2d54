"""A tiny llama-architecture GGUF model with random weights, written by the tests themselves.

Two layers, 64-dim embeddings and a byte-level SentencePiece vocabulary (<unk>, <s>, </s>, the 256
byte tokens and the word-boundary mark) make a ~0.5 MB file that llama.cpp loads and runs in
milliseconds. The weights are random but fixed by `seed`, so the model id is stable per seed.
The end token's output row is scaled up so that generations end by themselves often enough to
exercise the end-of-generation paths.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import gguf
import numpy as np

N_EMBD = 64
N_HEAD = 4
N_FF = 128
N_LAYER = 2
N_CTX = 512
UNK, BOS, EOS = 0, 1, 2
SPECIAL_TOKENS = ["<unk>", "<s>", "</s>"]
BYTE_TOKENS = [f"<0x{b:02X}>" for b in range(256)]
WORD_MARK = "\u2581"  # SentencePiece's space; without it spaces would decode as the mark itself
VOCAB = SPECIAL_TOKENS + BYTE_TOKENS + [WORD_MARK]
EOS_ROW_SCALE = 1.5


def _token_types() -> list[int]:
    return (
        [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
        + [gguf.TokenType.BYTE] * 256
        + [gguf.TokenType.NORMAL]
    )


def _add_vocab(writer: gguf.GGUFWriter) -> None:
    """The byte-level SentencePiece vocabulary every tiny model shares."""
    writer.add_vocab_size(len(VOCAB))
    writer.add_tokenizer_model("llama")
    writer.add_token_list(VOCAB)
    writer.add_token_scores([0.0] * len(VOCAB))
    writer.add_token_types(_token_types())
    writer.add_unk_token_id(UNK)
    writer.add_bos_token_id(BOS)
    writer.add_eos_token_id(EOS)
    writer.add_add_bos_token(True)
    writer.add_add_space_prefix(False)


def _write(writer: gguf.GGUFWriter, tensors: dict[str, np.ndarray]) -> None:
    for name, tensor in tensors.items():
        writer.add_tensor(name, tensor)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _weights(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Tensors in numpy shape (rows = output features); gguf reverses them to llama.cpp order."""

    def matrix(n_out: int, n_in: int, scale: float = 1.0) -> np.ndarray:
        return (rng.standard_normal((n_out, n_in)) * scale / np.sqrt(n_in)).astype(np.float32)

    ones = np.ones(N_EMBD, dtype=np.float32)
    output = matrix(len(VOCAB), N_EMBD, scale=4.0)
    output[EOS] *= EOS_ROW_SCALE
    tensors = {
        "token_embd.weight": rng.standard_normal((len(VOCAB), N_EMBD)).astype(np.float32),
        "output_norm.weight": ones,
        "output.weight": output,
    }
    for layer in range(N_LAYER):
        tensors.update(
            {
                f"blk.{layer}.attn_norm.weight": ones,
                f"blk.{layer}.attn_q.weight": matrix(N_EMBD, N_EMBD),
                f"blk.{layer}.attn_k.weight": matrix(N_EMBD, N_EMBD),
                f"blk.{layer}.attn_v.weight": matrix(N_EMBD, N_EMBD),
                f"blk.{layer}.attn_output.weight": matrix(N_EMBD, N_EMBD),
                f"blk.{layer}.ffn_norm.weight": ones,
                f"blk.{layer}.ffn_gate.weight": matrix(N_FF, N_EMBD),
                f"blk.{layer}.ffn_up.weight": matrix(N_FF, N_EMBD),
                f"blk.{layer}.ffn_down.weight": matrix(N_EMBD, N_FF),
            }
        )
    return tensors


LIST_CYCLE = b"1.ab\n2)cd\r"
"""What the list model writes, over and over: a numbered list of two subtasks, every byte a different token."""


def _list_weights(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The tiny model rewired into a next-byte table that cycles through LIST_CYCLE whatever the prompt.

    The blocks add nothing (their output projections are zero), so the last hidden state is the last token's
    embedding: each cycle byte embeds as its own basis vector, which the output matrix maps to the next byte;
    every other token embeds as the cycle's last byte, so the list starts over after any prompt."""
    tensors = _weights(rng)
    for name, tensor in tensors.items():
        if name.endswith(("attn_output.weight", "ffn_down.weight")):
            tensor[:] = 0
    cycle = [len(SPECIAL_TOKENS) + byte for byte in LIST_CYCLE]
    embedding = np.zeros((len(VOCAB), N_EMBD), dtype=np.float32)
    embedding[:, len(cycle) - 1] = 1
    output = np.zeros((len(VOCAB), N_EMBD), dtype=np.float32)
    for i, token in enumerate(cycle):
        embedding[token] = 0
        embedding[token, i] = 1
        output[cycle[(i + 1) % len(cycle)], i] = 4
    tensors.update({"token_embd.weight": embedding, "output.weight": output})
    return tensors


def write_list_model(path: Path) -> Path:
    """A tiny model whose every output is LIST_CYCLE repeated (greedy): outlines that parse as a list of two
    subtasks, so a fractal task grows a real tree on the test network."""
    return write_tiny_model(path, model_name="camelid-list", weights=_list_weights)


def write_tiny_model(
    path: Path,
    seed: int = 0,
    model_name: str | None = None,
    weights: Callable[[np.random.Generator], dict[str, np.ndarray]] | None = None,
    chat_template: str | None = None,
    architecture: str = "llama",
) -> Path:
    """Write the tiny model for `seed` to `path` and return `path` (`weights`: other tensors, named `model_name`;
    `chat_template`: its tokenizer.chat_template; `architecture`: the name its metadata gives, for a model the
    reference pass does not cover)."""
    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_name(model_name or f"camelid-tiny-{seed}")
    writer.add_context_length(N_CTX)
    writer.add_embedding_length(N_EMBD)
    writer.add_block_count(N_LAYER)
    writer.add_feed_forward_length(N_FF)
    writer.add_head_count(N_HEAD)
    writer.add_head_count_kv(N_HEAD)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(N_EMBD // N_HEAD)
    _add_vocab(writer)
    if chat_template is not None:
        writer.add_chat_template(chat_template)
    _write(writer, (weights or _weights)(np.random.default_rng(seed)))
    return path


GEMMA3_LAYERS = 6  # llama.cpp's gemma3 attends globally in every 6th layer, through the sliding window in the others
GEMMA3_WINDOW = 5
GEMMA3_HEAD_KV = 2


def write_tiny_gemma3(path: Path, seed: int = 0) -> Path:
    """A tiny gemma3-architecture model (query/key norms, post norms, grouped keys, a 5-token sliding window,
    gelu, tied output) with random float32 weights: every part of gemma3's graph, small enough for tests."""
    rng = np.random.default_rng(seed)
    head_dim = N_EMBD // N_HEAD

    def matrix(n_out: int, n_in: int) -> np.ndarray:
        return (rng.standard_normal((n_out, n_in)) / np.sqrt(n_in)).astype(np.float32)

    def norm(n: int) -> np.ndarray:
        return (1 + 0.1 * rng.standard_normal(n)).astype(np.float32)

    writer = gguf.GGUFWriter(str(path), "gemma3")
    writer.add_name(f"camelid-tiny-gemma3-{seed}")
    writer.add_context_length(N_CTX)
    writer.add_embedding_length(N_EMBD)
    writer.add_block_count(GEMMA3_LAYERS)
    writer.add_feed_forward_length(N_FF)
    writer.add_head_count(N_HEAD)
    writer.add_head_count_kv(GEMMA3_HEAD_KV)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_rope_freq_base(1e6)
    writer.add_sliding_window(GEMMA3_WINDOW)
    _add_vocab(writer)
    tensors = {
        "token_embd.weight": (rng.standard_normal((len(VOCAB), N_EMBD)) * 0.5).astype(np.float32),
        "output_norm.weight": norm(N_EMBD),
    }
    kv = GEMMA3_HEAD_KV * head_dim
    for layer in range(GEMMA3_LAYERS):
        blk = f"blk.{layer}."
        tensors.update(
            {
                blk + "attn_norm.weight": norm(N_EMBD),
                blk + "attn_q.weight": matrix(N_EMBD, N_EMBD),
                blk + "attn_k.weight": matrix(kv, N_EMBD),
                blk + "attn_v.weight": matrix(kv, N_EMBD),
                blk + "attn_q_norm.weight": norm(head_dim),
                blk + "attn_k_norm.weight": norm(head_dim),
                blk + "attn_output.weight": matrix(N_EMBD, N_EMBD),
                blk + "post_attention_norm.weight": norm(N_EMBD),
                blk + "ffn_norm.weight": norm(N_EMBD),
                blk + "ffn_gate.weight": matrix(N_FF, N_EMBD),
                blk + "ffn_up.weight": matrix(N_FF, N_EMBD),
                blk + "ffn_down.weight": matrix(N_EMBD, N_FF),
                blk + "post_ffw_norm.weight": norm(N_EMBD),
            }
        )
    _write(writer, tensors)
    return path


def write_broken_tiny_model(path: Path) -> Path:
    """The tiny model with its last 4 KiB of weights overwritten by 0xFF (NaN): it loads, then computes garbage."""
    write_tiny_model(path)
    with path.open("r+b") as file:
        file.seek(-4096, 2)
        file.write(b"\xff" * 4096)
    return path
