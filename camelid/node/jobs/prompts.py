"""Private prompts on the compute side (docs/jobs-design.md, "Private prompts"): the prompt a client sends us.

A job carries only a commitment to its prompt. A node that broadcast its jobaccept `expect`s the prompt, and
the client, if it chose that accept, sends it in a `jobprompt` (sealed to our node key, signed by the job's
Pc). The node computes only with a prompt that opens and matches the job's commitment and declared length;
it stakes nothing before. No prompt within PROMPT_WAIT means the client chose another node (or none yet): the
job is left, and may be claimed again once the claims on it run out (the client chooses another accepter
once its chosen one's patience ran out without a testament). A prompt that does not match is the client's
fault, named in the log and in getjob (`prompt_problem`); a jobprompt that is not the client's (unsigned by
Pc, for a job we did not accept, or malformed) is logged and dropped, and changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from camelid.core.private_prompt import (
    LengthUnit,
    PromptMismatch,
    RevealedPrompt,
    open_prompt,
    reveal_problem,
    sealed_prompt_digest,
)
from camelid.crypto.keys import verify_signature
from camelid.node.jobs.common import JobContext, decode_directed, hex_id
from camelid.node.jobs.scheduler import PROMPT_WAIT
from camelid.p2p.messages import JobPrompt

if TYPE_CHECKING:
    from camelid.p2p.messages import Directed
    from camelid.p2p.peer import Peer

log = logging.getLogger(__name__)



class PromptInbox:
    """The prompts we await for the jobs we accepted, and why a client's prompt was refused (by Job ID)."""

    def __init__(self, ctx: JobContext) -> None:
        self._ctx = ctx
        self._waiting: dict[bytes, asyncio.Future[RevealedPrompt]] = {}
        self.problems: dict[bytes, str] = {}  # the client's fault: getjob's prompt_problem

    def expect(self, job_id: bytes) -> asyncio.Future[RevealedPrompt]:
        """Await a prompt for `job_id` from now on (called before our jobaccept goes out)."""
        future = self._waiting[job_id] = asyncio.get_running_loop().create_future()
        return future

    async def receive(self, job_id: bytes, future: asyncio.Future[RevealedPrompt]) -> RevealedPrompt | None:
        """The job's prompt once the client sends one that matches its commitment (a TOKENS length is checked
        by the caller, which tokenizes); None after PROMPT_WAIT or for a mismatch (then `problems` says why)."""
        try:
            return await asyncio.wait_for(future, PROMPT_WAIT)
        except TimeoutError:
            log.info("job %s: no prompt from its client within %.1f s; another node was chosen", hex_id(job_id),
                     PROMPT_WAIT)
            return None
        except PromptMismatch as exc:
            self.refuse(job_id, str(exc))
            return None
        finally:
            self._waiting.pop(job_id, None)

    def forget(self, live: set[bytes]) -> None:
        """Keep the refusals to the jobs still in the pool (`live`): as bounded as the pool."""
        self.problems = {job_id: why for job_id, why in self.problems.items() if job_id in live}

    def refuse(self, job_id: bytes, problem: str) -> None:
        """The client's prompt is not its job's: we compute and stake nothing, and say so."""
        self.problems[job_id] = problem
        log.warning("job %s: not computed, its client's prompt is wrong (the client's fault): %s", hex_id(job_id),
                    problem)

    async def on_prompt(self, peer: Peer, directed: Directed) -> None:
        """A directed jobprompt: opened and checked if it is the client's, for a job we await a prompt for."""
        message = decode_directed(JobPrompt, directed)
        if message is None:
            return
        job_id, sender = message.job_id, directed.sender.hex()
        future = self._waiting.get(job_id)
        record = self._ctx.pool.get(job_id)
        if future is None or future.done() or record is None:
            log.info("job %s: jobprompt from %s for a job we await no prompt for; dropped", hex_id(job_id), sender)
            return
        digest = sealed_prompt_digest(job_id, self._ctx.node_id, message.sealed)
        if not verify_signature(record.params.client_pubkey, message.signature, digest):
            log.warning("job %s: jobprompt from %s is not signed by the job's client key; dropped", hex_id(job_id),
                        sender)
            return
        try:
            revealed = open_prompt(self._ctx.node_key, job_id, message.sealed)
            params = record.params
            problem = reveal_problem(revealed, params.prompt_commitment, params.prompt_length,
                                     LengthUnit(params.prompt_unit))
            if problem is not None:
                raise PromptMismatch(problem)
        except PromptMismatch as exc:
            future.set_exception(exc)
            return
        future.set_result(revealed)
