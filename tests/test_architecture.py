"""The package map of docs/architecture.md, checked against every import in camelid/.

Each import statement counts, wherever it is: at module level, inside a function,
or under TYPE_CHECKING (a type-only import still ties the lower layer's source to
the higher one). A new top-level module or package fails here until it is given
a place in the map below and in docs/architecture.md.
"""

from __future__ import annotations

import ast
from pathlib import Path

import camelid

ROOT = Path(camelid.__file__).parent

# The layers, lowest first: each may import those below it, none above.
LAYERS = ("crypto", "core", "chain", "p2p", "node", "rpc", "app", "cli")
# Beside the layers: what each side package may import, and the lowest layer that may import it.
SIDE = {
    "compute": ({"crypto", "core"}, "p2p"),  # the chain judges game moves through core's GameReferee, not compute
    "wallet": ({"crypto", "core"}, "node"),
}
LEAVES = {"atomicfile", "progress"}  # import nothing from camelid, so any part may use them
TOOLS = {"demo", "regtest_network"}  # the demo and the network it starts: on top, beside app, below nothing


def allowed_imports() -> dict[str, set[str]]:
    allowed: dict[str, set[str]] = {leaf: set() for leaf in LEAVES}
    for i, layer in enumerate(LAYERS):
        sides = {side for side, (_, lowest) in SIDE.items() if i >= LAYERS.index(lowest)}
        allowed[layer] = set(LAYERS[:i]) | sides | LEAVES
    for side, (imports, _) in SIDE.items():
        allowed[side] = imports | LEAVES
    for tool in TOOLS:
        allowed[tool] = allowed["app"] | TOOLS - {tool}  # not app: only cli starts a node in-process
    return allowed


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def camelid_modules() -> dict[str, Path]:
    modules = {module_name(path): path for path in sorted(ROOT.rglob("*.py"))}
    del modules["camelid"]  # the root package is on no layer and imports nothing
    return modules


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    """The camelid modules `path` names in an import (a `from package import submodule` names both)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            assert not isinstance(node, ast.ImportFrom), f"{path}: relative import; write it absolute"
            continue
        found.update(name for name in names if name in modules)
    return found


def unit(module: str) -> str:
    """The part of the map a module belongs to: camelid.node.jobs.client -> node, camelid.app -> app."""
    return module.split(".")[1]


def import_graph() -> dict[str, set[str]]:
    modules = camelid_modules()
    return {name: imports_of(path, modules) - {name} for name, path in modules.items()}


def test_every_part_of_camelid_is_on_the_map():
    allowed = allowed_imports()
    unplaced = sorted({unit(module) for module in import_graph()} - allowed.keys())
    assert not unplaced, f"place {unplaced} in the package map (here and in docs/architecture.md)"


def test_no_import_runs_up_the_package_map():
    allowed = allowed_imports()
    wrong = [
        f"{module} imports {target}"
        for module, targets in import_graph().items()
        for target in sorted(targets)
        if unit(target) != unit(module) and unit(target) not in allowed.get(unit(module), set())
    ]
    assert not wrong, "imports against the package map:\n" + "\n".join(wrong)


def test_only_cli_imports_the_composition_root():
    importers = sorted(module for module, targets in import_graph().items() if "camelid.app" in targets)
    assert importers == ["camelid.cli.camelidd"]


def test_no_two_modules_import_each_other_even_indirectly():
    graph = import_graph()
    cycles = [sorted(component) for component in strongly_connected(graph) if len(component) > 1]
    assert not cycles, f"import cycles: {cycles}"


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's strongly connected components, iteratively (no recursion limit on deep import chains)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    components.append(component)
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return components


def test_the_checker_sees_a_cycle_and_an_upward_import():
    """The checks above pass because the code is clean, not because they cannot fail."""
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}, {"d"}]
    allowed = allowed_imports()
    assert "rpc" not in allowed["node"] and "node" in allowed["rpc"]
    assert "app" not in allowed["rpc"] | allowed["demo"] and "app" in allowed["cli"]
    assert allowed["compute"] == {"crypto", "core"} | LEAVES and "compute" not in allowed["chain"]
    assert not {"chain", "node", "rpc"} & allowed["wallet"]
