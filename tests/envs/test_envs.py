"""Task registry, normalised score and seeded evaluation."""

from __future__ import annotations

import numpy as np
import pytest

from offrl.data import ActionSpace
from offrl.envs import TASKS, evaluate, get_task


def test_normalized_score_formula():
    hopper = get_task("hopper")
    assert hopper.normalized_score(hopper.ref_random) == pytest.approx(0.0)
    assert hopper.normalized_score(hopper.ref_expert) == pytest.approx(100.0)
    assert hopper.normalized_score(1600.0) == pytest.approx(100 * (1600 + 20.272305) / (3234.3 + 20.272305))


def test_lookup_by_name_or_gymnasium_id():
    assert get_task("Hopper-v5") is TASKS["hopper"]
    with pytest.raises(KeyError, match="known tasks"):
        get_task("nope")


def test_d4rl_references():
    assert (TASKS["halfcheetah"].ref_random, TASKS["halfcheetah"].ref_expert) == (-280.178953, 12135.0)
    assert (TASKS["walker2d"].ref_random, TASKS["walker2d"].ref_expert) == (1.629008, 4592.3)
    assert (TASKS["ant"].ref_random, TASKS["ant"].ref_expert) == (-325.6, 3879.7)


def test_spaces_come_from_the_environment():
    shape, space = get_task("hopper").spaces()
    assert shape == (11,) and space == ActionSpace.box(-1, 1, (3,))
    assert get_task("cartpole").spaces()[1] == ActionSpace.categorical(2)


def test_evaluation_is_seeded_and_reports_normalised_scores():
    task = get_task("pendulum")
    zero = lambda obs: np.zeros((obs.shape[0], 1), np.float32)  # noqa: E731
    a = evaluate(zero, task, episodes=3, seed=5)
    b = evaluate(zero, task, episodes=3, seed=5)
    np.testing.assert_array_equal(a.returns, b.returns)
    assert a.lengths.tolist() == [200, 200, 200]
    assert a.normalized_mean == pytest.approx(float(np.mean(task.normalized_score(a.returns))))
    assert set(a.summary()) >= {"eval/return_mean", "eval/normalized_score"}


def test_scripted_controller_matches_the_pendulum_expert_reference():
    from offrl.data.builtin import pendulum_swing_up

    task = get_task("pendulum")
    result = evaluate(lambda obs: np.stack([pendulum_swing_up(o) for o in obs]), task, episodes=20, seed=0)
    assert result.normalized_mean > 90


def test_the_sparse_pendulum_pays_one_per_upright_step_as_its_relabelled_data_does():
    import numpy as np

    from offrl.data.builtin import sparse_pendulum_demos
    from offrl.envs.rewards import relabel

    env = get_task("pendulum-sparse").make()
    obs, _ = env.reset(seed=0)
    rewards, next_obs = [], []
    for _ in range(50):
        obs, reward, *_ = env.step(np.array([2.0], np.float32))
        rewards.append(reward)
        next_obs.append(obs)
    env.close()
    np.testing.assert_array_equal(rewards, relabel("upright", np.array(next_obs)))
    assert set(rewards) <= {0.0, 1.0}
    demos = sparse_pendulum_demos()
    np.testing.assert_array_equal(demos.rewards, relabel("upright", demos.next_observations))
    assert demos.metadata["task"] == "pendulum-sparse" and 0 < demos.rewards.mean() < 1
    assert get_task("Pendulum-v1").name == "pendulum"  # the gymnasium id still means the dense task
