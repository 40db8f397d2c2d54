"""Seed files: the packaged seeds.json is valid for every network, and a --seedfile is read with errors naming it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from camelid.core.params import get_params
from camelid.node.config import load_config
from camelid.p2p.seeds import DEFAULT_SEEDFILE, load_seeds

REPOSITORY = Path(__file__).resolve().parents[1]


def test_the_packaged_seed_file_is_the_top_level_one_and_parses_for_every_network():
    assert (REPOSITORY / "seeds.json").resolve() == DEFAULT_SEEDFILE.resolve()
    for network in ("mainnet", "testnet", "regtest"):
        assert load_seeds(network, get_params(network).default_port) == ()


def test_a_seed_file_gives_addresses_with_the_default_port_filled_in(tmp_path):
    path = tmp_path / "seeds.json"
    path.write_text(json.dumps({"_note": "x", "regtest": ["127.0.0.1:5", "10.1.2.3", "[::1]:7"], "mainnet": []}))
    assert load_seeds("regtest", 29733, path) == (("127.0.0.1", 5), ("10.1.2.3", 29733), ("::1", 7))
    assert load_seeds("testnet", 19733, path) == ()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{not json", "not JSON"),
        ("[]", "expected an object"),
        ('{"regtest": "127.0.0.1"}', "must be a list"),
        ('{"regtest": ["seed.example.com"]}', "regtest: .*host names are not resolved"),
    ],
)
def test_a_bad_seed_file_is_refused_naming_the_file_and_the_problem(tmp_path, text, problem):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=f"{path}.*{problem}"):
        load_seeds("regtest", 29733, path)
    with pytest.raises(ValueError, match="cannot read seed file"):
        load_seeds("regtest", 29733, tmp_path / "missing.json")


def test_seedfile_is_a_setting(tmp_path):
    (tmp_path / "camelid.conf").write_text("seedfile=~/private-seeds.json\n")
    assert load_config({}, tmp_path).seedfile == Path("~/private-seeds.json").expanduser()
    (tmp_path / "camelid.conf").write_text("")
    assert load_config({}, tmp_path).seedfile is None
