"""Configuration: data directory layout, camelid.conf parsing, precedence, and camelidd's flag errors."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from camelid.cli.camelidd import main as camelidd
from camelid.core.consensus import COIN
from camelid.node.config import CONF_FILENAME, ComputePolicy, ConfigError, load_config, network_datadir, read_conf_file

REGTEST_ADDRESS = "mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn"


def write_conf(tmp_path, text: str):
    path = tmp_path / "camelid.conf"
    path.write_text(text)
    return path


@pytest.mark.parametrize(("network", "sub"), [("mainnet", ""), ("testnet", "testnet"), ("regtest", "regtest")])
def test_network_directories_follow_bitcoin_core(tmp_path, network, sub):
    assert network_datadir(tmp_path, network) == tmp_path / sub


def test_defaults_without_a_conf_file(tmp_path):
    config = load_config({}, tmp_path)
    assert (config.network, config.net_datadir, config.conf_file) == ("mainnet", tmp_path, None)
    assert (config.rpcbind, config.rpc_port, config.p2p_port) == ("127.0.0.1", 9732, 9733)
    assert not config.mine and config.printtoconsole


def test_precedence_command_line_over_network_section_over_top_level(tmp_path):
    write_conf(
        tmp_path,
        "# comment line\nregtest=1\nrpcport=1000  # trailing comment\nport=2000\nrpcuser=a\nrpcpassword=b\n"
        "[regtest]\nrpcport=1001\n[testnet]\nport=3000\n",
    )
    config = load_config({"port": 4000}, tmp_path)
    assert config.network == "regtest"
    assert config.net_datadir == tmp_path / "regtest"
    assert (config.rpc_port, config.p2p_port, config.rpcuser) == (1001, 4000, "a")


def test_command_line_network_beats_the_conf_file(tmp_path):
    write_conf(tmp_path, "regtest=1\n")
    assert load_config({"testnet": True}, tmp_path).network == "testnet"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("rpcport=1\nbogus=1\n", "line 2: unknown key 'bogus'"),
        ("rpcport=70000\n", "line 1: bad value for rpcport: port 70000 is outside 1-65535"),
        ("mine=maybe\n", "line 1: bad value for mine"),
        ("rpcbind=localhost\n", "line 1: bad value for rpcbind"),
        ("just words\n", "line 1: expected key=value"),
        ("[main]\n", "line 1: bad section"),
        ("datadir=/tmp\n", "line 1: datadir can only be given on the command line"),
        ("[regtest]\nregtest=1\n", "line 2: regtest selects the network"),
        ("port=1\nport=2\n", "line 2: port is already set on line 1"),
    ],
)
def test_conf_errors_name_file_and_line(tmp_path, text, fragment):
    path = write_conf(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        read_conf_file(path)
    assert str(path) in str(info.value)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("command_line", "fragment"),
    [
        ({"regtest": True, "testnet": True}, "cannot both be set"),
        ({"rpcuser": "u"}, "must be given together"),
        ({"regtest": True, "mine": True}, "mine needs mine-address"),
        ({"mine-address": REGTEST_ADDRESS}, "is not a mainnet address"),
    ],
)
def test_inconsistent_settings_are_rejected(tmp_path, command_line, fragment):
    with pytest.raises(ConfigError, match=fragment):
        load_config(command_line, tmp_path)


def test_explicit_paths_must_exist(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config({}, tmp_path / "missing")
    with pytest.raises(ConfigError, match="configuration file .* does not exist"):
        load_config({}, tmp_path, tmp_path / "nope.conf")


def test_camelidd_unknown_flag_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(camelidd, ["--datadir", str(tmp_path), "--no-such-flag"])
    assert result.exit_code == 2
    assert "No such option" in result.output


def test_camelidd_bad_flag_value_names_the_flag(tmp_path):
    result = CliRunner().invoke(camelidd, ["--datadir", str(tmp_path), "--rpcport", "http"])
    assert result.exit_code == 2
    assert "--rpcport" in result.output and "expected a port number" in result.output


def test_camelidd_configuration_error_exits_1(tmp_path):
    write_conf(tmp_path, "colour=blue\n")
    result = CliRunner().invoke(camelidd, ["--datadir", str(tmp_path)])
    assert result.exit_code == 1
    assert "unknown key 'colour'" in result.output


def test_par_sets_the_signature_check_threads(tmp_path):
    assert load_config({}, tmp_path).par is None  # one per CPU core
    write_conf(tmp_path, "par=3\n")
    assert load_config({}, tmp_path).par == 3
    write_conf(tmp_path, "par=0\n")
    with pytest.raises(ConfigError, match="line 1: bad value for par"):
        load_config({}, tmp_path)


def test_the_compute_policy_has_safe_defaults_and_takes_the_operators_limits(tmp_path):
    assert load_config({}, tmp_path).compute_policy == ComputePolicy()
    assert ComputePolicy().payment_confirmations == ComputePolicy().escrow_confirmations == 1
    regtest = load_config({"regtest": True}, tmp_path).compute_policy
    assert (regtest.escrow_confirmations, regtest.payment_confirmations) == (0, 0)
    (tmp_path / CONF_FILENAME).write_text("compute-max-stake=0.5\n[regtest]\ncompute-payment-confirmations=2\n")
    policy = load_config({"regtest": True, "compute-max-timelock": 900}, tmp_path).compute_policy
    assert (policy.max_stake, policy.payment_confirmations, policy.max_timelock) == (COIN // 2, 2, 900)
    assert policy.to_json()["max_total_stake"] == 10 * COIN


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("compute-max-stake=-1", "non-negative"),
        ("compute-max-stake=1e-9", "8 decimals"),
        ("compute-escrow-confirmations=x", "whole number"),
    ],
)
def test_bad_compute_limits_name_the_key(tmp_path, text, fragment):
    (tmp_path / CONF_FILENAME).write_text(text + "\n")
    with pytest.raises(ConfigError, match=fragment):
        load_config({}, tmp_path)
