"""Fitted Q Evaluation recovers known values, and its bootstrap interval covers them."""

from __future__ import annotations

import numpy as np
import pytest

from offrl.data import from_arrays
from offrl.ope import FQEConfig, discounted_return, fitted_q_evaluation


def test_a_constant_reward_without_ends_is_worth_one_over_one_minus_gamma():
    """Reward 1 every step, episodes cut by time limits (bootstrapped): Q = 1 / (1 - gamma) = 5 at gamma 0.8."""
    rng = np.random.default_rng(0)
    n = 2000
    obs = rng.normal(size=(n, 3)).astype(np.float32)
    timeouts = (np.arange(n) % 50) == 49
    data = from_arrays(obs, rng.uniform(-1, 1, (n, 2)).astype(np.float32), np.ones(n, np.float32),
                       np.zeros(n, bool), timeouts, rng.normal(size=(n, 3)).astype(np.float32))  # fmt: skip
    config = FQEConfig(discount=0.8, steps=3000, members=4, hidden_dims=(64, 64))
    result = fitted_q_evaluation(data, lambda o: np.zeros((len(o), 2), np.float32), config)
    assert result.estimate == pytest.approx(5.0, abs=0.3)
    assert result.low <= result.high and len(result.member_estimates) == 4


def test_one_step_episodes_give_the_reward_of_the_policys_action():
    """Terminal after one step, r = -(a - s)^2: the policy a = s is worth 0, the policy a = s + 0.5 is worth -0.25."""
    rng = np.random.default_rng(1)
    n = 4000
    s = rng.uniform(-0.5, 0.5, (n, 1)).astype(np.float32)
    a = rng.uniform(-1, 1, (n, 1)).astype(np.float32)
    r = -np.square(a - s)[:, 0].astype(np.float32)
    data = from_arrays(s, a, r, np.ones(n, bool), np.zeros(n, bool), s)
    config = FQEConfig(discount=0.9, steps=2000, members=4, hidden_dims=(64, 64))
    good = fitted_q_evaluation(data, lambda o: np.asarray(o, np.float32), config)
    worse = fitted_q_evaluation(data, lambda o: np.asarray(o, np.float32) + 0.5, config)
    assert good.estimate == pytest.approx(0.0, abs=0.05) and worse.estimate == pytest.approx(-0.25, abs=0.05)
    assert good.low - 0.05 <= 0.0 <= good.high + 0.05
    assert worse.estimate < good.estimate


def test_too_few_backups_for_the_horizon_warn():
    """steps * tau Bellman backups must cover several horizons 1 / (1 - gamma), or the estimate misses value."""
    data = from_arrays(np.zeros((20, 1), np.float32), np.zeros((20, 1), np.float32), np.ones(20, np.float32),
                       np.zeros(20, bool), (np.arange(20) % 10) == 9, np.zeros((20, 1), np.float32))  # fmt: skip
    with pytest.warns(UserWarning, match="Bellman backups for a horizon of 100"):
        fitted_q_evaluation(data, lambda o: np.zeros((len(o), 1), np.float32), FQEConfig(steps=10, members=1))


def test_discounted_return():
    assert discounted_return(np.array([1.0, 1.0, 1.0]), 0.5) == pytest.approx(1.75)


def test_offrl_fqe_evaluates_a_run_and_compares_with_rollouts(tmp_path, capsys):
    import json

    from offrl.cli import main
    from offrl.train import TrainConfig, train

    train(TrainConfig(steps=100, eval_interval=0, eval_episodes=1, output_dir=str(tmp_path), run_name="r",
                      progress=False))  # fmt: skip
    argv = ["fqe", str(tmp_path / "r"), "--dataset", "pendulum-mixed", "--steps", "100", "--members", "3",
            "--online-episodes", "2", "--json"]  # fmt: skip
    assert main(argv) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["fqe/low"] <= record["fqe/high"] and np.isfinite(record["fqe/estimate"])
    assert "online/discounted_return" in record and record["fqe/discount"] == 0.99
    assert main(argv[:-1]) == 0  # the plain report also gives the fit's final TD loss
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("FQE (gamma 0.99): ") and lines[1].startswith("final TD loss: ")
    assert float(lines[1].split(": ")[1]) >= 0 and lines[2].startswith("online, 2 episodes")
