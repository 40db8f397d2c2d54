"""The RPC method modules, and the one place that says which of them the node serves.

Each module fills its own METHODS table; build_registry merges the tables of
MODULES, so a new module serves nothing until it is listed here.
"""

from camelid.rpc.methods import (
    blockchain,
    compute,
    control,
    jobs,
    market,
    mining,
    models,
    network,
    rawtransactions,
    tasks,
    wallet,
)
from camelid.rpc.registry import MethodRegistry

MODULES = (blockchain, compute, control, jobs, market, mining, models, network, rawtransactions, tasks, wallet)


def build_registry() -> MethodRegistry:
    """Every RPC method of MODULES in one table; ValueError if two modules define the same name."""
    registry = MethodRegistry()
    for module in MODULES:
        registry.include(module.METHODS)
    return registry
