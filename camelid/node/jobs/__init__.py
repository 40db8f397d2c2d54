"""Jobs over the network (whitepaper 2.4, docs/jobs-design.md), split by role.

`service` owns the pool, its relay and the RPC face; `client` the jobs this node submits (escrow, payment,
verification, dispute, refund); `game` the RASTiC dispute games it plays on either side; `compute` the jobs it
serves (accept, generate, stake, deliver, release), with `scheduler` choosing which; `verify` outsourced RASTiC
for clients without the model; `journal` keeps it all across restarts; `common` the chain look-ups, engine and
tasks both roles share. The names the rest of the node and the tests use are re-exported here.
"""

from camelid.node.jobs.client import DEFAULT_TIMELOCK, PAYMENT_FEE, SLASH_FEE, VERIFY_MODES
from camelid.node.jobs.compute import ComputeJob, payment_problem
from camelid.node.jobs.service import JobService

__all__ = [
    "DEFAULT_TIMELOCK",
    "PAYMENT_FEE",
    "SLASH_FEE",
    "VERIFY_MODES",
    "ComputeJob",
    "JobService",
    "payment_problem",
]
