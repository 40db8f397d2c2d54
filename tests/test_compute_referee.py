"""The referee step of the dispute game (tiny llama and gemma3): honest steps hold, every lie and forgery loses."""

from __future__ import annotations

import dataclasses
import struct
from pathlib import Path

import numpy as np
import pytest
from tiny_model import write_tiny_gemma3, write_tiny_model

from camelid.compute.model_id import MODEL_ID_TAG, Manifest, manifest_of_file, metadata_root
from camelid.compute.model_meta import HeaderRecord
from camelid.compute.model_proof import verify_header
from camelid.compute.referee import StepClaim, StepProof, judge_step, prove_run, prove_step, verify_run
from camelid.compute.reference import ReferenceModel, checkpoint_root
from camelid.crypto.hashes import sha256d

TOKENS = [1, 40, 77, 3, 200, 259, 12, 12, 90, 145, 66]  # longer than gemma3's 5-token window
ROWS = [5, 100]
WRITERS = {"llama": write_tiny_model, "gemma3": write_tiny_gemma3}


@dataclasses.dataclass
class Game:
    reference: ReferenceModel
    manifest: Manifest
    trace: dict[str, np.ndarray]
    names: list[str]

    def roots(self, trace: dict[str, np.ndarray] | None = None) -> list[bytes]:
        return [checkpoint_root((trace or self.trace)[name]) for name in self.names]

    def step(self, name: str, element: int, trace: dict[str, np.ndarray] | None = None) -> tuple[StepClaim, StepProof]:
        proof = prove_step(self.reference, TOKENS, ROWS, trace or self.trace, name, element, self.manifest)
        return StepClaim(self.names.index(name), element), proof

    def judge(self, claim: StepClaim, proof: StepProof, roots: list[bytes] | None = None) -> bool:
        return judge_step(self.manifest.id, roots or self.roots(), TOKENS, ROWS, claim, proof)


@pytest.fixture(scope="module", params=sorted(WRITERS))
def game(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Game:
    path = WRITERS[request.param](tmp_path_factory.mktemp("tiny") / f"{request.param}.gguf")
    reference = ReferenceModel(path)
    return Game(reference, manifest_of_file(path), reference.trace(TOKENS, ROWS), reference.checkpoint_names())


def _kinds(game: Game) -> list[str]:
    """One checkpoint of every kind: the first layer's and the last layer's (gemma3's last is a global one)."""
    last = game.reference.hparams.n_layer - 1
    return [n for n in game.names if not n.startswith("blk.") or n.startswith(("blk.0.", f"blk.{last}."))]


def test_an_opening_proves_any_run_of_a_checkpoint_and_nothing_else() -> None:
    values = np.random.default_rng(1).standard_normal(3 * 256 + 77).astype(np.float32)
    root = checkpoint_root(values)
    for start, length in [(0, 1), (255, 2), (300, 500), (values.size - 1, 1), (0, values.size)]:
        opened = verify_run(root, values.size, start, length, prove_run(values, start, length))
        assert opened.tobytes() == values[start : start + length].tobytes()
    opening = prove_run(values, 300, 2)
    for bad in (opening[:-1], opening + b"\0", bytes([opening[0] ^ 1]) + opening[1:]):
        with pytest.raises(ValueError):
            verify_run(root, values.size, 300, 2, bad)
    with pytest.raises(ValueError, match="root"):
        verify_run(root, values.size, 0, 2, opening)  # leaf 1 claimed as leaf 0
    with pytest.raises(ValueError, match="not within"):
        verify_run(root, values.size, values.size, 1, opening)


def test_the_honest_step_holds_for_every_checkpoint_kind(game: Game) -> None:
    rng = np.random.default_rng(2)
    for name in _kinds(game):
        size = game.trace[name].size
        for element in {0, size - 1, int(rng.integers(size))}:
            claim, proof = game.step(name, element)
            assert StepProof.decode(proof.encode()) == proof and StepClaim.decode(claim.encode()) == claim
            assert game.judge(claim, proof), (name, element)


@pytest.mark.parametrize("ulps", [1, -1])
def test_a_committed_value_one_ulp_off_loses(game: Game, ulps: int) -> None:
    for name in _kinds(game):
        element = game.trace[name].size // 2
        lied = {**game.trace, name: game.trace[name].copy()}
        flat = lied[name].reshape(-1)
        if not np.isfinite(flat[element]):
            continue  # a masked score: -inf has no neighbour the pass could make
        flat[element] = np.nextafter(flat[element], np.float32(np.inf * ulps))
        claim, proof = game.step(name, element, lied)
        assert not game.judge(claim, proof, game.roots(lied)), name


def test_the_challenger_wins_at_the_first_wrong_checkpoint_of_a_cheaters_trace(game: Game) -> None:
    """The soundness argument on a real trace: the cheater changes one element of a middle checkpoint; the
    challenger (the same reference) finds the first root that differs from its own and an element that differs;
    the recompute from the cheater's own committed inputs exposes it. Pointing at an element that is right loses."""
    honest = game.roots()
    tampered_name = f"blk.{game.reference.hparams.n_layer // 2}.down"
    cheat = {**game.trace, tampered_name: game.trace[tampered_name].copy()}
    cheat[tampered_name].reshape(-1)[7] += np.float32(0.25)
    committed = game.roots(cheat)
    first = next(i for i, (a, b) in enumerate(zip(honest, committed, strict=True)) if a != b)
    assert game.names[first] == tampered_name
    element = int(np.flatnonzero(cheat[tampered_name].reshape(-1) != game.trace[tampered_name].reshape(-1))[0])
    claim, proof = game.step(tampered_name, element, cheat)
    assert not game.judge(claim, proof, committed)
    # a false challenge at a right element, before or in the tampered checkpoint, loses
    for name, e in [(game.names[first - 1], 3), (tampered_name, 8)]:
        claim, proof = game.step(name, e, cheat)
        assert game.judge(claim, proof, committed)


def test_every_tampering_of_a_proof_is_refused(game: Game) -> None:
    """Flipping any bit-0 of the encoded move 3 (value, paths, input runs, weight row, header) never wins."""
    roots = game.roots()
    for claim, proof in [game.step("blk.0.q", 5), game.step("blk.0.attn_res", 9)]:  # a weight row; two input runs
        data = proof.encode()
        assert [i for i in range(len(data)) if _wins(game, roots, claim, data, i)] == []


def _wins(game: Game, roots: list[bytes], claim: StepClaim, data: bytes, flip: int) -> bool:
    tampered = bytearray(data)
    tampered[flip] ^= 1
    try:
        return judge_step(game.manifest.id, roots, TOKENS, ROWS, claim, StepProof.decode(bytes(tampered)))
    except ValueError:
        return False


def test_a_proof_for_another_step_or_another_model_is_refused(game: Game, tmp_path: Path) -> None:
    claim, proof = game.step("blk.0.q", 5)
    with pytest.raises(ValueError):
        game.judge(StepClaim(claim.checkpoint, game.trace["blk.0.q"].size - 1), proof)  # openings are of element 5
    with pytest.raises(ValueError):
        game.judge(StepClaim(claim.checkpoint + 1, 5), proof)  # k reads another weight
    other = manifest_of_file(WRITERS[game.reference.hparams.arch](tmp_path / "other.gguf", seed=1))
    with pytest.raises(ValueError, match="model"):
        judge_step(other.id, game.roots(), TOKENS, ROWS, claim, proof)
    # dropping or adding an input run, or the weight row, is malformed
    for bad in (
        dataclasses.replace(proof, weight=b""),
        dataclasses.replace(proof, inputs=()),
        dataclasses.replace(proof, inputs=proof.inputs * 2),
    ):
        with pytest.raises(ValueError):
            game.judge(claim, bad)
    res_claim, res_proof = game.step("blk.0.attn_res", 9)
    with pytest.raises(ValueError, match="more than"):
        game.judge(res_claim, dataclasses.replace(res_proof, weight=proof.weight))
    with pytest.raises(ValueError, match="element"):
        game.judge(StepClaim(claim.checkpoint, game.trace["blk.0.q"].size), proof)
    with pytest.raises(ValueError, match="roots"):
        judge_step(game.manifest.id, game.roots()[:-1], TOKENS, ROWS, claim, proof)


def _header_proof(header: HeaderRecord) -> tuple[bytes, bytes]:
    """(model id, header proof) of a made-up model whose only record is `header`: anyone can make one."""
    record, sizes, root = header.encode(), struct.pack("<QI", 1, 1), bytes(range(32))
    model_id = sha256d(MODEL_ID_TAG + sizes + root + metadata_root([record]))
    return model_id, sizes + root + struct.pack("<H", len(record)) + record + struct.pack("<IIB", 0, 1, 0)


@pytest.mark.parametrize(
    ("changes", "error"),
    [({"block_count": 1 << 31}, "block count"), ({"attention.head_count_kv": 0}, "unusable")],
)
def test_a_model_with_absurd_hyperparameters_is_refused_cheaply(game: Game, changes: dict, error: str) -> None:
    """Two billion layers would have the referee build per-layer tables; zero key heads would divide by zero."""
    real = verify_header(game.manifest.id, game.step("embd", 0)[1].header)
    params = {key: (kind, raw) for key, kind, raw in real.params}
    params.update({f"{real.architecture}.{key}": (4, struct.pack("<I", v)) for key, v in changes.items()})
    header = dataclasses.replace(real, params=tuple((key, *params[key]) for key in sorted(params)))
    model_id, proof = _header_proof(header)
    claim, step = game.step("embd", 0)
    with pytest.raises(ValueError, match=error):
        judge_step(model_id, game.roots(), TOKENS, ROWS, claim, dataclasses.replace(step, header=proof))
