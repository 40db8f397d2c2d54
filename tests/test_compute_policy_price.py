"""--min-price: the compute policy's price per 1,000 output tokens, per model, and the jobs it declines."""

from __future__ import annotations

import pytest

from camelid.core.consensus import COIN
from camelid.node.config import ComputePolicy, ConfigError, load_config

MODEL = bytes.fromhex("ab" * 32)
OTHER = bytes.fromhex("cd" * 32)


def test_min_price_for_every_model_and_for_one(tmp_path):
    (tmp_path / "camelid.conf").write_text(f"min-price=0.001\nmin-price={MODEL.hex()}:0.5\n")
    policy = load_config({}, tmp_path).compute_policy
    assert (policy.price_for(OTHER), policy.price_for(MODEL)) == (COIN // 1000, COIN // 2)
    assert policy.to_json()["model_prices"] == {MODEL.hex(): COIN // 2}


def test_a_job_below_the_price_is_refused_by_its_max_tokens():
    policy = ComputePolicy(min_price=COIN // 1000)  # 0.001 coin per 1,000 tokens
    assert policy.price_problem(OTHER, 2000, 2 * COIN // 1000) is None
    problem = policy.price_problem(OTHER, 2000, 2 * COIN // 1000 - 1)
    assert problem is not None and "below our price of 100000 per 1,000 tokens" in problem
    assert ComputePolicy().price_problem(OTHER, 4096, 1) is None  # no price: any reward


@pytest.mark.parametrize("bad", ["cheap", "-1", "abcd:1", f"{MODEL.hex()}:x"])
def test_a_bad_min_price_is_a_config_error_naming_it(tmp_path, bad):
    (tmp_path / "camelid.conf").write_text(f"min-price={bad}\n")
    with pytest.raises(ConfigError, match="min-price"):
        load_config({}, tmp_path)
