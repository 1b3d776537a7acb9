"""SERL's asynchronous actor/learner: two processes, transitions one way, parameters the other."""

from __future__ import annotations

import pytest

from offrl.algos.rlpd import RLPDConfig
from offrl.train.async_actor_learner import AsyncConfig, run_async


def test_the_learner_gets_every_transition_and_the_actor_gets_new_parameters():
    config = AsyncConfig(
        algo="rlpd", dataset="pendulum-expert", online_steps=400, warmup_steps=100, batch_size=32, send_every=20,
        updates_per_call=2, publish_every=4, eval_episodes=1, actor_hz=200.0,
    )  # fmt: skip
    result = run_async(config, RLPDConfig(hidden_dims=(16, 16), num_critics=2, actor_every=2))
    assert result.env_steps_received == 400
    assert result.learner_updates > 0 and result.parameter_versions >= 1
    assert len(result.train_returns) == 2  # two 200-step Pendulum episodes
    assert result.actor_steps_per_second <= 200.0 * 1.05  # held to its control rate


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="send_every must be >= 1"):
        AsyncConfig(send_every=0)
    with pytest.raises(ValueError, match="cal-ql reads mc_returns"):
        from offrl.algos.cql import CalQLConfig

        run_async(AsyncConfig(algo="cal-ql", online_steps=10), CalQLConfig(hidden_dims=(8, 8)))
