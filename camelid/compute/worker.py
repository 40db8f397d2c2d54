"""The llama.cpp worker: one model loaded in a child process of the node, `python -m camelid.compute.worker`.

Why a process: a fault in llama.cpp's native code (a segfault in a CPU kernel, as ggml's AMX path gives on
virtualised Sapphire Rapids hosts, or an illegal instruction on a CPU the build was not made for) kills the
process it runs in. Here that is this worker, not the node: chain, mempool, wallet, P2P and RPC keep running,
and the node's compute service (camelid.node.compute_service) reports the death and restarts the worker.
Local LLM servers such as Ollama run llama.cpp in a child process for the same reason.

Protocol (camelid.compute.worker_wire): the worker writes one `ready` frame with what it loaded, or an `error`
frame if the model cannot be loaded, then answers request frames {id, op, args} with {id, result} or
{id, error, message}, each as soon as it is ready: generations are batched continuously, other requests
are answered between two decode steps. A ValueError (bad input) is answered as such; anything else is an internal
error. EOF on stdin ends the worker. Everything llama.cpp or Python prints goes to stderr, which the node
logs and quotes when the worker dies; faulthandler writes the Python stack there on a fatal signal.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import faulthandler
import logging
import os
import select
import signal
import sys
from collections import deque
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any, BinaryIO

from camelid.compute.engine import Engine, Generations
from camelid.compute.outsourced import VerificationRequest, check_request
from camelid.compute.rastic import verify
from camelid.compute.tamper import tamper_output
from camelid.compute.worker_wire import (
    read_frame,
    verdict_to_wire,
    write_frame,
)

log = logging.getLogger("camelid.compute.worker")
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _operations(engine: Engine) -> dict[str, Callable[..., Any]]:
    """What a node may ask of the loaded model besides generation, by name; each returns msgpack-ready data."""
    return {
        "tokenize": lambda text: engine.tokenize(text),
        "detokenize": lambda tokens: engine.detokenize(tokens),
        "prefill": lambda tokens: engine.prefill(tokens),
        "verify": lambda **args: verdict_to_wire(verify(engine, **args)),
        "check_request": lambda request: [
            r.to_dict() for r in check_request(engine, VerificationRequest.from_dict(request))
        ],
        "tamper": lambda prompt_tokens, output_tokens: tamper_output(engine, prompt_tokens, output_tokens),
    }


def _run(handler: Callable[..., Any], args: dict[str, Any], op: str) -> dict[str, Any]:
    try:
        return {"result": handler(**args)}
    except (ValueError, TypeError) as exc:  # bad arguments: the caller's problem, named
        return {"error": "ValueError", "message": str(exc)}
    except Exception as exc:
        log.exception("worker request %s failed", op)
        return {"error": type(exc).__name__, "message": str(exc)}


def serve(engine: Engine, requests: BinaryIO, answers: BinaryIO) -> None:
    """Answer requests until EOF on `requests` and the last generation is done.

    Generations run continuously batched (Generations): a `generate` request joins the running batch at the
    next step, or waits for a free slot; every other request is answered between two steps. Answers carry
    their request's id and come in the order they are ready.
    """
    operations = _operations(engine)
    generations = Generations(engine)
    waiting: deque[tuple[Any, dict[str, Any]]] = deque()  # generate requests for a free slot
    open_ = True
    while open_ or waiting or generations.free_slots < engine.slots:
        busy = bool(waiting) or generations.free_slots < engine.slots
        for request in _available(requests, block=not busy):
            if request is None:
                open_ = False
                break
            request_id, op, args = request.get("id"), request.get("op"), request.get("args") or {}
            if op == "generate" and isinstance(args, dict):
                waiting.append((request_id, args))
                continue
            handler = operations.get(op) if isinstance(op, str) else None
            if handler is None or not isinstance(args, dict):
                answer = {"error": "ValueError", "message": f"unknown worker request {op!r}"}
            else:
                answer = _run(handler, args, op)
            write_frame(answers, {"id": request_id, **answer})
        while waiting and generations.free_slots:
            request_id, args = waiting.popleft()
            admitted = _run(partial(generations.admit, request_id), args, "generate")
            if "error" in admitted:
                write_frame(answers, {"id": request_id, **admitted})
        for request_id, output in generations.step():
            write_frame(answers, {"id": request_id, "result": output})


def _available(requests: BinaryIO, block: bool) -> Iterator[dict[str, Any] | None]:
    """The requests that have arrived (waiting for one if `block`); None at EOF."""
    while block or select.select([requests], [], [], 0)[0]:
        block = False
        request = read_frame(requests)
        yield request
        if request is None:
            return


def _die_with_the_node() -> None:
    """On Linux, have the kernel kill this worker when the node's process dies, even by SIGKILL: an orphaned
    worker would otherwise compute its queued generations for nobody before it reads EOF."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1:  # the node died before the line above ran
        os._exit(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="camelid.compute.worker", description=__doc__.splitlines()[0])
    parser.add_argument("model", help="GGUF file")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--n-batch", type=int, default=512)
    parser.add_argument("--gpu-layers", type=int, default=0)
    parser.add_argument("--slots", type=int, default=1)
    args = parser.parse_args(argv)
    _die_with_the_node()
    # Frames go out on a private copy of stdout; fd 1 then points at stderr, so that nothing printed by
    # native code can corrupt the protocol.
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    faulthandler.enable(sys.stderr)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        engine = Engine(args.model, args.threads, args.n_ctx, args.n_batch, args.gpu_layers, args.slots)
    except ValueError as exc:
        write_frame(answers, {"error": "ValueError", "message": str(exc)})
        return 3
    write_frame(answers, {"ready": engine.describe()})
    serve(engine, os.fdopen(sys.stdin.fileno(), "rb", buffering=0), answers)  # unbuffered, so select() is right
    return 0


if __name__ == "__main__":
    sys.exit(main())
