"""The job journal: every job's pool record and this node's part in it, on disk as it changes, back at restart.

Whitepaper 2.4 jobs run for minutes and move coins at several points; a node restarted in the middle
must not forget a job, the escrow it funded, the output it staked on or the payment it signed. The
pool calls `save` on every change (JobPool.on_change) and the roles call it when their own record
changes; each save writes the job's three parts in one synced batch (camelid.chain.jobstore). At
start `restore` loads them back, skipping (and logging) any record that does not decode.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from camelid.chain.jobpool import JobRecord
from camelid.chain.jobstore import CLIENT, COMPUTE, POOL, JobStore
from camelid.chain.recordcodec import decode_record, encode_record
from camelid.node.jobs.client import ClientJob
from camelid.node.jobs.common import hex_id
from camelid.node.jobs.compute import ComputeJob

if TYPE_CHECKING:
    from camelid.chain.jobpool import JobPool

log = logging.getLogger(__name__)


class JobJournal:
    """Writes jobs to a JobStore and reads them back into the pool and the roles' records."""

    def __init__(
        self,
        store: JobStore,
        pool: JobPool,
        client_jobs: dict[bytes, ClientJob],
        compute_jobs: dict[bytes, ComputeJob],
    ) -> None:
        self._store = store
        self._pool = pool
        self._client_jobs = client_jobs
        self._compute_jobs = compute_jobs

    def save(self, job_id: bytes) -> None:
        """Write the job as it is now; forget it if the pool dropped it."""
        record = self._pool.get(job_id)
        if record is None:
            self._client_jobs.pop(job_id, None)
            self._compute_jobs.pop(job_id, None)
            self._store.delete(job_id)
            return
        client, work = self._client_jobs.get(job_id), self._compute_jobs.get(job_id)
        self._store.save(
            job_id,
            {
                POOL: encode_record(record),
                CLIENT: None if client is None else encode_record(client),
                COMPUTE: None if work is None else encode_record(work),
            },
        )

    def restore(self) -> list[bytes]:
        """Load every stored job the pool still wants into the pool and the roles; their Job IDs, oldest first."""
        stored = self._store.load()
        decoded: list[tuple[JobRecord, ClientJob | None, ComputeJob | None]] = []
        for job_id, parts in stored.parts.items():
            try:
                if POOL not in parts:
                    raise ValueError("no pool record")
                record = decode_record(JobRecord, parts[POOL])
                if record.job_id != job_id or not record.history:
                    raise ValueError("the record is not this job's")
                client = decode_record(ClientJob, parts[CLIENT]) if CLIENT in parts else None
                work = decode_record(ComputeJob, parts[COMPUTE]) if COMPUTE in parts else None
            except ValueError as exc:
                log.warning("job store: job %s skipped: %s", hex_id(job_id), exc)
                continue
            decoded.append((record, client, work))
        restored = []
        for record, client, work in sorted(decoded, key=lambda parts: parts[0].history[0][1]):
            if not self._pool.restore(record):
                self._store.delete(record.job_id)
                continue
            if client is not None:
                self._client_jobs[record.job_id] = client
            if work is not None:
                self._compute_jobs[record.job_id] = work
            restored.append(record.job_id)
        if restored or stored.skipped:
            log.info("job store: %d jobs restored, %d damaged entries skipped", len(restored), len(stored.skipped))
        return restored

    def close(self) -> None:
        self._store.close()
