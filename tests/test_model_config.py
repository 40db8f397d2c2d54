"""Model settings: --serve-model repeats, rates default sensibly, the test-only knobs stay on regtest."""

from __future__ import annotations

import pytest

from camelid.node.config import ConfigError, load_config


def test_serve_model_repeats_and_the_rates_have_defaults(tmp_path):
    (tmp_path / "camelid.conf").write_text("regtest=1\nserve-model=default\nserve-model=/models/a.gguf\n")
    config = load_config({}, tmp_path)
    assert config.serve_model == ("default", "/models/a.gguf")
    assert (config.model_upload_rate, config.model_peer_upload_rate) == (20480, 8192)
    assert config.model_chunk_size is None and not config.corrupt_model_chunks
    assert not config.nocompute  # holding models sells completions unless told not to
    assert load_config({"nocompute": True}, tmp_path).nocompute


@pytest.mark.parametrize(
    "flag", [{"model-chunk-size": 4096}, {"corrupt-model-chunks": True}, {"misbehave": "never-pay"}]
)
@pytest.mark.parametrize("network", [{}, {"testnet": True}])
def test_test_only_model_settings_are_refused_off_regtest(tmp_path, flag, network):
    with pytest.raises(ConfigError, match="only allowed on regtest"):
        load_config({**network, **flag}, tmp_path)
    assert load_config({"regtest": True, **flag}, tmp_path).network == "regtest"


def test_a_chunk_size_above_the_wire_limit_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="at most 1048576"):
        load_config({"regtest": True, "model-chunk-size": (1 << 20) + 1}, tmp_path)


def test_an_unknown_misbehaviour_is_refused_naming_the_modes(tmp_path):
    (tmp_path / "camelid.conf").write_text("regtest=1\nmisbehave=lie\n")
    with pytest.raises(ConfigError, match="misbehave: expected one of tamper-output, never-pay"):
        load_config({}, tmp_path)
    (tmp_path / "camelid.conf").write_text("regtest=1\nmisbehave=never-pay\n")
    assert load_config({}, tmp_path).misbehave == "never-pay"
