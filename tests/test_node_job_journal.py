"""The job journal: every pool change reaches LevelDB, and a restarted node gets the same jobs back."""

from __future__ import annotations

import msgpack
from test_chain_jobpool import (
    ESCROW_TXID,
    NODE,
    T0,
    WINDOW,
    Clock,
    accept,
    delivery,
    offer,
    params,
    payment,
    signed_testament,
)

from camelid.chain.jobpool import RETAIN_SECONDS, JobPool, JobState
from camelid.chain.jobstore import POOL, JobStore
from camelid.chain.storage import LevelDBStore
from camelid.core.transaction import OutPoint, TxOut
from camelid.node.jobs.client import ClientJob
from camelid.node.jobs.compute import ComputeJob
from camelid.node.jobs.journal import JobJournal


def journal_at(path, clock: Clock) -> tuple[JobJournal, JobPool, dict, dict]:
    pool, client_jobs, compute_jobs = JobPool(WINDOW, clock=clock), {}, {}
    journal = JobJournal(JobStore(LevelDBStore(path)), pool, client_jobs, compute_jobs)
    return journal, pool, client_jobs, compute_jobs


def test_a_job_and_both_roles_records_come_back_after_a_restart(tmp_path):
    clock = Clock()
    journal, pool, client_jobs, compute_jobs = journal_at(tmp_path / "jobs", clock)
    pool.on_change = journal.save
    job = params()
    job_id = job.job_id()
    paid = payment(job)
    client_jobs[job_id] = ClientJob(
        OutPoint(ESCROW_TXID, 0), b"\x51", 10**8, job.client_pubkey, payment=paid, prompt="llamas",
        prompt_salt=b"\x5a" * 32,
    )
    pool.add_job(*offer(job))
    compute_jobs[job_id] = ComputeJob(
        [5, 6, 7],
        [1, 2],
        "llamas",
        b"\x02" * 33,
        b"\x66" * 32,
        OutPoint(ESCROW_TXID, 0),
        b"\x51",
        10**8,
        OutPoint(b"\x77" * 32, 1),
        TxOut(10**8, b"\x52"),
        payment=paid,
        released=[OutPoint(b"\x77" * 32, 1)],
    )
    clock.now += 1
    pool.add_accept(*accept(job_id))
    pool.add_testament(job_id, signed_testament(job_id))
    pool.add_delivery(*delivery(job_id))
    pool.record_payment(paid)
    journal.close()

    journal, restarted, client_again, compute_again = journal_at(tmp_path / "jobs", clock)
    assert journal.restore() == [job_id]
    record = restarted.get(job_id)
    assert record == pool.get(job_id)
    assert record.signature == offer(job)[3] and set(record.accept_signatures) == {NODE.public_key.to_bytes()}
    assert [state for state, _ in record.history] == ["created", "accepted", "completed", "delivered", "paid"]
    assert client_again == client_jobs and compute_again == compute_jobs
    assert restarted.open_jobs() == [record]


def test_jobs_past_their_retention_and_damaged_records_are_dropped(tmp_path, caplog):
    clock = Clock()
    journal, pool, _, _ = journal_at(tmp_path / "jobs", clock)
    pool.on_change = journal.save
    old, new = params("old"), params("new", T0 + 100)
    pool.add_job(*offer(old))
    clock.now += 100
    pool.add_job(*offer(new))
    journal.close()

    store = LevelDBStore(tmp_path / "jobs")
    store.put(POOL + b"\x01" * 32, msgpack.packb({"params": b"\x00"}))  # a record that does not decode
    store.close()
    clock.now = pool.refund_time(old) + RETAIN_SECONDS + 50  # the old job is past its retention, the new is not
    journal, restarted, _, _ = journal_at(tmp_path / "jobs", clock)
    assert journal.restore() == [new.job_id()]
    assert "skipped" in caplog.text
    assert journal.restore() == [new.job_id()]  # the expired job was deleted from the store too
    assert restarted.get(old.job_id()) is None


def test_a_dropped_job_is_deleted_from_the_store(tmp_path):
    clock = Clock()
    journal, pool, client_jobs, _ = journal_at(tmp_path / "jobs", clock)
    pool.on_change = journal.save
    job = params()
    client_jobs[job.job_id()] = ClientJob(OutPoint(ESCROW_TXID, 0), b"\x51", 1, job.client_pubkey)
    record = pool.add_job(*offer(job))
    pool.advance(record, JobState.CANCELLED)
    clock.now = pool.refund_time(job) + RETAIN_SECONDS + 1
    pool.prune()
    assert client_jobs == {}
    journal.close()
    journal, _, _, _ = journal_at(tmp_path / "jobs", clock)
    assert journal.restore() == []
