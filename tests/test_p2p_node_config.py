"""The P2P settings of camelid.conf and camelidd: repeatable peers, --nolisten, and errors naming the value."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from camelid.cli.camelidd import main as camelidd
from camelid.node.config import ConfigError, load_config


def test_p2p_defaults(tmp_path):
    config = load_config({}, tmp_path)
    assert (config.listen, config.bind, config.maxconnections) == (True, "0.0.0.0", 125)
    assert config.connect == config.addnode == config.seednode == ()


def test_peer_keys_repeat_in_the_conf_file_and_the_command_line_replaces_them(tmp_path):
    conf = "regtest=1\nconnect=10.0.0.1:1\n[regtest]\naddnode=10.0.0.2\naddnode=[::1]:3\n"
    (tmp_path / "camelid.conf").write_text(conf)
    config = load_config({"listen": False}, tmp_path)
    assert config.connect == (("10.0.0.1", 1),)
    assert config.addnode == (("10.0.0.2", None), ("::1", 3))
    assert config.listen is False
    assert load_config({"connect": (("10.0.0.9", 9),)}, tmp_path).connect == (("10.0.0.9", 9),)


def test_a_bad_peer_address_in_the_conf_file_names_the_line(tmp_path):
    (tmp_path / "camelid.conf").write_text("addnode=10.0.0.1\naddnode=seed.example.com\n")
    with pytest.raises(ConfigError, match="line 2.*seed.example.com"):
        load_config({}, tmp_path)


def test_camelidd_bad_connect_flag_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(camelidd, ["--datadir", str(tmp_path), "--connect", "1.2.3.4:1", "--connect", "nope"])
    assert result.exit_code == 2
    assert "--connect" in result.output and "nope" in result.output
