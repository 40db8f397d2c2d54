"""The llama.cpp worker: one model loaded in a child process of the node, `python -m camelid.compute.worker`.

Why a process: a fault in llama.cpp's native code (a segfault in a CPU kernel, as ggml's AMX path gives on
virtualised Sapphire Rapids hosts, or an illegal instruction on a CPU the build was not made for) kills the
process it runs in. Here that is this worker, not the node: chain, mempool, wallet, P2P and RPC keep running,
and the node's compute service (camelid.node.compute_service) reports the death and restarts the worker.
Local LLM servers such as Ollama run llama.cpp in a child process for the same reason.

Protocol (camelid.compute.worker_wire): the worker writes one `ready` frame with what it loaded, or an `error`
frame if the model cannot be loaded, then answers request frames {op, args} one at a time, in order, with
{result} or {error, message}. A ValueError (bad input) is answered as such; anything else is an internal
error. EOF on stdin ends the worker. Everything llama.cpp or Python prints goes to stderr, which the node
logs and quotes when the worker dies; faulthandler writes the Python stack there on a fatal signal.
"""

from __future__ import annotations

import argparse
import faulthandler
import logging
import os
import sys
from collections.abc import Callable
from typing import Any, BinaryIO

from camelid.compute.engine import Engine
from camelid.compute.fraudproof import EngineProofVerifier
from camelid.compute.outsourced import VerificationRequest, check_request
from camelid.compute.rastic import verify
from camelid.compute.tamper import tamper_output
from camelid.compute.worker_wire import (
    read_frame,
    verdict_to_wire,
    write_frame,
)

log = logging.getLogger("camelid.compute.worker")


def _operations(engine: Engine) -> dict[str, Callable[..., Any]]:
    """What a node may ask of the loaded model, by name; each returns msgpack-ready data."""
    judge = EngineProofVerifier({engine.model_id: engine}).judge

    def judged(**args: Any) -> list[Any] | None:
        judgement = judge(engine.model_id, tuple(args.pop("prompt_tokens")), tuple(args.pop("output_tokens")), **args)
        return None if judgement is None else [judgement.gap, judgement.reason]

    return {
        "tokenize": lambda text: engine.tokenize(text),
        "detokenize": lambda tokens: engine.detokenize(tokens),
        "generate_batch": lambda jobs: engine.generate_batch([tuple(job) for job in jobs]),
        "verify": lambda **args: verdict_to_wire(verify(engine, **args)),
        "check_request": lambda request: [
            r.to_dict() for r in check_request(engine, VerificationRequest.from_dict(request))
        ],
        "judge": judged,
        "tamper": lambda prompt_tokens, output_tokens: tamper_output(engine, prompt_tokens, output_tokens),
    }


def serve(engine: Engine, requests: BinaryIO, answers: BinaryIO) -> None:
    """Answer requests until EOF on `requests`."""
    operations = _operations(engine)
    while (request := read_frame(requests)) is not None:
        op, args = request.get("op"), request.get("args") or {}
        handler = operations.get(op) if isinstance(op, str) else None
        if handler is None or not isinstance(args, dict):
            write_frame(answers, {"error": "ValueError", "message": f"unknown worker request {op!r}"})
            continue
        try:
            result = handler(**args)
        except (ValueError, TypeError) as exc:  # bad arguments: the caller's problem, named
            write_frame(answers, {"error": "ValueError", "message": str(exc)})
        except Exception as exc:
            log.exception("worker request %s failed", op)
            write_frame(answers, {"error": type(exc).__name__, "message": str(exc)})
        else:
            write_frame(answers, {"result": result})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="camelid.compute.worker", description=__doc__.splitlines()[0])
    parser.add_argument("model", help="GGUF file")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--n-batch", type=int, default=512)
    parser.add_argument("--gpu-layers", type=int, default=0)
    parser.add_argument("--slots", type=int, default=1)
    args = parser.parse_args(argv)
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
    serve(engine, sys.stdin.buffer, answers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
