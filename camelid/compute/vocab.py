"""A model's vocabulary and GGUF metadata, loaded without its weights, for callers that do not run it.

The API needs three things from a model it does not run: its name (an alias clients can ask for), its
chat template (to turn chat messages into the one prompt a job carries), and token counts (for `usage`).
A client whose model cannot run here turns a delivery's tokens into text itself, and tokenizes the prompt
to recompute the commitment, rather than trust a verifier's word for either. A vocab-only llama.cpp load
reads all that in a fraction of the time and memory a full Engine takes.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Sequence
from pathlib import Path

import llama_cpp

from camelid.compute.engine import detokenize_with, init_backend, tokenize_with

META_BUFFER = 256  # bytes for a metadata string value such as general.name


class ModelVocab:
    """Tokenizer and metadata of one GGUF file; thread-safe, loaded once per model."""

    def __init__(self, path: Path) -> None:
        init_backend()
        params = llama_cpp.llama_model_default_params()
        params.vocab_only = True
        self._model = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
        if not self._model:
            raise ValueError(f"llama.cpp could not read the vocabulary of {path}")
        self._vocab = llama_cpp.llama_model_get_vocab(self._model)
        self._lock = threading.Lock()
        self.name = self._meta("general.name")
        template = llama_cpp.llama_model_chat_template(self._model, None)
        self.chat_template: str | None = template.decode("utf-8", "replace") if template else None

    def close(self) -> None:
        with self._lock:
            if self._model:
                llama_cpp.llama_model_free(self._model)
                self._model = None

    def _meta(self, key: str) -> str | None:
        buf = ctypes.create_string_buffer(META_BUFFER)
        n = llama_cpp.llama_model_meta_val_str(self._model, key.encode(), buf, META_BUFFER)
        return buf.value.decode("utf-8", "replace") if n >= 0 else None

    def count_tokens(self, text: str, add_bos: bool) -> int:
        """Tokens in `text` as Engine.tokenize splits it (special-token text is not parsed)."""
        return len(self.tokenize(text, add_bos))

    def tokenize(self, text: str, add_bos: bool = True) -> list[int]:
        """`text` split as Engine.tokenize splits it (the same llama.cpp call on the same vocabulary)."""
        with self._lock:
            return tokenize_with(self._vocab, text, add_bos)

    def detokenize(self, tokens: Sequence[int]) -> str:
        """Text of `tokens` as Engine.detokenize renders it; ValueError for ids the vocabulary lacks."""
        with self._lock:
            n_vocab = llama_cpp.llama_vocab_n_tokens(self._vocab)
            bad = next((t for t in tokens if not 0 <= t < n_vocab), None)
            if bad is not None:
                raise ValueError(f"token id {bad} is outside the vocabulary of {n_vocab}")
            return detokenize_with(self._vocab, tokens)

    def apply_chat_template(self, messages: Sequence[tuple[str, str]]) -> str | None:
        """The model's chat template applied to (role, content) pairs, ending where the assistant speaks;
        None when the model has none, or llama.cpp does not know it (it supports a fixed list, not Jinja)."""
        if self.chat_template is None:
            return None
        chat = (llama_cpp.llama_chat_message * len(messages))()
        encoded = [(role.encode(), content.encode()) for role, content in messages]  # kept alive for the call
        for slot, (role, content) in zip(chat, encoded, strict=True):
            slot.role, slot.content = role, content
        template = self.chat_template.encode()
        capacity = 2 * sum(len(r) + len(c) for r, c in encoded) + 256
        while True:
            buf = ctypes.create_string_buffer(capacity)
            n = llama_cpp.llama_chat_apply_template(template, chat, len(messages), True, buf, capacity)
            if n < 0:
                return None
            if n <= capacity:
                return buf.raw[:n].decode("utf-8", "replace")
            capacity = n
