"""The offline workflow: checkpoint statistics from a run, and the overfitting / underfitting rules."""

from __future__ import annotations

import json

import numpy as np

from offrl.ope.workflow import CheckpointStatistics, diagnose, value_bounds


def stats(qs, tds, scale=100.0, variance=50.0, bounds=(-np.inf, np.inf)):
    return [CheckpointStatistics(1000 * (i + 1), q, td, scale, variance, *bounds)
            for i, (q, td) in enumerate(zip(qs, tds, strict=True))]  # fmt: skip


def test_a_q_peak_then_a_steady_fall_with_low_td_error_is_overfitting_and_the_peak_is_deployed():
    result = diagnose(stats([10, 20, 30, 27, 24, 20], [1.0, 0.8, 0.6, 0.5, 0.5, 0.4]))
    assert result.verdict == "overfitting" and result.recommended_step == 3000
    assert "dropout" in result.advice


def test_a_critic_coming_down_from_its_initial_values_is_not_overfitting():
    """Negative rewards: Q starts near 0 and falls towards the data's values while the TD error falls."""
    assert diagnose(stats([-4.8, -8.4, -11.6, -15.0, -18.1, -20.6], [7.8, 6.2, 5.1, 4.5, 3.9, 3.3])).verdict == "fine"


def test_a_td_error_that_stays_high_is_underfitting():
    result = diagnose(stats([1, 2, 3, 4], [40.0, 38.0, 41.0, 39.0]))
    assert result.verdict == "underfitting" and "capacity" in result.advice


def test_a_critic_whose_values_grow_with_its_error_is_underfitting():
    """A critic too small for the data (CartPole, 8 units): Q and TD error both grow, so the error stays a few
    percent of the mean squared target (8% here), but it leaves 41% of the targets' variance unexplained."""
    result = diagnose(stats([7.1, 45.5, 93.4, 108.7, 104.9, 115.0], [6.0, 118, 447, 665, 720, 1050],
                            scale=13340.0, variance=2560.0))  # fmt: skip
    assert result.verdict == "underfitting" and "41% of the TD targets' variance" in result.explanation


def test_an_error_that_explains_most_of_the_targets_variance_is_not_underfitting():
    """A large critic on the same data: its error grows too (above the 1% floor of the mean square) but stays
    under a quarter of the targets' variance."""
    result = diagnose(stats([26, 33, 38, 43, 51, 78], [6.8, 15.7, 26.7, 43.3, 102.3, 453.8],
                            scale=6100.0, variance=5000.0))  # fmt: skip
    assert result.verdict == "fine"
    grown = diagnose(stats([26, 33, 38, 43, 51, 78], [6.8, 15.7, 26.7, 43.3, 102.3, 1500.0],
                           scale=6100.0, variance=5000.0))  # fmt: skip
    assert grown.verdict == "underfitting"  # the same run with 30% of the variance unexplained


def test_targets_that_are_all_zero_are_not_judged():
    """Sparse rewards never reached: every target is 0, so no share of them is meaningful."""
    assert diagnose(stats([0.0, 0.0, 0.0], [1e-9, 1e-9, 1e-9], scale=0.0, variance=0.0)).verdict == "fine"


def test_a_tiny_error_on_targets_that_hardly_vary_is_not_underfitting():
    """One expert trajectory: every target is about the same, so even a negligible TD error is a large share of
    their variance; beside their mean square (about 100^2) it is nothing."""
    assert diagnose(stats([90, 95, 98, 99], [0.4, 0.3, 0.35, 0.33], scale=1e4, variance=1.0)).verdict == "fine"


def test_the_value_bounds_are_the_extreme_discounted_returns_of_the_rewards():
    assert np.allclose(value_bounds(np.array([0.5, 1.0]), 0.99), (0.5, 100.0))  # at least one step's reward
    assert np.allclose(value_bounds(np.array([-2.0, -1.0]), 0.99), (-200.0, -1.0))  # or end after one step
    assert np.allclose(value_bounds(np.array([-1.0, 0.0, 2.0]), 0.9), (-10.0, 20.0))
    assert value_bounds(np.array([0.0, 1.0]), 1.0) == (0.0, np.inf)


def test_a_q_that_passes_the_largest_possible_value_and_keeps_rising_is_diverging():
    """A 2x256 critic on random CartPole actions (reward 1, gamma 0.99: no value above 100): the Q grows through
    the bound while the TD error stays a small share of the targets' variance, and the policy collapses."""
    qs = [18, 26, 31, 38, 45, 51, 60, 71, 92, 114, 140, 159]
    tds = [7, 8, 12, 20, 30, 45, 70, 120, 250, 500, 900, 1700]
    result = diagnose(stats(qs, tds, scale=20000.0, variance=16000.0, bounds=(1.0, 100.0)))
    assert result.verdict == "diverging"
    assert result.recommended_step == 9000  # the last checkpoint whose Q (92) was possible
    assert "above 100, the largest" in result.explanation and "larger conservative weight" in result.advice
    # without the bounds (statistics recorded before them) nothing fires
    assert diagnose(stats(qs, tds, scale=20000.0, variance=16000.0)).verdict == "fine"


def test_a_q_that_levelled_off_slightly_above_the_bound_is_not_diverging():
    """An 8-unit critic on expert CartPole data: values near their maximum, over-estimated by a few percent, flat
    for the second half of training (its policy scores 100)."""
    qs = [60, 85, 98, 103, 104.5, 104.8, 104.9, 105.0]
    assert diagnose(stats(qs, [0.5] * 8, scale=1e4, variance=20.0, bounds=(1.0, 100.0))).verdict == "fine"
    # the same run if it kept rising through the second half
    rising = [60, 85, 98, 103, 107, 112, 118, 125]
    assert diagnose(stats(rising, [0.5] * 8, scale=1e4, variance=20.0, bounds=(1.0, 100.0))).verdict == "diverging"


def test_a_q_that_falls_below_the_smallest_possible_value_is_diverging_and_no_checkpoint_may_be_possible():
    qs = [-120, -150, -190, -240, -300, -380]  # rewards in [-1, 0], gamma 0.99: no value below -100
    result = diagnose(stats(qs, [1.0] * 6, scale=1e5, variance=1e4, bounds=(-100.0, 0.0)))
    assert result.verdict == "diverging" and "below -100, the smallest" in result.explanation
    assert result.recommended_step == 1000 and "no checkpoint had its Q within the bounds" in result.advice
    assert "smaller conservative weight" in result.advice  # not the over-estimating critic's fix


def test_a_q_that_levelled_off_slightly_below_the_smallest_possible_value_is_not_diverging():
    qs = [-60, -90, -101, -101.5, -101.8, -102.0]
    assert diagnose(stats(qs, [1.0] * 6, scale=1e4, variance=1e3, bounds=(-100.0, 0.0))).verdict == "fine"


def test_values_near_zero_do_not_diverge_on_noise():
    """Rewards that are all zero give no range; sparse 0/1 rewards let Q wander a little below 0."""
    assert diagnose(stats([0.02, 0.01, 0.004, 0.002, 0.003], [1e-6] * 5, bounds=(0.0, 0.0))).verdict == "fine"
    qs = [0.05, 0.01, -0.005, -0.01, -0.02]
    assert diagnose(stats(qs, [1e-4] * 5, scale=1e-3, variance=1e-3, bounds=(0.0, 100.0))).verdict == "fine"


def test_two_checkpoints_are_enough_to_see_a_divergence():
    assert diagnose(stats([50, 150], [1.0, 1.0], scale=1e4, variance=1e4, bounds=(1.0, 100.0))).verdict == "diverging"


def test_an_underfitting_critic_beyond_the_bounds_is_underfitting_and_says_so():
    """An 8-unit critic on mixed CartPole data: the TD error stays high and the Q passes 100 on its way to 212;
    capacity is the first fix, and the explanation names the divergence too."""
    qs = [20, 60, 110, 150, 180, 212]
    tds = [30, 300, 700, 1100, 1500, 2000]
    result = diagnose(stats(qs, tds, scale=45000.0, variance=6000.0, bounds=(1.0, 100.0)))
    assert result.verdict == "underfitting" and "also ends above the values the data's rewards allow" in (
        result.explanation
    )


def test_rising_q_and_falling_td_error_are_fine_and_the_last_checkpoint_is_deployed():
    result = diagnose(stats([1, 2, 3, 4], [40.0, 20.0, 5.0, 1.0]))
    assert result.verdict == "fine" and result.recommended_step == 4000


def test_offrl_workflow_reads_every_checkpoint_of_a_run(tmp_path, capsys):
    from offrl.cli import main
    from offrl.train import TrainConfig, train

    train(TrainConfig(steps=300, checkpoint_interval=100, keep_checkpoints=0, eval_interval=0, eval_episodes=1,
                      output_dir=str(tmp_path), run_name="r", progress=False))  # fmt: skip
    assert main(["workflow", str(tmp_path / "r"), "--max-rows", "2000", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert [c["step"] for c in record["checkpoints"]] == [100, 200, 300]
    assert all(np.isfinite(c["dataset_q"]) and c["td_error"] >= 0 for c in record["checkpoints"])
    assert record["verdict"] in ("overfitting", "underfitting", "diverging", "fine")

    # the value bounds come from the rewards as the run transformed them (IQL's locomotion scaling), not raw ones
    from offrl.data import Transforms
    from offrl.data.builtin import load_builtin
    from offrl.train.checkpoint import list_checkpoints, read_metadata

    data, _ = load_builtin("pendulum-mixed")
    transforms = Transforms.from_json(read_metadata(list_checkpoints(tmp_path / "r" / "checkpoints")[0])["transforms"])
    scaled = transforms.apply(data)["rewards"]
    assert not np.allclose(scaled, data.rewards)
    first = record["checkpoints"][0]
    assert np.allclose((first["value_low"], first["value_high"]), value_bounds(scaled, 0.99), rtol=1e-5)
    assert not np.allclose((first["value_low"], first["value_high"]), value_bounds(data.rewards, 0.99), rtol=1e-2)

    assert main(["workflow", str(tmp_path / "r"), "--max-rows", "2000"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-4].startswith("values the data's rewards allow: [")
    assert lines[-3].startswith(f"verdict: {record['verdict']}: ")
    assert lines[-2] == f"recommended checkpoint: step {record['recommended_step']}"
    assert lines[-1] == f"advice: {record['advice']}"


def test_the_workflow_reads_a_discrete_q_network_at_the_logged_actions(tmp_path):
    """Discrete CQL (a Q-network over all actions, no critic ensemble): the dataset Q is the logged action's entry,
    and the TD error uses the checkpoint's own greedy action at the next state."""
    import jax

    from offrl.algos import get_algorithm
    from offrl.algos.base import Spec
    from offrl.algos.cql_discrete import networks
    from offrl.data import from_arrays, save_dataset
    from offrl.ope.workflow import checkpoint_statistics
    from offrl.train import TrainConfig, train
    from offrl.train.checkpoint import list_checkpoints, load_checkpoint, read_metadata
    from offrl.train.offline import _config_from_json

    rng = np.random.default_rng(0)
    n = 400
    observations = rng.normal(size=(n + 1, 4)).astype(np.float32)
    actions = rng.integers(0, 2, size=n)
    terminals = np.zeros(n, bool)
    terminals[[199, n - 1]] = True
    data = from_arrays(observations[:-1], actions, np.ones(n, np.float32), terminals,
                       next_observations=observations[1:])  # fmt: skip
    save_dataset(data, tmp_path / "data.npz")
    train(TrainConfig(algo="cql-discrete", dataset=str(tmp_path / "data.npz"), task="cartpole", steps=200,
                      checkpoint_interval=100, keep_checkpoints=0, eval_interval=0, eval_episodes=1,
                      output_dir=str(tmp_path), run_name="r", progress=False))  # fmt: skip
    stats = checkpoint_statistics(tmp_path / "r", data)
    assert [s.step for s in stats] == [100, 200]
    assert np.allclose((stats[0].value_low, stats[0].value_high), (1.0, 100.0))  # reward 1 per step, gamma 0.99

    last = list_checkpoints(tmp_path / "r" / "checkpoints")[-1]
    meta = read_metadata(last)
    algo = get_algorithm("cql-discrete")
    config = _config_from_json(algo.config_class, meta["algo_config"])
    template = algo.init(jax.random.PRNGKey(0), Spec.from_json(meta["spec"]), config)
    state, _ = load_checkpoint(last, template, part="agent")
    q_net = networks(config, state.spec).q
    q_all = np.asarray(q_net.apply(state.params, data.observations))
    q = q_all[np.arange(n), actions]
    next_q = np.asarray(q_net.apply(state.params, data.next_observations)).max(axis=1)  # its own greedy action
    target = 1.0 + 0.99 * (1.0 - terminals) * next_q
    assert np.isclose(stats[-1].dataset_q, q.mean(), rtol=1e-4)
    assert np.isclose(stats[-1].td_error, np.square(q - target).mean(), rtol=1e-3)
