"""Job state on disk: the job pool's records and this node's own part in each job, in their own LevelDB.

A node restarted mid-job must carry on where it stopped: the client still needs its escrow and the
payment it sent, the compute node the output it staked on, every node the job's history. Each job
is kept as up to three msgpack maps (the pool's record, the client part, the compute part) under
one key each, written together in one synced batch whenever the job changes, so a node killed at
any instant restarts with the last complete state of every job. The owners build and read the
maps; this module only keeps them. A value that does not decode is reported and skipped, never
fatal: a damaged job record must not stop the node.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgpack

from camelid.chain.storage import KeyValueStore, WriteBatch

log = logging.getLogger(__name__)

POOL = b"p"
CLIENT = b"c"
COMPUTE = b"w"
PARTS = (POOL, CLIENT, COMPUTE)
JOB_ID_SIZE = 32


@dataclass
class StoredJobs:
    """What `JobStore.load` found: the parts of each job by Job ID, and the keys it had to skip."""

    parts: dict[bytes, dict[bytes, dict[str, Any]]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


class JobStore:
    """Job ID -> {part: map}, on a KeyValueStore of its own (the node opens <datadir>/jobs)."""

    def __init__(self, store: KeyValueStore) -> None:
        self._store = store

    def save(self, job_id: bytes, parts: Mapping[bytes, Mapping[str, Any] | None]) -> None:
        """Write the given parts of one job atomically and durably; a part mapped to None is deleted."""
        batch = WriteBatch()
        for part, value in parts.items():
            key = _key(part, job_id)
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, msgpack.packb(dict(value), use_bin_type=True))
        self._store.write(batch, sync=True)

    def delete(self, job_id: bytes) -> None:
        """Forget a job entirely (the pool dropped it)."""
        self.save(job_id, dict.fromkeys(PARTS))

    def load(self) -> StoredJobs:
        found = StoredJobs()
        for part in PARTS:
            for key, value in self._store.iterate(part):
                job_id = key[len(part) :]
                try:
                    if len(job_id) != JOB_ID_SIZE:
                        raise ValueError(f"key is {len(key)} bytes, not {len(part) + JOB_ID_SIZE}")
                    decoded = msgpack.unpackb(value, raw=False, strict_map_key=False)
                    if not isinstance(decoded, dict):
                        raise ValueError(f"value is a {type(decoded).__name__}, not a map")
                except (ValueError, msgpack.UnpackException) as exc:
                    found.skipped.append(f"{key.hex()}: {exc}")
                    log.warning("job store: skipping %s: %s", key.hex(), exc)
                    continue
                found.parts.setdefault(job_id, {})[part] = decoded
        return found

    def close(self) -> None:
        self._store.close()


def _key(part: bytes, job_id: bytes) -> bytes:
    if part not in PARTS:
        raise ValueError(f"unknown job store part {part!r}")
    if len(job_id) != JOB_ID_SIZE:
        raise ValueError(f"a Job ID is {JOB_ID_SIZE} bytes, got {len(job_id)}")
    return part + job_id
