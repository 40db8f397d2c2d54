"""The status page's chart series: jobs per minute by outcome, and arrival-to-delivery latency, from a real pool."""

from __future__ import annotations

from prompt_support import hidden

from camelid.chain.jobpool import JobPool, JobState, job_offer_digest
from camelid.core.job import JobParams
from camelid.crypto.keys import PrivateKey
from camelid.rpc.status_charts import OUTCOMES, job_latencies, jobs_per_minute, outcome

T0 = 1_800_000_000 - 1_800_000_000 % 60  # a minute's start
CLIENT = PrivateKey.from_bytes(b"\x11" * 32)
CLIENT_NODE = PrivateKey.from_bytes(b"\x44" * 32).public_key.to_bytes()


def test_jobs_are_counted_per_minute_by_outcome_and_delivered_ones_timed():
    now = [float(T0)]
    pool = JobPool(5, clock=lambda: now[0])

    def add(prompt: str):
        params = JobParams(b"\x01" * 32, *hidden(prompt), 8, 0, 0, T0, 600, CLIENT.public_key.to_bytes(), "", 1)
        signature = CLIENT.sign(job_offer_digest(params.job_id(), b"\x66" * 32, CLIENT_NODE))
        return pool.add_job(params.to_bytes(), b"\x66" * 32, CLIENT_NODE, signature)

    verified, delivered, disputed = add("a"), add("b"), add("c")
    now[0] += 61
    still_open, cancelled = add("d"), add("e")
    now[0] += 2.5
    for record, states in (
        (verified, [JobState.COMPLETED, JobState.PAID, JobState.DELIVERED, JobState.VERIFIED]),
        (delivered, [JobState.COMPLETED, JobState.PAID, JobState.DELIVERED, JobState.SETTLED]),
        (disputed, [JobState.COMPLETED, JobState.PAID, JobState.DELIVERED, JobState.DISPUTED]),
        (cancelled, [JobState.CANCELLED]),
    ):
        for state in states:
            assert pool.advance(record, state)
    assert [outcome(r) for r in (verified, delivered, disputed, still_open, cancelled)] == [
        "verified", "delivered", "disputed", "open", "ended"
    ]
    buckets = jobs_per_minute(pool.jobs(), now[0], minutes=3)
    assert [b["minute"] for b in buckets] == [T0 - 60, T0, T0 + 60]
    assert [sum(b[o] for o in OUTCOMES) for b in buckets] == [0, 3, 2]
    assert (buckets[1]["verified"], buckets[1]["delivered"], buckets[1]["disputed"]) == (1, 1, 1)
    assert (buckets[2]["open"], buckets[2]["ended"]) == (1, 1)
    latencies = job_latencies(pool.jobs(), count=2)
    assert [entry["seconds"] for entry in latencies] == [63.5, 63.5]  # the last two delivered, oldest first
    assert latencies[-1]["jobid"] == disputed.job_id[::-1].hex()
