"""The job intake (issue 15): no job into the pool before its escrow, a bounded wait for it, a rate per peer."""

from __future__ import annotations

import asyncio

from prompt_support import hidden

from camelid.chain.jobpool import MAX_JOBS, JobPool, job_offer_digest
from camelid.core.fill import Fill
from camelid.core.job import MAX_PROMPT_BYTES, JobParams
from camelid.core.transaction import Transaction, TxIn, TxOut
from camelid.crypto.keys import PrivateKey
from camelid.node.jobs.contract import JobTerms
from camelid.node.jobs.intake import (
    ESCROW_WAIT,
    JOB_BURST,
    MAX_WAITING_BYTES,
    MAX_WAITING_JOBS,
    PEERS_TRACKED,
    JobIntake,
)
from camelid.p2p.messages import JobMessage
from camelid.p2p.messages.jobs import MAX_JOB_PARAMS

WINDOW = 5
T0 = 1_800_000_000
CLIENT_NODE = PrivateKey.from_bytes(b"\x44" * 32).public_key.to_bytes()


class Clock:
    def __init__(self) -> None:
        self.now = float(T0)

    def __call__(self) -> float:
        return self.now


HONEST = PrivateKey.from_bytes(b"\x11" * 32)


def job(prompt: str, escrow_txid: bytes, client: PrivateKey | None = None) -> tuple[JobMessage, bytes]:
    """A signed job message naming `escrow_txid`, and the ESCROW script its escrow must pay."""
    client = PrivateKey.generate() if client is None else client
    params = JobParams(b"\x01" * 32, *hidden(prompt), 8, 0, 0, T0, 600, client.public_key.to_bytes(), "", 1)
    signature = client.sign(job_offer_digest(params.job_id(), escrow_txid, CLIENT_NODE))
    return JobMessage(params.to_bytes(), escrow_txid, CLIENT_NODE, signature), JobTerms(params, WINDOW).escrow_script


def intake(clock: Clock, catching_up: list[bool] | None = None) -> tuple[JobIntake, JobPool, list[bytes]]:
    """An intake whose escrows are nowhere yet; `catching_up[0]` says whether blocks are still to download."""
    pool = JobPool(WINDOW, clock=clock)
    admitted: list[bytes] = []

    async def nowhere(txid: bytes, script: bytes) -> bool:
        return False

    syncing = catching_up or [False]
    record = lambda r, m, p: admitted.append(r.job_id)  # noqa: E731
    return JobIntake(pool, WINDOW, nowhere, record, clock, lambda: syncing[0]), pool, admitted


def escrow_paying(*scripts: bytes) -> Transaction:
    return Transaction(inputs=(TxIn(b"\x07" * 32, 0),), outputs=tuple(TxOut(1000, s) for s in scripts))


def test_a_job_waits_for_its_escrow_and_a_forged_copy_of_the_txid_blocks_nobody():
    clock = Clock()
    jobs, pool, admitted = intake(clock)
    escrow = escrow_paying(job("honest", b"\x00" * 32, HONEST)[1])
    honest, _ = job("honest", escrow.hash, HONEST)
    forged, _ = job("forged", escrow.hash)  # names the honest escrow, which pays another script
    asyncio.run(jobs.on_job(1, forged))
    asyncio.run(jobs.on_job(2, honest))
    assert len(pool) == 0 and jobs.waiting() == 2
    held = len(honest.params) + len(forged.params)
    assert jobs.fill() == {
        "jobs_awaiting_escrow": Fill(2, MAX_WAITING_JOBS, held, MAX_WAITING_BYTES),
        "job_rate_peers": Fill(2, PEERS_TRACKED),
    }
    jobs.on_transaction(escrow)
    assert admitted == [JobParams.from_bytes(honest.params).job_id()] and jobs.waiting() == 1
    assert jobs.fill()["jobs_awaiting_escrow"] == Fill(1, MAX_WAITING_JOBS, len(forged.params), MAX_WAITING_BYTES)
    assert pool.fill() == Fill(1, MAX_JOBS)


def test_the_wait_for_escrows_and_a_peers_job_rate_are_bounded():
    clock = Clock()
    jobs, _, _ = intake(clock)
    for i in range(int(JOB_BURST) + 10):
        asyncio.run(jobs.on_job(1, job(f"spam {i}", bytes([i % 256, i // 256]) * 16)[0]))
    assert jobs.waiting() == JOB_BURST and jobs.dropped == 10
    for peer in range(2, 2 + MAX_WAITING_JOBS // int(JOB_BURST) + 1):
        for i in range(int(JOB_BURST)):
            asyncio.run(jobs.on_job(peer, job(f"spam {peer} {i}", bytes([peer, i]) * 16)[0]))
    assert jobs.waiting() == MAX_WAITING_JOBS
    clock.now += 31
    asyncio.run(jobs.on_job(99, job("late", b"\x09" * 32)[0]))
    assert jobs.waiting() == 1  # the rest waited their 30 s


def test_the_wait_for_escrows_holds_no_prompts_so_its_job_count_bounds_its_bytes():
    """A job carries its prompt's commitment, not the prompt: 1,000 waiting jobs hold at most ~415 KB."""
    assert MAX_WAITING_JOBS * MAX_JOB_PARAMS < MAX_WAITING_BYTES
    message = job("x" * MAX_PROMPT_BYTES, b"\x01" * 32)[0]
    assert len(message.params) <= MAX_JOB_PARAMS


def test_a_job_whose_escrow_is_in_blocks_still_to_download_waits_for_them():
    clock, syncing = Clock(), [True]
    jobs, _, admitted = intake(clock, syncing)
    escrow = escrow_paying(job("from a peer we just met", b"\x00" * 32, HONEST)[1])
    message, _ = job("from a peer we just met", escrow.hash, HONEST)
    asyncio.run(jobs.on_job(1, message))  # the jobs in play reach a node back online before their blocks do
    clock.now += 10 * ESCROW_WAIT
    asyncio.run(jobs.on_job(1, job("another", b"\x08" * 32)[0]))  # a look at the waiting jobs: none expires yet
    assert jobs.waiting() == 2
    jobs.on_transaction(escrow)  # its block connects
    assert admitted == [JobParams.from_bytes(message.params).job_id()]

    syncing[0] = False  # caught up: the other's escrow is not in any block we will get
    clock.now += ESCROW_WAIT + 1
    asyncio.run(jobs.on_job(2, job("a third", b"\x09" * 32)[0]))
    assert jobs.waiting() == 1
