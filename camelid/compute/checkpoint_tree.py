"""A checkpoint's Merkle tree, level by level: what the dispute game's descent reveals and compares.

`reference.checkpoint_root` is `chunk_root` over 256-value leaves, which pairs adjacent nodes and carries an
odd level's last node up unchanged; so node (d, j) of a checkpoint with L leaves covers leaves
[j 2^d, min((j + 1) 2^d, L)) and the root is node (D, 0), D = ceil(log2 L). A reveal opens a node's descendants
`span` levels down (docs/jobs-design.md, "The descent"): the accused reveals them from its trace, the challenger
compares them with its own and descends into the first that differs.
"""

from __future__ import annotations

import numpy as np

from camelid.compute.reference import LEAF_VALUES
from camelid.crypto.hashes import sha256d

Levels = list[list[bytes]]


def leaf_bytes(values: np.ndarray, leaf: int) -> bytes:
    """Leaf `leaf` of a checkpoint: its float32 values, little-endian, as the root hashes them."""
    data = np.ascontiguousarray(values, dtype="<f4").reshape(-1)
    return data[leaf * LEAF_VALUES : (leaf + 1) * LEAF_VALUES].tobytes()


def levels(values: np.ndarray) -> Levels:
    """Every level of the checkpoint's tree, the leaf hashes first and [root] last."""
    data = np.ascontiguousarray(values, dtype="<f4").tobytes()
    size = 4 * LEAF_VALUES
    level = [sha256d(data[i : i + size]) for i in range(0, len(data), size)]
    tree = [level]
    while len(level) > 1:
        paired = [sha256d(level[i] + level[i + 1]) for i in range(0, len(level) - 1, 2)]
        level = paired + level[-1:] if len(level) % 2 else paired
        tree.append(level)
    return tree


def children(tree: Levels, depth: int, index: int, span: int) -> list[bytes]:
    """The descendants of node (depth, index) `span` levels down (the leaves if fewer remain), as a reveal
    carries them; ValueError for a node the tree does not have."""
    if depth <= 0 or depth >= len(tree) or not 0 <= index < len(tree[depth]):
        raise ValueError(f"the checkpoint's tree has no inner node ({depth}, {index})")
    below = max(depth - span, 0)
    first = index << (depth - below)
    return tree[below][first : first + (1 << (depth - below))]


def first_difference(ours: list[bytes] | np.ndarray, theirs: list[bytes] | np.ndarray) -> int | None:
    """The first index at which two equally long sequences (hashes, or float32 values by their bits) differ."""
    if len(ours) != len(theirs):
        raise ValueError(f"{len(theirs)} revealed items where our tree has {len(ours)}")
    if isinstance(ours, np.ndarray) or isinstance(theirs, np.ndarray):
        a = np.asarray(ours, dtype="<f4").view(np.uint32)
        b = np.asarray(theirs, dtype="<f4").view(np.uint32)
        differs = np.flatnonzero(a != b)
        return int(differs[0]) if differs.size else None
    return next((k for k, (a, b) in enumerate(zip(ours, theirs, strict=True)) if a != b), None)
