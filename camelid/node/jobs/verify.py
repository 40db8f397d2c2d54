"""Outsourced RASTiC over the network (whitepaper 2.5.3): neighbours that hold the model check for clients that don't.

A client without the model can neither tokenize its prompt nor read or check the delivered tokens. It asks up
to VERIFIERS_ASKED direct peers that announce the model (never the node that computed the job) with a
`rasticask` carrying the delivered tokens and the commitment the node signed. A verifier answers only for a
job in its own pool whose testament carries that commitment: it takes the prompt and sampling parameters from
the pool, checks that the tokens are the committed ones, runs RASTiC on every position (one prefill) and
answers a verdict signed with its node key, plus the text. The client accepts a verdict only if it answers
its exact request (job, commitment, positions) and is signed by the node it asked. One failing verdict fails
the job; a client cannot slash without the model (its mempool cannot check the fraud proof), so the job
stays disputed and the verdict says which verifier rejected how many positions.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

import msgpack

from camelid.compute.outsourced import (
    SignedVerdict,
    VerificationRequest,
    request_digest,
    sign_results,
    verdict_digest,
)
from camelid.compute.worker_client import EngineUnavailable
from camelid.crypto.keys import PublicKey
from camelid.node.jobs.common import JobContext, decode_directed, hex_id
from camelid.node.jobs.verdict import VERIFIED, Cause, Verdict, unverified
from camelid.node.jobs.verdict import failed as failed_verdict
from camelid.p2p.messages.verify import RasticAnswer, RasticAsk

if TYPE_CHECKING:
    from camelid.p2p.messages import Directed
    from camelid.p2p.peer import Peer

log = logging.getLogger(__name__)

VERIFIERS_ASKED = 2
ANSWER_TIMEOUT = 60.0
"""Seconds to wait for verifiers' answers: one prefill of the job, and the engine may be busy with another."""


@dataclass(frozen=True)
class Outcome:
    """What the verifiers said: the job's verdict, from a passing verifier the output's text, and who checked."""

    verdict: Verdict
    text: str | None
    checked_by: list[str]


class OutsourcedVerification:
    """Both sides of outsourced RASTiC: answering peers' asks, and asking peers about our own deliveries."""

    def __init__(self, ctx: JobContext) -> None:
        self._ctx = ctx
        self._waiting: dict[tuple[bytes, bytes], asyncio.Future[RasticAnswer]] = {}
        self._engine_lock = asyncio.Lock()  # one outsourced check at a time: neighbours share our CPU, not own it

    # -- client side ---------------------------------------------------------------------------------

    async def ask(
        self, job_id: bytes, model_id: bytes, computed_by: bytes, commitment: bytes, tokens: list[int]
    ) -> Outcome:
        """Ask neighbours holding `model_id` to check `tokens` against `commitment`; their combined verdict."""
        ctx = self._ctx
        verifiers = [
            peer.node_id
            for peer in ctx.manager.peers()
            if model_id in peer.models and peer.node_id not in (computed_by, ctx.node_id)
        ][:VERIFIERS_ASKED]
        if not verifiers:
            why = "this node does not hold the model and no peer that does can check it"
            return Outcome(unverified(Cause.UNCHECKABLE, why), None, [])
        positions = tuple(range(len(tokens)))
        ask = RasticAsk(job_id, commitment, struct.pack(f"<{len(tokens)}I", *tokens))
        loop = asyncio.get_running_loop()
        futures = {}
        for verifier in verifiers:
            futures[verifier] = self._waiting[(job_id, verifier)] = loop.create_future()
            ctx.manager.send_directed(verifier, RasticAsk.command, ask.to_payload())
        try:
            done, _ = await asyncio.wait(futures.values(), timeout=ANSWER_TIMEOUT)
        finally:
            for verifier in verifiers:
                self._waiting.pop((job_id, verifier), None)
        expected = request_digest(job_id, commitment, positions)
        passed: list[tuple[bytes, str]] = []
        refusals: list[str] = []
        for verifier, future in futures.items():
            if future not in done:
                refusals.append(f"{verifier.hex()[:16]}: no answer")
                continue
            answer = future.result()
            try:
                verdict = _verdict_of(answer, verifier, expected, positions)
            except ValueError as exc:
                refusals.append(f"{verifier.hex()[:16]}: {exc}")
                continue
            if not verdict.ok:
                failed = sum(not r.ok for r in verdict.results)
                rejected = f"verifier {verifier.hex()[:16]} rejected {failed} of {len(positions)} positions"
                return Outcome(
                    failed_verdict(Cause.VERIFIER, rejected),
                    None,
                    [verifier.hex()],
                )
            else:
                passed.append((verifier, answer.text.decode("utf-8", errors="replace")))
        if not passed:
            why = f"no verifier could check it ({'; '.join(refusals)})"
            return Outcome(unverified(Cause.UNCHECKABLE, why), None, [])
        return Outcome(VERIFIED, passed[0][1], [verifier.hex() for verifier, _ in passed])

    async def on_verdict(self, peer: Peer, directed: Directed) -> None:
        answer = decode_directed(RasticAnswer, directed)
        if answer is None:
            return
        future = self._waiting.get((answer.job_id, directed.sender))
        if future is not None and not future.done():
            future.set_result(answer)

    # -- verifier side -------------------------------------------------------------------------------

    async def on_ask(self, peer: Peer, directed: Directed) -> None:
        ask = decode_directed(RasticAsk, directed)
        if ask is None:
            return
        async with self._engine_lock:
            verdict, text, refusal = await self._answer(ask)
        if refusal:
            log.info("rasticask for %s from %s refused: %s", hex_id(ask.job_id), directed.sender.hex(), refusal)
        reply = RasticAnswer(ask.job_id, ask.commitment, verdict, text, refusal)
        self._ctx.manager.send_directed(directed.sender, RasticAnswer.command, reply.to_payload())

    async def _answer(self, ask: RasticAsk) -> tuple[bytes, bytes, str]:
        """(msgpack SignedVerdict, UTF-8 text, "") or (b"", b"", why we cannot answer)."""
        ctx = self._ctx
        record = ctx.pool.get(ask.job_id)
        if record is None:
            return b"", b"", "the job is not in this node's pool"
        if not any(t.commitment == ask.commitment for t in record.testaments.values()):
            return b"", b"", "no testament of this job carries that commitment"
        if len(ask.output) % 4:
            return b"", b"", "the output is not a whole number of u32 tokens"
        try:
            engine = await ctx.engine_for(record.params.model_id)
        except EngineUnavailable as exc:
            return b"", b"", f"this node's worker for the model is unavailable ({exc})"
        if engine is None:
            return b"", b"", "this node does not hold the model"
        params = record.params
        tokens = tuple(struct.unpack(f"<{len(ask.output) // 4}I", ask.output))
        try:
            prompt = tuple(await engine.tokenize(params.prompt))
            request = VerificationRequest(
                ask.job_id,
                params.model_id,
                prompt,
                tokens,
                params.max_tokens,
                params.seed,
                params.temperature,
                tuple(range(len(tokens))),
            )
            if request.commitment() != ask.commitment:
                return b"", b"", "the output is not the one the commitment names"
            verdict = sign_results(request, await engine.check_request(request), ctx.node_key.secret)
            text = await engine.detokenize(tokens)
        except ValueError as exc:  # tokens this model does not have, or a job its context cannot hold
            return b"", b"", f"cannot check it: {exc}"
        except EngineUnavailable as exc:
            return b"", b"", f"this node's worker for the model died while checking ({exc})"
        return msgpack.packb(verdict.to_dict(), use_bin_type=True), text.encode("utf-8"), ""


def _verdict_of(
    answer: RasticAnswer, verifier: bytes, expected_digest: bytes, positions: tuple[int, ...]
) -> SignedVerdict:
    """`verifier`'s signed verdict on our request; ValueError naming the problem if the answer is not one."""
    if answer.refusal:
        raise ValueError(answer.refusal)
    try:
        verdict = SignedVerdict.from_dict(msgpack.unpackb(answer.verdict, raw=False))
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise ValueError(f"malformed verdict ({exc})") from None
    if verdict.request_digest != expected_digest or tuple(r.position for r in verdict.results) != positions:
        raise ValueError("the verdict answers another request")
    if verdict.pubkey != verifier:
        raise ValueError("the verdict is signed by another key")
    if not PublicKey.from_bytes(verdict.pubkey).verify(
        verdict.signature, verdict_digest(verdict.request_digest, verdict.results)
    ):
        raise ValueError("the verdict's signature does not verify")
    return verdict
