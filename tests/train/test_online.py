"""Online training: exact resume with the replay buffer, terminal vs truncation, run layout, bad settings."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

from offrl.algos.sac import SACConfig
from offrl.algos.td3 import TD3Config
from offrl.data.dataset import next_observation_mismatches
from offrl.train import load_policy
from offrl.train.checkpoint import list_checkpoints, read_metadata
from offrl.train.online import Environments, OnlineConfig, replay_dataset, resume_online, train_online
from tests.conftest import leaves_equal

SMALL = {"sac": SACConfig(hidden_dims=(32, 32)), "td3": TD3Config(hidden_dims=(32, 32))}


def quick(tmp_path, **changes) -> OnlineConfig:
    base = dict(
        task="pendulum",
        steps=600,
        warmup_steps=100,
        batch_size=32,
        log_interval=100,
        eval_interval=0,
        eval_episodes=1,
        checkpoint_interval=200,
        output_dir=str(tmp_path),
        progress=False,
    )
    base.update(changes)
    return OnlineConfig(**base)


@pytest.mark.parametrize("algo", ["sac", "td3"])
def test_online_resume_equals_an_uninterrupted_run(tmp_path, algo):
    """steps N + M in one go == N, save (agent, replay buffer, keys, counters), load, M: bitwise on CPU."""
    whole = train_online(quick(tmp_path, algo=algo, run_name="whole", num_envs=2), SMALL[algo])
    train_online(quick(tmp_path, algo=algo, run_name="split", num_envs=2), SMALL[algo], stop_after=400)
    assert list_checkpoints(tmp_path / "split" / "checkpoints")[-1].name == "step_000000400.msgpack"
    resumed = resume_online(tmp_path / "split")
    assert resumed.step == 600
    assert leaves_equal(whole.agent, resumed.agent)
    # the replay buffers too (timeouts included: every checkpoint cuts the running episodes in both runs)
    assert replay_dataset(tmp_path / "whole").fingerprint() == replay_dataset(tmp_path / "split").fingerprint()
    rows = lambda run: [  # noqa: E731
        {k: v for k, v in json.loads(x).items() if not k.startswith("time/")}
        for x in (tmp_path / run / "metrics.jsonl").read_text().splitlines()
    ]
    assert rows("whole")[-1] == rows("split")[-1]
    # the summary's time covers both invocations: the clock carried in the checkpoints counts every update once
    clock = lambda run: read_metadata(list_checkpoints(tmp_path / run / "checkpoints")[-1])["clock"]  # noqa: E731
    assert clock("split")["updates"] == clock("whole")["updates"] > 0
    summary = json.loads((tmp_path / "split" / "summary.json").read_text())
    assert summary["updates_per_second"] == pytest.approx(clock("split")["updates"] / clock("split")["update_seconds"])


def test_run_directory_and_loading_the_policy(tmp_path):
    result = train_online(quick(tmp_path, run_name="r", steps=300), SMALL["sac"])
    run = tmp_path / "r"
    config = json.loads((run / "config.json").read_text())
    assert config["kind"] == "online" and config["algo"] == "sac" and config["env_id"] == "Pendulum-v1"
    assert (run / "metrics.jsonl").exists() and (run / "eval.csv").exists() and (run / "summary.json").exists()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["compile_seconds"] > 0  # the step function's compilation, kept out of the updates' time
    clock = read_metadata(list_checkpoints(run / "checkpoints")[-1])["clock"]
    assert summary["updates_per_second"] == pytest.approx(clock["updates"] / clock["update_seconds"])
    train_rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("train/episode_return" in r for r in train_rows if r["kind"] == "train")
    policy = load_policy(run)  # the agent alone, without the replay buffer
    obs = np.zeros((4, 3), np.float32)
    actions = policy(obs)
    assert actions.shape == (4, 1) and np.all(np.abs(actions) <= 2.0)
    assert leaves_equal(policy.agent, result.agent)


class _FallsAfterThree(gym.Env):
    """Terminates (falls) at its 3rd step unless the episode was reset with an even seed, which truncates at 5."""

    observation_space = gym.spaces.Box(-10, 10, (1,), np.float32)
    action_space = gym.spaces.Box(-1, 1, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        self.t, self.even = 0, (seed or 0) % 2 == 0
        return np.array([0.0], np.float32), {}

    def step(self, action):
        self.t += 1
        obs = np.array([float(self.t)], np.float32)
        terminated = not self.even and self.t == 3
        truncated = self.even and self.t == 5
        return obs, 1.0, terminated, truncated, {}


class _Task:
    def make(self):
        return _FallsAfterThree()


def test_terminated_is_stored_as_terminal_truncated_is_not_and_next_obs_is_the_final_one():
    envs = Environments(_Task(), 1, seed=0, episodes_started=0)  # reset seeds 0, 1, 2, ...: even, odd, even
    envs.reset_all()
    stored, timeouts = [], []
    for _ in range(8):
        rows, finished = envs.step(np.zeros((1, 1), np.float32))
        stored.append((float(rows["next_observations"][0, 0]), float(rows["terminals"][0]), finished))
        timeouts.append(float(rows["timeouts"][0]))
    # episode 0 (even seed): truncated at step 5 -> not terminal, next obs 5 (not the reset obs 0)
    assert stored[4][:2] == (5.0, 0.0) and stored[4][2] == [(5.0, 5)]
    # episode 1 (odd seed): terminates at its 3rd step -> terminal, next obs 3
    assert stored[7][:2] == (3.0, 1.0) and stored[7][2] == [(3.0, 3)]
    assert all(s[1] == 0.0 for i, s in enumerate(stored) if i != 7)
    assert timeouts == [0, 0, 0, 0, 1, 0, 0, 0]  # the truncation is kept as a timeout (episode boundary)


def test_the_replay_buffer_exports_as_a_dataset_of_whole_episodes(tmp_path):
    """2 envs, checkpoints every 200 steps (each cuts the running episodes): the exported buffer is the logged
    data, one environment after the other, every episode contiguous, ending in a timeout at cuts and time limits."""
    train_online(quick(tmp_path, run_name="r", num_envs=2, steps=1000), SMALL["sac"])
    dataset = replay_dataset(tmp_path / "r")
    assert dataset.size == 1000 and dataset.metadata["env_steps"] == 1000
    assert next_observation_mismatches(dataset) == 0  # s' of one row is s of the next inside every episode
    assert not dataset.terminals.any()  # pendulum never terminates
    ends = np.flatnonzero(dataset.timeouts)
    # per env 500 steps, cut at 100, 200, ..., 500 (checkpoint every 200 env steps = 100 per env)
    np.testing.assert_array_equal(ends, np.r_[np.arange(99, 500, 100), 500 + np.arange(99, 500, 100)])
    assert np.abs(dataset.actions).max() <= 2.0 and np.abs(dataset.actions).max() > 1.0  # the task's own bounds


def test_stop_return_ends_the_run_at_the_first_evaluation_that_reaches_it(tmp_path):
    config = quick(tmp_path, run_name="s", steps=1000, eval_interval=200, checkpoint_interval=300, stop_return=-1e9)
    result = train_online(config, SMALL["sac"])
    assert result.step == 200
    summary = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert summary["stopped_at_return"] is True and summary["step"] == 200
    assert list_checkpoints(tmp_path / "s" / "checkpoints")[-1].name == "step_000000200.msgpack"
    assert replay_dataset(tmp_path / "s").timeouts[-1]  # the stop cut the running episode


def test_bad_settings_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"buffer_size \(8\) is smaller than a batch \(16\)"):
        quick(tmp_path, buffer_size=8, batch_size=16)
    with pytest.raises(ValueError, match="stop_return needs evaluations"):
        OnlineConfig(stop_return=100.0, eval_interval=0)
    with pytest.raises(ValueError, match="multiple of num_envs"):
        OnlineConfig(steps=1001, num_envs=2)
    with pytest.raises(ValueError, match="supports sac, td3"):
        OnlineConfig(algo="iql")
    with pytest.raises(ValueError, match="discrete actions"):
        train_online(quick(tmp_path, task="cartpole"), SMALL["sac"])
    train_online(quick(tmp_path, run_name="x", steps=200), SMALL["sac"])
    with pytest.raises(FileExistsError, match="--resume"):
        train_online(quick(tmp_path, run_name="x", steps=200), SMALL["sac"])


def test_the_step_writes_the_buffer_in_place_without_copying_it():
    """An online step's cost must not grow with the buffer: neither jitted call may copy a buffer column (one call
    that both wrote the donated buffer and sampled from it, at one update per step, made XLA copy three columns
    twice per step)."""
    import jax
    import jax.numpy as jnp

    from offrl.algos import get_algorithm
    from offrl.algos.base import Spec
    from offrl.train import replay
    from offrl.train.online import make_step_function

    capacity = 40_961  # a size no network shape shares
    algo = get_algorithm("sac")
    agent = algo.init(jax.random.PRNGKey(0), Spec(observation_shape=(5,), action_dim=2, discrete=False), SACConfig())
    buffer = replay.create(capacity, (5,), 2)
    rows = {name: np.ones((1, *column.shape[1:]), np.float32) for name, column in buffer.data.items()}
    step = make_step_function(algo, 32)
    compiled = [step.add.lower(buffer, rows).compile()] + [
        step.learn.lower(agent, buffer, jax.random.PRNGKey(1), jnp.ones((1, 5)), updates, False).compile()
        for updates in (1, 2)
    ]
    copies = [
        line.strip()
        for c in compiled
        for line in c.as_text().splitlines()
        if f"f32[{capacity}" in line and " copy(" in line
    ]
    assert copies == []
