"""The wallet settings of camelid.conf and the command line."""

from __future__ import annotations

import pytest

from camelid.node.config import ConfigError, load_config


def test_wallet_name_comes_from_the_network_section(tmp_path):
    (tmp_path / "camelid.conf").write_text("regtest=1\nwallet=top\n[regtest]\nwallet=savings\n")
    config = load_config({}, tmp_path)
    assert (config.wallet, config.disablewallet) == ("savings", False)


def test_disablewallet_flag(tmp_path):
    assert load_config({"regtest": True, "disablewallet": True}, tmp_path).disablewallet


def test_wallet_and_disablewallet_conflict(tmp_path):
    (tmp_path / "camelid.conf").write_text("disablewallet=1\n")
    with pytest.raises(ConfigError, match="wallet and disablewallet"):
        load_config({"wallet": "w"}, tmp_path)
