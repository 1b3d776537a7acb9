"""Online episodes that start from states along the best logged episodes (PrefixRL's reset-to-prefix idea)."""

from __future__ import annotations

import numpy as np
import pytest

from offrl.data import collect as c
from offrl.data.formats.d4rl import load_d4rl_hdf5, save_d4rl_hdf5
from offrl.envs.registry import get_task
from offrl.envs.start_states import PrefixStarts
from offrl.train.online import Environments


@pytest.fixture(scope="module")
def hopper_data(tmp_path_factory):
    """Random Hopper episodes, written and read back as D4RL HDF5 (the simulator state travels as infos/*)."""
    task = get_task("hopper")
    path = tmp_path_factory.mktemp("d") / "hopper-random.hdf5"
    save_d4rl_hdf5(c.collect(task, c.uniform_policy(task, 0), 600, seed=0), path)
    return load_d4rl_hdf5(path)


def test_a_start_state_reproduces_the_logged_observation(hopper_data):
    starts = PrefixStarts.from_dataset(hopper_data, fraction=1.0, top_fraction=0.2)
    env = get_task("hopper").make()
    env.reset(seed=0)
    for index in (0, len(starts.qpos) // 2, len(starts.qpos) - 1):
        np.testing.assert_allclose(starts.apply(env, index), starts.observations[index], atol=1e-5)
    env.close()


def test_start_states_come_from_the_best_episodes(hopper_data):
    starts = PrefixStarts.from_dataset(hopper_data, fraction=1.0, top_fraction=0.2, max_prefix=1.0)
    returns = [
        hopper_data.rewards[s : e + 1].sum()
        for s, e in zip(hopper_data.episode_starts, hopper_data.episode_ends, strict=True)
    ]
    best = np.argsort(returns)[::-1][: max(1, round(0.2 * len(returns)))]
    rows = np.concatenate([np.arange(hopper_data.episode_starts[i], hopper_data.episode_ends[i] + 1) for i in best])
    np.testing.assert_array_equal(starts.observations, hopper_data.observations[rows])


def test_environments_start_the_chosen_share_of_episodes_from_logged_states(hopper_data):
    starts = PrefixStarts.from_dataset(hopper_data, fraction=0.5)
    envs = Environments(get_task("hopper"), 1, seed=3, episodes_started=0, start_states=starts)
    logged = {tuple(np.round(o, 4)) for o in starts.observations}
    from_logged = []
    for _ in range(40):
        envs.reset_all()
        from_logged.append(tuple(np.round(envs.observations()[0], 4)) in logged)
    envs.close()
    expected = [starts.choose(3, i) is not None for i in range(40)]
    assert from_logged == expected and 10 <= sum(expected) <= 30  # deterministic per episode index, about half


def test_data_without_simulator_states_is_refused(hopper_data):
    stripped = hopper_data.replace(extras={})
    with pytest.raises(ValueError, match="infos/qpos"):
        PrefixStarts.from_dataset(stripped, fraction=0.5)
    with pytest.raises(ValueError, match="must be in"):
        PrefixStarts.from_dataset(hopper_data, fraction=0.0)
