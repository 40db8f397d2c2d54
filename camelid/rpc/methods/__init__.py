"""RPC method modules; importing this package registers every method in camelid.rpc.registry.METHODS."""

from camelid.rpc.methods import blockchain, compute, control, jobs, mining, models, network, rawtransactions, wallet

__all__ = ["blockchain", "compute", "control", "jobs", "mining", "models", "network", "rawtransactions", "wallet"]
