"""One llama.cpp model kept loaded, driven through llama-cpp-python's low-level API.

The low-level API is used (not the `Llama` class) because verification needs one batched
prefill with logits requested only at chosen positions; `Llama` offers only the last position
or all of them (`logits_all`), and all of them costs about three times more on a 262k vocabulary.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import llama_cpp
import numpy as np

from camelid.compute.model_id import manifest_of_file
from camelid.compute.sampling import check_sampling_params, choose_token

R = TypeVar("R")

# Logits rows per llama_decode: at 1 MiB a row (262k vocabulary) this bounds the logits buffer
# to 64 MiB while still amortising the output projection over many rows.
OUTPUTS_PER_DECODE = 64
MAX_SLOTS = 16
"""Most jobs one engine decodes together (generate_batch)."""
PARSE_SPECIAL = True
"""Consensus: a prompt's special-token text (`<|im_start|>`, `<start_of_turn>`) is that special token, as in
llama-server, so a chat template's rendering reaches the model as it was trained (docs/protocol.md)."""

_backend_lock = threading.Lock()
_backend_ready = False
_llama_log = logging.getLogger("camelid.compute.llama")
# ggml's levels: 1 debug, 2 info, 3 warn, 4 error, 5 continuation (llama-cpp-python's own map is stale
# and prints warnings for every model load).
_GGML_TO_LOGGING = {1: logging.DEBUG, 2: logging.DEBUG, 3: logging.INFO, 4: logging.ERROR}


@llama_cpp.llama_log_callback
def _forward_llama_log(level: int, text: bytes, _user_data: ctypes.c_void_p) -> None:
    _llama_log.log(_GGML_TO_LOGGING.get(level, logging.DEBUG), "%s", text.decode("utf-8", "replace").rstrip())


def init_backend() -> None:
    """Initialise llama.cpp once per process and route its log into Python logging."""
    global _backend_ready
    with _backend_lock:
        if _backend_ready:
            return
        llama_cpp.llama_log_set(_forward_llama_log, ctypes.c_void_p(0))
        llama_cpp.llama_backend_init()
        _backend_ready = True


def tokenize(vocab: llama_cpp.llama_vocab_p, text: str, add_bos: bool) -> list[int]:
    """`text` as a job's prompt is tokenized: special-token text is the special token (PARSE_SPECIAL)."""
    data = text.encode("utf-8")
    capacity = len(data) + 8
    while True:
        buf = (llama_cpp.llama_token * capacity)()
        n = llama_cpp.llama_tokenize(vocab, data, len(data), buf, capacity, add_bos, PARSE_SPECIAL)
        if n >= 0:
            return list(buf[:n])
        capacity = -n


def build_info() -> str:
    """llama.cpp's own line of the CPU features its build uses ("AVX2 = 1 | ..."), as ggml reports them."""
    return llama_cpp.llama_print_system_info().decode("utf-8", "replace").strip()


class Engine:
    """A loaded model: tokenizer, greedy/seeded generation and logits at chosen positions.

    llama.cpp contexts are not thread-safe, so every call into the context holds a lock. The node never
    loads one itself: its engines live in worker processes (camelid.compute.worker), so that a native
    crash takes down one worker, not the node.
    """

    def __init__(
        self,
        model_path: Path | str,
        n_threads: int | None = None,
        n_ctx: int = 2048,
        n_batch: int = 512,
        gpu_layers: int = 0,
        slots: int = 1,
    ) -> None:
        """`gpu_layers`: layers llama.cpp offloads to a GPU (n_gpu_layers; -1 all), for a build with one.

        `slots`: generations decoded together (Generations), each a llama.cpp sequence with n_ctx of its own;
        one more sequence serves logits_at, so a RASTiC check never disturbs generations in progress.
        """
        path = Path(model_path)
        if not path.is_file():
            raise ValueError(f"model file {path} does not exist")
        if n_threads is not None and n_threads < 1:
            raise ValueError(f"n_threads must be >= 1, got {n_threads}")
        if gpu_layers < -1:
            raise ValueError(f"gpu_layers must be -1 (all) or >= 0, got {gpu_layers}")
        if not 1 <= slots <= MAX_SLOTS:
            raise ValueError(f"slots must be in [1, {MAX_SLOTS}], got {slots}")
        if n_ctx < 2 or n_batch < 1:
            raise ValueError(f"n_ctx must be >= 2 and n_batch >= 1, got {n_ctx}, {n_batch}")
        init_backend()
        self.path = path
        self.manifest = manifest_of_file(path)
        self.n_threads = n_threads or os.cpu_count() or 1
        self.n_ctx = n_ctx
        self.n_batch = n_batch
        self.slots = slots
        self._lock = threading.Lock()
        self._kept: list[int] = []  # tokens whose cache the checking sequence (the last) holds, from position 0

        self.gpu_layers = gpu_layers
        model_params = llama_cpp.llama_model_default_params()
        model_params.n_gpu_layers = gpu_layers if gpu_layers >= 0 else 2**31 - 1
        self._model = llama_cpp.llama_model_load_from_file(str(path).encode(), model_params)
        if not self._model:
            raise ValueError(f"llama.cpp could not load {path}")
        ctx_params = llama_cpp.llama_context_default_params()
        ctx_params.n_ctx = n_ctx * (slots + 1)
        ctx_params.n_seq_max = slots + 1  # the last sequence is logits_at's
        ctx_params.kv_unified = False  # each sequence its own n_ctx cells: jobs share no prefix
        ctx_params.n_batch = n_batch
        ctx_params.n_ubatch = n_batch
        ctx_params.n_threads = self.n_threads
        ctx_params.n_threads_batch = self.n_threads
        ctx_params.no_perf = True
        self._ctx = llama_cpp.llama_init_from_model(self._model, ctx_params)
        if not self._ctx:
            llama_cpp.llama_model_free(self._model)
            raise ValueError(f"llama.cpp could not create a context for {path} (n_ctx={n_ctx})")
        self._vocab = llama_cpp.llama_model_get_vocab(self._model)
        self.n_vocab: int = llama_cpp.llama_vocab_n_tokens(self._vocab)
        self.eos: int = llama_cpp.llama_vocab_eos(self._vocab)
        self._batch = llama_cpp.llama_batch_init(n_batch, 0, 1)

    @property
    def model_id(self) -> bytes:
        """The model file's id (camelid.compute.model_id; whitepaper 2.6.1)."""
        return self.manifest.id

    def describe(self) -> dict[str, object]:
        """What was loaded and how, for the node's getcomputeinfo: model, sizes, threads and the build in use."""
        return {
            "model_id": self.model_id,
            "n_vocab": self.n_vocab,
            "n_ctx": self.n_ctx,
            "n_threads": self.n_threads,
            "slots": self.slots,
            "gpu_layers": self.gpu_layers,
            "llama_cpp_version": llama_cpp.__version__,
            "system_info": build_info(),
            "gpu_offload": bool(llama_cpp.llama_supports_gpu_offload()),
        }

    def close(self) -> None:
        """Free the llama.cpp objects; the engine is unusable afterwards."""
        with self._lock:
            if self._ctx is None:
                return
            llama_cpp.llama_batch_free(self._batch)
            llama_cpp.llama_free(self._ctx)
            llama_cpp.llama_model_free(self._model)
            self._ctx = None

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def is_end(self, token: int) -> bool:
        """True for every end-of-generation token (gemma has <eos> and <end_of_turn>)."""
        return bool(llama_cpp.llama_vocab_is_eog(self._vocab, token))

    def tokenize(self, text: str, add_bos: bool = True) -> list[int]:
        return tokenize(self._vocab, text, add_bos)

    def detokenize(self, tokens: Sequence[int]) -> str:
        """Text of `tokens`; special tokens render as nothing, invalid UTF-8 is replaced."""
        self.check_tokens(tokens, "tokens")
        return detokenize_with(self._vocab, tokens)

    def generate(
        self, prompt_tokens: Sequence[int], max_tokens: int, seed: int = 0, temperature: float = 0.0
    ) -> list[int]:
        """Output token ids: one decode per token, stopping after an end token or max_tokens."""
        generations = Generations(self)
        generations.admit(0, prompt_tokens, max_tokens, seed, temperature)
        while not (done := generations.step()):
            pass
        return done[0][1]

    def logits_at(self, tokens: Sequence[int], positions: Sequence[int]) -> np.ndarray:
        """Logits predicting the token after each of `positions`, from one batched prefill.

        Returns an array of shape (len(positions), n_vocab) in the order of `positions`
        (which must be increasing); logits are computed at those positions only.
        """
        result = np.empty((len(positions), self.n_vocab), dtype=np.float32)

        def store(index: int, row: np.ndarray) -> None:
            result[index] = row

        self.map_logits(tokens, positions, store)
        return result

    def map_logits(
        self,
        tokens: Sequence[int],
        positions: Sequence[int],
        reduce: Callable[[int, np.ndarray], R],
        reuse: bool = False,
    ) -> list[R]:
        """[reduce(i, logits after positions[i]) for each i], from one batched prefill, as logits_at.

        `reduce` reads each row where llama.cpp wrote it, before the next decode overwrites it: a check
        that keeps a number per position copies no row (1 MiB each on a 262k vocabulary) and holds no
        (positions x vocabulary) array. It must not keep the row it is given.

        With `reuse`, the cache an earlier call left is kept up to where its tokens part from these (and
        never past the first position, whose logits must be computed): a `prefill` of a job's prompt, done
        while the job is generated elsewhere, spares the job's check that part. The kept keys and values are
        those generation computes for the prompt (it too decodes the prompt alone), so the gaps differ from
        a single prefill's by float rounding only (docs/rastic.md, "Prompt prefilled ahead"); but they then
        depend on what ran before, so a check every node must repeat alike (a fraud proof's) never reuses.
        """
        self.check_tokens(tokens, "tokens")
        if not tokens or len(tokens) > self.n_ctx:
            raise ValueError(f"need 1 to {self.n_ctx} tokens, got {len(tokens)}")
        if any(b <= a for a, b in zip(positions, positions[1:], strict=False)):
            raise ValueError("positions must be strictly increasing")
        if positions and not 0 <= positions[0] <= positions[-1] < len(tokens):
            raise ValueError(f"positions must lie in [0, {len(tokens)})")
        tokens, positions = list(tokens), list(positions)
        with self._lock:
            kept = self._keep_prefix(tokens, positions[0] if positions else len(tokens)) if reuse else 0
            if not kept:
                self._clear(self.slots)
            try:
                results = self._forward(tokens[kept:], kept, [p - kept for p in positions], reduce)
            except BaseException:
                self._clear(self.slots)
                raise
            self._kept = tokens
            return results

    def prefill(self, tokens: Sequence[int]) -> None:
        """Decode `tokens` into the checking sequence's cache ahead of a check that starts with them."""
        self.map_logits(tokens, [], lambda _index, _row: None, reuse=True)

    def _keep_prefix(self, tokens: list[int], limit: int) -> int:
        """Cut the checking sequence's cache to the longest prefix it shares with `tokens`, at most `limit`
        tokens; that length. The cached keys and values are those a prefill of the whole `tokens` computes
        at those positions, so only float rounding can tell the two apart (docs/rastic.md)."""
        if self._ctx is None:
            raise ValueError("engine is closed")
        kept = 0
        for cached, token in zip(self._kept, tokens[:limit], strict=False):
            if cached != token:
                break
            kept += 1
        memory = llama_cpp.llama_get_memory(self._ctx)
        if not llama_cpp.llama_memory_seq_rm(memory, self.slots, kept, -1):  # a cache that cannot cut a sequence
            kept = 0
            self._clear(self.slots)
        self._kept = tokens[:kept]
        return kept

    def check_tokens(self, tokens: Sequence[int], what: str) -> None:
        """ValueError naming `what` unless every entry is a token id of this model."""
        for t in tokens:
            if not isinstance(t, int) or isinstance(t, bool) or not 0 <= t < self.n_vocab:
                raise ValueError(f"{what} holds {t!r}, not a token id in [0, {self.n_vocab})")

    def _check_job(self, prompt_tokens: Sequence[int], max_tokens: int) -> None:
        self.check_tokens(prompt_tokens, "prompt_tokens")
        if not prompt_tokens:
            raise ValueError("prompt_tokens is empty")
        if not isinstance(max_tokens, int) or max_tokens < 1:
            raise ValueError(f"max_tokens must be a positive int, got {max_tokens!r}")
        if len(prompt_tokens) + max_tokens > self.n_ctx:
            raise ValueError(
                f"prompt ({len(prompt_tokens)}) + max_tokens ({max_tokens}) exceeds n_ctx ({self.n_ctx})"
            )

    def _clear(self, seq: int) -> None:
        """Forget sequence `seq`'s cache (the others keep theirs)."""
        if self._ctx is None:
            raise ValueError("engine is closed")
        llama_cpp.llama_memory_seq_rm(llama_cpp.llama_get_memory(self._ctx), seq, -1, -1)
        if seq == self.slots:
            self._kept = []

    def _forward(
        self, tokens: list[int], start: int, outputs: list[int], reduce: Callable[[int, np.ndarray], R]
    ) -> list[R]:
        """Decode `tokens` in logits_at's sequence at positions start..; `reduce` of the rows for `outputs`."""
        seq = self.slots
        entries = [(seq, token, start + index) for index, token in enumerate(tokens)]
        return self._forward_entries(entries, {(seq, start + index) for index in outputs}, reduce)

    def _forward_entries(
        self, entries: list[tuple[int, int, int]], wanted: set[tuple[int, int]], reduce: Callable[[int, np.ndarray], R]
    ) -> list[R]:
        """Decode (sequence, token, position) entries in order; reduce(i, row) of the logits row of the i-th
        `wanted` (sequence, position) pair, in entry order.

        Each llama_decode gets at most n_batch tokens and OUTPUTS_PER_DECODE logits rows: long batches make
        the prefill fast, and the row cap bounds llama.cpp's logits buffer (1 MiB per row with a 262k
        vocabulary). Each row is reduced in place after its decode, before the next one overwrites it.
        """
        results: list[R] = []
        chunk_start = 0
        while chunk_start < len(entries):
            flagged: list[int] = []
            size = 0
            while chunk_start + size < len(entries) and size < self.n_batch:
                seq, token, pos = entries[chunk_start + size]
                want = (seq, pos) in wanted
                if want:
                    if len(flagged) == OUTPUTS_PER_DECODE:
                        break
                    flagged.append(size)
                self._put(size, token, pos, want, seq)
                size += 1
            self._batch.n_tokens = size
            status = llama_cpp.llama_decode(self._ctx, self._batch)
            if status != 0:
                raise RuntimeError(f"llama_decode failed with status {status}")
            for i in flagged:
                ptr = llama_cpp.llama_get_logits_ith(self._ctx, i)
                results.append(reduce(len(results), np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))))
            chunk_start += size
        return results

    def _put(self, slot: int, token: int, pos: int, want_logits: bool, seq: int = 0) -> None:
        batch = self._batch
        batch.token[slot] = token
        batch.pos[slot] = pos
        batch.n_seq_id[slot] = 1
        batch.seq_id[slot][0] = seq
        batch.logits[slot] = want_logits


def detokenize_with(vocab: Any, tokens: Sequence[int]) -> str:
    """Text of `tokens` (ids already checked against `vocab`); special tokens render as nothing."""
    arr = (llama_cpp.llama_token * len(tokens))(*tokens)
    capacity = 8 * len(tokens) + 16
    while True:
        buf = ctypes.create_string_buffer(capacity)
        n = llama_cpp.llama_detokenize(vocab, arr, len(tokens), buf, capacity, False, False)
        if n >= 0:
            return buf.raw[:n].decode("utf-8", errors="replace")
        capacity = -n


@dataclass
class _Generation:
    key: object  # the caller's name for it (a request id)
    prompt: list[int]
    max_tokens: int
    seed: int
    temperature: float
    output: list[int] = field(default_factory=list)
    prefilled: bool = False


class Generations:
    """Continuous batching over an engine's slots, as llama.cpp's server does with --parallel.

    `admit` a job into a free slot at any time; each `step` decodes, in one batch, the prompts of the jobs
    admitted since the last step and one token of every other unfinished job, and returns the jobs that
    finished. A job's tokens are chosen from its own logits as a lone job's are, but a batched decode's
    floats differ slightly from a lone one's, so a near-tie may break the other way: RASTiC's EPS_ACCEPT
    covers that (docs/rastic.md, "Batched generation"). One thread drives it (the worker's).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._running: dict[int, _Generation] = {}  # by slot (= llama.cpp sequence)

    @property
    def free_slots(self) -> int:
        return self.engine.slots - len(self._running)

    def admit(self, key: object, prompt_tokens: Sequence[int], max_tokens: int, seed: int, temperature: float) -> None:
        """Start a job in a free slot; ValueError (naming the problem) for a bad job or no free slot."""
        engine = self.engine
        engine._check_job(prompt_tokens, max_tokens)
        check_sampling_params(seed, temperature)
        slot = next((i for i in range(engine.slots) if i not in self._running), None)
        if slot is None:
            raise ValueError(f"all {engine.slots} generation slots are busy")
        with engine._lock:
            engine._clear(slot)
        self._running[slot] = _Generation(key, list(prompt_tokens), max_tokens, seed, temperature)

    def step(self) -> list[tuple[object, list[int]]]:
        """Decode one step of every running job; the (key, output) of the jobs that finished."""
        entries: list[tuple[int, int, int]] = []
        wanted: list[tuple[int, int]] = []
        for slot, job in self._running.items():
            if job.prefilled:
                position = len(job.prompt) + len(job.output) - 1
                entries.append((slot, job.output[-1], position))
            else:
                entries.extend((slot, token, position) for position, token in enumerate(job.prompt))
                position = len(job.prompt) - 1
                job.prefilled = True
            wanted.append((slot, position))
        if not entries:
            return []
        def choose(index: int, logits: np.ndarray) -> int:
            job = self._running[wanted[index][0]]
            return choose_token(logits, job.seed, len(job.output), job.temperature)

        with self.engine._lock:
            tokens = self.engine._forward_entries(entries, set(wanted), choose)
        finished = []
        for (slot, _), token in zip(wanted, tokens, strict=True):
            job = self._running[slot]
            job.output.append(token)
            if self.engine.is_end(token) or len(job.output) == job.max_tokens:
                finished.append((job.key, job.output))
                del self._running[slot]
                with self.engine._lock:
                    self.engine._clear(slot)
        return finished
