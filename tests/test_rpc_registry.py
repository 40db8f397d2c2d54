"""The RPC method table is built explicitly from the modules listed in camelid.rpc.methods.MODULES."""

from __future__ import annotations

import pkgutil
from dataclasses import replace

import pytest

from camelid.rpc import methods
from camelid.rpc.methods import MODULES, build_registry
from camelid.rpc.registry import MethodRegistry


def test_every_methods_module_is_listed_and_served():
    on_disk = {info.name for info in pkgutil.iter_modules(methods.__path__)}
    assert {module.__name__.rsplit(".", 1)[1] for module in MODULES} == on_disk
    served = {method.name for method in build_registry()}
    assert served == {method.name for module in MODULES for method in module.METHODS}


def test_each_build_is_a_fresh_table():
    first, second = build_registry(), build_registry()
    first.add(replace(first.get("help"), name="extra"))
    assert first.get("extra") is not None and second.get("extra") is None


def test_a_name_defined_by_two_modules_is_refused():
    one, other = MethodRegistry(), MethodRegistry()

    async def getblockcount(ctx):
        """A rival getblockcount."""

    other.method("Blockchain")(getblockcount)
    one.include(build_registry())
    with pytest.raises(ValueError, match="getblockcount registered twice"):
        one.include(other)
