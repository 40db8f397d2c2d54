"""A model's vocabulary and GGUF metadata, loaded without its weights, for callers that do not run it.

The API needs three things from a model it does not run: its name (an alias clients can ask for), its
chat template (camelid.compute.chat: chat messages into the one prompt a job carries), and token counts
(for `usage`). A client whose model cannot run here turns a delivery's tokens into text itself, and
tokenizes the prompt to recompute the commitment, rather than trust a verifier's word for either. A
vocab-only llama.cpp load reads all that in a fraction of the time and memory a full Engine takes.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Sequence
from pathlib import Path

import jinja2
import llama_cpp

from camelid.compute.chat import ChatTemplate, RenderedChat, render_chat
from camelid.compute.engine import detokenize_with, init_backend, tokenize

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
        self.chat_template, self.plain_reason = self._compile_template()

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
        """Tokens in `text` as Engine.tokenize splits a job's prompt (special-token text parsed)."""
        return len(self.tokenize(text, add_bos))

    def tokenize(self, text: str, add_bos: bool = True) -> list[int]:
        """`text` split as Engine.tokenize splits it (the same llama.cpp call on the same vocabulary)."""
        with self._lock:
            return tokenize(self._vocab, text, add_bos)

    def detokenize(self, tokens: Sequence[int]) -> str:
        """Text of `tokens` as Engine.detokenize renders it; ValueError for ids the vocabulary lacks."""
        with self._lock:
            n_vocab = llama_cpp.llama_vocab_n_tokens(self._vocab)
            bad = next((t for t in tokens if not 0 <= t < n_vocab), None)
            if bad is not None:
                raise ValueError(f"token id {bad} is outside the vocabulary of {n_vocab}")
            return detokenize_with(self._vocab, tokens)

    def _token_text(self, token: int) -> str:
        if token < 0:  # LLAMA_TOKEN_NULL: the vocabulary has no such token
            return ""
        return llama_cpp.llama_vocab_get_text(self._vocab, token).decode("utf-8", "replace")

    def _compile_template(self) -> tuple[ChatTemplate | None, str]:
        """(the model's chat template, compiled; "") or (None, why the plain format is used instead)."""
        source = llama_cpp.llama_model_chat_template(self._model, None)
        if not source:
            return None, "the model has no chat template"
        bos = self._token_text(llama_cpp.llama_vocab_bos(self._vocab))
        eos = self._token_text(llama_cpp.llama_vocab_eos(self._vocab))
        adds_bos = bool(llama_cpp.llama_vocab_get_add_bos(self._vocab))
        try:
            return ChatTemplate(source.decode("utf-8", "replace"), bos, eos, adds_bos), ""
        except jinja2.TemplateError as exc:
            return None, f"the model's chat template does not compile: {exc}"

    def render_chat(self, messages: Sequence[tuple[str, str]]) -> RenderedChat:
        """The prompt a chat request becomes on this model (camelid.compute.chat); ChatTemplateError if refused."""
        return render_chat(self.chat_template, messages, self.plain_reason)
