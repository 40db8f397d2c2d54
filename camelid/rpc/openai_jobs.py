"""Run one API request as a network job: submit it with the wallet, wait for the verdict, and judge the outcome.

Only a verified output is ever returned. A job that ends any other way (RASTiC rejected it, it was
cancelled, no node delivered before its deadline) is a 502 naming the job id and what happened, and
one still running when the wait ends is a 504 with its id, so the caller can follow it with getjob.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

from camelid.chain.errors import TxRejected
from camelid.node.job_outcome import failure, stopped_waiting, wake_by
from camelid.node.jobs import DEFAULT_TIMELOCK
from camelid.rpc.openai_requests import OpenAIError
from camelid.wallet.errors import WalletError, WalletErrorCode

if TYPE_CHECKING:
    from camelid.node.jobs import JobService

WAIT_TIMEOUT = DEFAULT_TIMELOCK + 60  # the delivery deadline, plus time to verify
_WALLET_STATUS = {
    WalletErrorCode.INSUFFICIENT_FUNDS: (402, "insufficient_funds"),
    WalletErrorCode.UNLOCK_NEEDED: (403, "wallet_locked"),
    WalletErrorCode.WALLET_NOT_FOUND: (403, "wallet_not_found"),
}


def job_id_hex(job_id: bytes) -> str:
    """As the job RPCs show it (byte-reversed, like a txid)."""
    return job_id[::-1].hex()


async def submit(
    jobs: JobService, prompt: str, max_tokens: int, model_id: bytes, seed: int, temperature_milli: int, reward: int
) -> bytes:
    """Fund and publish the job; wallet and validation failures as OpenAIErrors the caller can act on."""
    try:
        return await jobs.submit(prompt, max_tokens, model_id, seed, temperature_milli, reward)
    except WalletError as exc:
        status, code = _WALLET_STATUS.get(exc.code, (400, "wallet_error"))
        raise OpenAIError(
            status, f"the node's wallet cannot pay for the job: {exc.message}", "wallet_error", None, code
        ) from None
    except TxRejected as exc:
        raise OpenAIError(
            402, f"the job's escrow payment was rejected: {exc}", "wallet_error", None, "escrow_rejected"
        ) from None
    except ValueError as exc:  # JobParams' limits (prompt size...) or a node without a wallet
        raise OpenAIError(400, str(exc)) from None


async def wait_for_verdict(jobs: JobService, job_id: bytes, timeout: float = WAIT_TIMEOUT) -> dict[str, Any]:
    """The job's getjob record once it has a verdict or has ended; 504 if neither happens within `timeout`.

    Wakes on the job's JobChanged events, not on a timer.
    """
    deadline = time.monotonic() + timeout
    async with jobs.watch(job_id) as changed:
        while True:
            changed.clear()
            info = jobs.job_info(job_id)
            if info is None:  # pruned from the pool: it ended long ago without us seeing it
                raise OpenAIError(502, f"job {job_id_hex(job_id)} left the job pool before it ended", "job_error")
            if stopped_waiting(info):
                return info
            left = deadline - time.monotonic()
            if left <= 0:
                raise OpenAIError(
                    504,
                    f"job {job_id_hex(job_id)} is still {info['state']} after {timeout:.0f} s; follow it with getjob",
                    "timeout",
                    None,
                    "job_timeout",
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), wake_by(info, left, time.time()))


def verified_text(info: dict[str, Any]) -> str:
    """The output of a verified job; 502 naming the verdict (or the state it ended in) for any other."""
    why = failure(info)
    if info.get("untaken") is not None:  # the client can act on this one: offer the going reward
        raise OpenAIError(402, f"job {info['jobid']} was not taken: {why}", "job_error", None, "job_not_taken")
    if why is not None:
        raise OpenAIError(502, f"job {info['jobid']} was not verified: {why}", "job_error", None, "job_not_verified")
    return str(info["text"])


def camelid_extra(info: dict[str, Any]) -> dict[str, Any]:
    """The `camelid` member every answer carries: which job this was and how it went."""
    return {
        "job_id": info["jobid"],
        "verdict": info.get("verdict"),
        "state": info["state"],
        "history": info["history"],
        "paid_node": info.get("paid_node"),
    }
