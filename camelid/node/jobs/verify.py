"""Outsourced RASTiC over the network (whitepaper 2.5.3): neighbours that hold the model check for clients that don't.

A client whose model cannot run here cannot check the delivered tokens. It asks the direct peers that announce
the model (never the node that computed the job, at most `needed` + SPARE_VERIFIERS of them) with a `rasticask`
carrying the delivered tokens and the commitment the node signed. A verifier answers only for a job in its own
pool whose testament carries that commitment: it takes the prompt and sampling parameters from the pool,
checks that the tokens are the committed ones, runs RASTiC on every position (one prefill) and answers a verdict
signed with its node key over the job, the commitment and the hash of the exact tokens (no text: the client
reads the tokens itself, with the model's vocabulary). The client counts a verdict only if it answers its exact
request and is signed by the node it asked. The job is verified when `needed` distinct verifiers pass it, and
failed when any one fails it: a sybil can only make a job fail (which costs the client nothing it would not
lose to a cheater), and making a tampered output pass takes `needed` colluding verifiers among our peers.
A client cannot slash without the model (its mempool cannot check the fraud proof), so a failed job stays
disputed and the verdict says which verifier rejected how many positions.

What a verifier learns: the job's prompt, which the client seals to each verifier it asks (the flooded job
carries only its commitment), checked against that commitment before anything else, and so, with the seed and
model, the output. It is asked only after the job was paid, so it cannot underbid or front-run the node for that
job; and it learns which node asked (the directed envelope's sender), which the flooded job message already
names. A client that wants fewer eyes on its prompt asks fewer verifiers (--verifiers).
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
    tokens_hash,
    verdict_digest,
)
from camelid.compute.worker_client import EngineUnavailable
from camelid.core.private_prompt import PromptMismatch, RevealedPrompt, open_prompt, seal_prompt
from camelid.crypto.keys import PublicKey
from camelid.node.jobs.common import JobContext, decode_directed, hex_id
from camelid.node.jobs.verdict import VERIFIED, Cause, Verdict, unverified
from camelid.node.jobs.verdict import failed as failed_verdict
from camelid.p2p.messages.verify import RasticAnswer, RasticAsk

if TYPE_CHECKING:
    from camelid.p2p.messages import Directed
    from camelid.p2p.peer import Peer

log = logging.getLogger(__name__)

SPARE_VERIFIERS = 1
"""Verifiers asked beyond the number needed, so that one that does not answer does not leave the job unverified."""
ANSWER_TIMEOUT = 60.0
"""Seconds to wait for verifiers' answers: one prefill of the job, and the engine may be busy with another."""


@dataclass(frozen=True)
class Outcome:
    """What the verifiers said: the job's verdict, and who checked it."""

    verdict: Verdict
    checked_by: list[str]


class OutsourcedVerification:
    """Both sides of outsourced RASTiC: answering peers' asks, and asking peers about our own deliveries."""

    def __init__(self, ctx: JobContext, needed: int = 2) -> None:
        """`needed`: distinct verifiers that must pass a delivery before it is verified."""
        if needed < 1:
            raise ValueError(f"at least one verifier must check a delivery, not {needed}")
        self._ctx = ctx
        self.needed = needed
        self._waiting: dict[tuple[bytes, bytes], asyncio.Future[RasticAnswer]] = {}
        self._engine_lock = asyncio.Lock()  # one outsourced check at a time: neighbours share our CPU, not own it

    # -- client side ---------------------------------------------------------------------------------

    async def ask(
        self,
        job_id: bytes,
        model_id: bytes,
        computed_by: bytes,
        commitment: bytes,
        tokens: list[int],
        revealed: RevealedPrompt,
    ) -> Outcome:
        """Ask neighbours holding `model_id` to check `tokens` against `commitment`; their combined verdict.
        Each one asked, and only those, is sent the job's prompt (`revealed`), sealed to its node key."""
        ctx = self._ctx
        verifiers = list(
            dict.fromkeys(
                peer.node_id
                for peer in ctx.manager.peers()
                if model_id in peer.models and peer.node_id not in (computed_by, ctx.node_id)
            )
        )[: self.needed + SPARE_VERIFIERS]
        if len(verifiers) < self.needed:
            why = f"{len(verifiers)} peers that hold the model can check it, and {self.needed} must pass it"
            return Outcome(unverified(Cause.UNCHECKABLE, why), [])
        positions = tuple(range(len(tokens)))
        output = struct.pack(f"<{len(tokens)}I", *tokens)
        loop = asyncio.get_running_loop()
        futures = {}
        for verifier in verifiers:
            futures[verifier] = self._waiting[(job_id, verifier)] = loop.create_future()
            sealed = seal_prompt(PublicKey.from_bytes(verifier), job_id, revealed)
            ask = RasticAsk(job_id, commitment, output, sealed)
            ctx.manager.send_directed(verifier, RasticAsk.command, ask.to_payload())
        try:
            done, _ = await asyncio.wait(futures.values(), timeout=ANSWER_TIMEOUT)
        finally:
            for verifier in verifiers:
                self._waiting.pop((job_id, verifier), None)
        expected = request_digest(job_id, commitment, tokens_hash(tokens), positions)
        passed: list[str] = []
        refusals: list[str] = []
        for verifier, future in futures.items():
            if future not in done:
                refusals.append(f"{verifier.hex()[:16]}: no answer")
                continue
            try:
                verdict = _verdict_of(future.result(), verifier, expected, positions)
            except ValueError as exc:
                refusals.append(f"{verifier.hex()[:16]}: {exc}")
                continue
            if not verdict.ok:  # any failure wins
                failed = sum(not r.ok for r in verdict.results)
                rejected = f"verifier {verifier.hex()[:16]} rejected {failed} of {len(positions)} positions"
                return Outcome(failed_verdict(Cause.VERIFIER, rejected), [verifier.hex()])
            passed.append(verifier.hex())
        if len(passed) < self.needed:
            why = f"{len(passed)} of the {self.needed} verifiers needed passed it ({'; '.join(refusals)})"
            return Outcome(unverified(Cause.UNCHECKABLE, why), passed)
        return Outcome(VERIFIED, passed)

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
            verdict, refusal = await self._answer(ask)
        if refusal:
            log.info("rasticask for %s from %s refused: %s", hex_id(ask.job_id), directed.sender.hex(), refusal)
        reply = RasticAnswer(ask.job_id, ask.commitment, verdict, refusal)
        self._ctx.manager.send_directed(directed.sender, RasticAnswer.command, reply.to_payload())

    async def _answer(self, ask: RasticAsk) -> tuple[bytes, str]:
        """(msgpack SignedVerdict, "") or (b"", why we cannot answer)."""
        ctx = self._ctx
        record = ctx.pool.get(ask.job_id)
        if record is None:
            return b"", "the job is not in this node's pool"
        if not any(t.commitment == ask.commitment for t in record.testaments.values()):
            return b"", "no testament of this job carries that commitment"
        if len(ask.output) % 4:
            return b"", "the output is not a whole number of u32 tokens"
        try:
            engine = await ctx.engine_for(record.params.model_id)
        except EngineUnavailable as exc:
            return b"", f"this node's worker for the model is unavailable ({exc})"
        if engine is None:
            return b"", "this node does not hold the model"
        params = record.params
        tokens = tuple(struct.unpack(f"<{len(ask.output) // 4}I", ask.output))
        try:
            revealed = open_prompt(ctx.node_key, ask.job_id, ask.prompt)
        except PromptMismatch as exc:
            return b"", str(exc)
        if revealed.commitment() != params.prompt_commitment:
            return b"", "the prompt sent does not match the job's prompt commitment"
        try:
            prompt = tuple(await engine.tokenize(revealed.prompt))
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
                return b"", "the output is not the one the commitment names"
            verdict = sign_results(request, await engine.check_request(request), ctx.node_key.secret)
        except ValueError as exc:  # tokens this model does not have, or a job its context cannot hold
            return b"", f"cannot check it: {exc}"
        except EngineUnavailable as exc:
            return b"", f"this node's worker for the model died while checking ({exc})"
        return msgpack.packb(verdict.to_dict(), use_bin_type=True), ""


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
