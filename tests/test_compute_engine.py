"""The llama.cpp engine on the tiny test model: tokenizer, generation, logits, async wrapper."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tiny_model import EOS, VOCAB, write_tiny_model

from camelid.compute.engine import Engine, Generations
from camelid.compute.model_id import model_id_of_file
from camelid.compute.sampling import choose_token, gumbel_noise, token_gap
from camelid.compute.vocab import ModelVocab


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny.gguf")


@pytest.fixture(scope="module")
def engine(model_path: Path):
    with Engine(model_path, n_threads=1, n_ctx=512) as eng:
        yield eng


def test_engine_reports_model_facts(engine: Engine, model_path: Path) -> None:
    assert engine.n_vocab == len(VOCAB)
    assert engine.eos == EOS
    assert engine.is_end(EOS)
    assert not engine.is_end(EOS + 1)
    assert engine.model_id == model_id_of_file(model_path)


def test_tiny_model_id_depends_on_seed(tmp_path: Path) -> None:
    a = write_tiny_model(tmp_path / "a.gguf", seed=1)
    b = write_tiny_model(tmp_path / "b.gguf", seed=1)
    c = write_tiny_model(tmp_path / "c.gguf", seed=2)
    assert model_id_of_file(a) == model_id_of_file(b) != model_id_of_file(c)


def test_tokenize_round_trips_text(engine: Engine) -> None:
    text = "llamas, alpacas & vicuñas"
    tokens = engine.tokenize(text)
    assert tokens[0] == 1  # BOS
    assert engine.detokenize(tokens) == text
    assert engine.tokenize(text, add_bos=False) == tokens[1:]


def test_greedy_generation_is_deterministic_and_bounded(engine: Engine) -> None:
    prompt = engine.tokenize("the herd moves north")
    first = engine.generate(prompt, 20)
    assert first == engine.generate(prompt, 20)
    assert 1 <= len(first) <= 20
    assert engine.generate(prompt, 20, seed=99) == first  # the seed only matters when T > 0


def test_greedy_generation_picks_the_argmax(engine: Engine) -> None:
    prompt = engine.tokenize("pick the best")
    output = engine.generate(prompt, 1)
    logits = engine.logits_at(prompt, [len(prompt) - 1])[0]
    assert output == [int(np.argmax(logits))]


def test_generation_stops_at_end_token_or_max_tokens(engine: Engine) -> None:
    outputs = [engine.generate(engine.tokenize(f"prompt {i}"), 24) for i in range(30)]
    ended = [o for o in outputs if len(o) < 24]
    assert ended, "the tiny model should end some generations by itself"
    for output in outputs:
        assert all(not engine.is_end(t) for t in output[:-1])
        assert engine.is_end(output[-1]) or len(output) == 24


def test_sampling_is_keyed_by_seed(engine: Engine) -> None:
    prompt = engine.tokenize("sample me")
    runs = {seed: engine.generate(prompt, 16, seed=seed, temperature=1.0) for seed in range(6)}
    assert runs[3] == engine.generate(prompt, 16, seed=3, temperature=1.0)
    assert len({tuple(r) for r in runs.values()}) > 1


def test_gumbel_noise_depends_only_on_seed_and_index() -> None:
    base = gumbel_noise(7, 3, 1000)
    assert np.array_equal(base, gumbel_noise(7, 3, 1000))
    assert not np.array_equal(base, gumbel_noise(7, 4, 1000))
    assert not np.array_equal(base, gumbel_noise(8, 3, 1000))
    assert np.isfinite(base).all()


def test_gumbel_max_samples_the_softmax() -> None:
    temperature = 0.8
    logits = np.log(np.array([0.1, 0.2, 0.3, 0.4])) * temperature  # softmax(logits / T) = those weights
    draws = [choose_token(logits, 11, i, temperature) for i in range(6000)]
    frequencies = np.bincount(draws, minlength=4) / len(draws)
    assert np.allclose(frequencies, [0.1, 0.2, 0.3, 0.4], atol=0.02)


def test_token_gap_is_zero_for_the_choice_and_on_logit_scale() -> None:
    logits = np.array([1.0, 3.0, 2.5])
    assert token_gap(logits, 1, 0, 0, 0.0) == 0.0
    assert token_gap(logits, 2, 0, 0, 0.0) == pytest.approx(0.5)
    chosen = choose_token(logits, 5, 9, 2.0)
    assert token_gap(logits, chosen, 5, 9, 2.0) == 0.0


def test_logits_at_follows_requested_positions(engine: Engine) -> None:
    tokens = engine.tokenize("positions matter here")
    every = engine.logits_at(tokens, list(range(len(tokens))))
    some = engine.logits_at(tokens, [0, 5, len(tokens) - 1])
    assert some.shape == (3, engine.n_vocab)
    assert np.allclose(some, every[[0, 5, len(tokens) - 1]], atol=1e-3)



def test_map_logits_reduces_the_rows_logits_at_returns(engine: Engine) -> None:
    tokens = engine.tokenize("each row is reduced where llama.cpp wrote it")
    positions = [0, 3, len(tokens) - 1]
    rows = engine.logits_at(tokens, positions)
    seen: list[int] = []

    def reduce(index: int, row: np.ndarray) -> tuple[float, int]:
        seen.append(index)
        return float(row.max()), int(np.argmax(row))

    assert engine.map_logits(tokens, positions, reduce) == [(float(r.max()), int(np.argmax(r))) for r in rows]
    assert seen == [0, 1, 2]
    assert engine.map_logits(tokens, [], reduce) == []


def gaps_of(engine: Engine, tokens: list[int], positions: list[int], reuse: bool) -> list[float]:
    return engine.map_logits(tokens, positions, lambda _i, row: float(row.max() - row[7]), reuse=reuse)


def test_a_check_without_reuse_is_the_same_whatever_ran_before(engine: Engine) -> None:
    tokens = engine.tokenize("a fraud proof is judged alike on every node")
    positions = list(range(3, len(tokens)))
    alone = gaps_of(engine, tokens, positions, reuse=False)
    for before in (tokens[:4], tokens, engine.tokenize("something else entirely")):
        engine.prefill(before)
        assert gaps_of(engine, tokens, positions, reuse=False) == alone


def test_a_prefilled_prompt_is_reused_up_to_where_the_tokens_part(engine: Engine) -> None:
    prompt = engine.tokenize("the prompt is decoded while the job runs elsewhere")
    sequence = prompt + engine.generate(prompt, 8)[:-1]
    positions = list(range(len(prompt) - 1, len(sequence)))
    fresh = gaps_of(engine, sequence, positions, reuse=False)
    for cached in (prompt, prompt[:3], prompt[:3] + [9, 9, 9], [9] + prompt[1:], sequence):
        engine.prefill(cached)
        assert np.allclose(gaps_of(engine, sequence, positions, reuse=True), fresh, atol=1e-3)
    engine.prefill(prompt)
    assert gaps_of(engine, sequence, [0, len(sequence) - 1], reuse=True) == pytest.approx(
        gaps_of(engine, sequence, [0, len(sequence) - 1], reuse=False), abs=1e-3
    )  # logits wanted inside the cached part: those positions are decoded again


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda e: e.generate([], 4), "empty"),
        (lambda e: e.generate([1, 9999], 4), "token id"),
        (lambda e: e.generate([1, -1], 4), "token id"),
        (lambda e: e.generate([1, 5], 0), "max_tokens"),
        (lambda e: e.generate([1, 5], 600), "n_ctx"),
        (lambda e: e.generate([1, 5], 4, temperature=-1.0), "temperature"),
        (lambda e: e.generate([1, 5], 4, temperature=float("nan")), "temperature"),
        (lambda e: e.generate([1, 5], 4, seed=2**64), "seed"),
        (lambda e: e.logits_at([1, 5, 6], [2, 1]), "increasing"),
        (lambda e: e.logits_at([1, 5, 6], [3]), r"\[0, 3\)"),
        (lambda e: e.detokenize([300]), "token id"),
    ],
)
def test_bad_input_is_rejected(engine: Engine, call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call(engine)


def test_unloadable_files_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        Engine(tmp_path / "missing.gguf")
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a gguf file at all")
    with pytest.raises(ValueError, match="could not load"):
        Engine(junk)


def test_closed_engine_refuses_work(model_path: Path) -> None:
    eng = Engine(model_path, n_threads=1, n_ctx=64)
    eng.close()
    with pytest.raises(ValueError, match="closed"):
        eng.generate([1, 5], 2)


def test_generations_join_and_leave_a_running_batch(model_path: Path) -> None:
    jobs = [([1, 5, 6, 7], 12, 0, 0.0), ([1, 40, 41], 9, 5, 0.8), ([1, 90], 16, 2, 0.3)]
    with Engine(model_path, n_threads=1, n_ctx=128, slots=2) as engine:
        alone = [engine.generate(*job) for job in jobs]
        generations = Generations(engine)
        generations.admit("a", *jobs[0])
        generations.admit("b", *jobs[1])
        with pytest.raises(ValueError, match="all 2 generation slots are busy"):
            generations.admit("c", *jobs[2])
        finished = dict(generations.step() + generations.step())
        # A RASTiC prefill between steps uses its own sequence and disturbs nothing.
        engine.logits_at([1, 2, 3, 4], [3])
        while generations.free_slots == 0:
            finished.update(generations.step())
        generations.admit("c", *jobs[2])  # joins the batch while another job is still running
        while len(finished) < 3:
            finished.update(generations.step())
    assert [finished[key] for key in "abc"] == alone  # the tiny model has no near-ties to break differently
    for (_, max_tokens, _, _), out in zip(jobs, alone, strict=True):
        assert len(out) == max_tokens or out[-1] == EOS


def test_slots_are_bounded(model_path: Path) -> None:
    with pytest.raises(ValueError, match="slots must be in"):
        Engine(model_path, slots=0)


def test_a_vocab_only_load_tokenizes_and_detokenizes_as_the_engine_does(engine, model_path):
    """A client whose model cannot run reads a delivery with the vocabulary alone; it must read what the model wrote."""
    vocab = ModelVocab(model_path)
    try:
        prompt = vocab.tokenize("The llama walks")
        assert prompt == engine.tokenize("The llama walks")
        output = engine.generate(prompt, 8)
        assert vocab.detokenize(output) == engine.detokenize(output)
        with pytest.raises(ValueError, match="outside the vocabulary"):
            vocab.detokenize([engine.n_vocab])
    finally:
        vocab.close()
