"""Algorithms learn. The fast test runs in CI; the slow ones (``python -m pytest -m slow``) take minutes."""

from __future__ import annotations

import pytest

from offrl.train import TrainConfig, train
from tests.conftest import SHARED_DATA, needs_shared


def test_iql_beats_the_behaviour_data_of_the_builtin_default(tmp_path):
    """The main job, shortened: IQL on pendulum-mixed (behaviour score ~62) reaches a clearly higher score."""
    result = train(TrainConfig(steps=4000, eval_interval=0, eval_episodes=10, output_dir=str(tmp_path), progress=False))
    assert result.behaviour_normalized_score is not None and result.final_evaluation is not None
    assert result.final_evaluation.normalized_mean > result.behaviour_normalized_score + 20


@pytest.mark.parametrize(
    "algo, options, steps",
    [
        ("awac", {}, 3000),  # its defaults: 100.7 after 3000 updates (seed 0)
        ("riql", {}, 3000),  # its defaults: 100.5 after 3000 updates
        # the rest take 30-60 s each on 2 cores: the slow set (python -m pytest -m slow)
        pytest.param("edac", {"num_critics": 5, "hidden_dims": (256, 256)}, 3000, marks=pytest.mark.slow),  # 100.5
        pytest.param("sac-n", {"num_critics": 5, "hidden_dims": (256, 256)}, 3000, marks=pytest.mark.slow),
        # rebrac, its defaults (batch 256 here): 47.0 after 3000 updates, 99.9 after 4000
        pytest.param("rebrac", {}, 5000, marks=pytest.mark.slow),
        # f-dvl, chi-square, its MuJoCo defaults: 96.5 after 3000 updates, 92.6 after 4000
        pytest.param("f-dvl", {}, 4000, marks=pytest.mark.slow),
        # prdc, its defaults (KD-tree): 98.1 after 4000 updates, 101.4 after 5000 (TD3+BC 84.7)
        pytest.param("prdc", {}, 5000, marks=pytest.mark.slow),
        pytest.param(  # its defaults: 78.8 / 100.5 / 102.0 after 2000 / 3000 / 4000 updates; ~45 s: slow set
            "famo2o", {}, 4000, marks=pytest.mark.slow
        ),
    ],
)
def test_more_offline_algorithms_beat_the_behaviour_data_of_the_builtin_default(tmp_path, algo, options, steps):
    """pendulum-mixed (behaviour ~62): well above the data within a few thousand updates. EDAC / SAC-N with 5
    critics of 2x256 (their defaults, 10 of 3x256, cost ~3x more; the mechanism is the same)."""
    from offrl.algos import get_algorithm

    config = TrainConfig(algo=algo, steps=steps, eval_interval=0, output_dir=str(tmp_path), progress=False)
    result = train(config, get_algorithm(algo).config_class(**options))
    assert result.final_evaluation.normalized_mean > result.behaviour_normalized_score + 20


@pytest.mark.slow
def test_cql_beats_the_behaviour_data_of_the_builtin_default(tmp_path):
    """CQL with its paper defaults (3x256 networks, 10 sampled actions per proposal) on pendulum-mixed (behaviour
    ~62): 94.6 after 2000 updates, 100.8 after 3000 (seed 0). An update costs ~20 IQL updates (30 extra Q
    evaluations per state), so this takes ~5 minutes on one core: slow set. (2x64 networks do not learn it in 3000
    updates: 33.6.)"""
    result = train(TrainConfig(algo="cql", steps=3000, eval_interval=0, output_dir=str(tmp_path), progress=False))
    assert result.final_evaluation.normalized_mean > result.behaviour_normalized_score + 20


def test_discrete_cql_learns_cartpole_from_the_expert_logs(tmp_path):
    """Discrete CQL on the external CartPole expert logs (495 mean return): 500 after 1000 updates (seed 0)."""
    if not (SHARED_DATA / "external" / "expert_cartpole.npz").exists():
        pytest.skip("../shared/data is not beside this checkout")
    config = TrainConfig(
        algo="cql-discrete",
        dataset=str(SHARED_DATA / "external" / "expert_cartpole.npz"),
        task="cartpole",
        steps=2000,
        eval_interval=0,
        eval_episodes=5,
        output_dir=str(tmp_path),
        progress=False,
    )
    assert train(config).final_evaluation.mean > 450


def test_bc_clones_the_cartpole_expert(tmp_path):
    pytest.importorskip("gymnasium")
    if not (SHARED_DATA / "external" / "expert_cartpole.npz").exists():
        pytest.skip("../shared/data is not beside this checkout")
    result = train(
        TrainConfig(
            algo="bc",
            dataset=str(SHARED_DATA / "external" / "expert_cartpole.npz"),
            task="cartpole",
            steps=2000,
            eval_interval=0,
            eval_episodes=5,
            output_dir=str(tmp_path),
            progress=False,
        )
    )
    assert result.final_evaluation.mean > 450


@pytest.mark.slow  # 4-5 minutes on a 2-core CI machine
def test_sac_solves_pendulum_within_20k_environment_steps(tmp_path):
    """Online SAC with the paper's settings: mean return >= -250 on Pendulum-v1 (10 evaluation episodes) after 20k
    environment steps (1k of them uniform random warm-up). 2.5-4 minutes on one core."""
    from offrl.train.online import OnlineConfig, train_online

    result = train_online(
        OnlineConfig(
            algo="sac",
            task="pendulum",
            steps=20_000,
            warmup_steps=1_000,
            eval_interval=0,
            eval_episodes=10,
            output_dir=str(tmp_path),
            progress=False,
        )
    )
    assert result.final_evaluation is not None and result.final_evaluation.mean >= -250


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["td3bc", "iql"])
def test_full_main_job_per_algorithm(tmp_path, algo):
    result = train(TrainConfig(algo=algo, output_dir=str(tmp_path), progress=False))
    assert result.final_evaluation.normalized_mean > result.behaviour_normalized_score + 25


@pytest.mark.slow
@needs_shared
@pytest.mark.parametrize("algo", ["td3bc", "iql"])
def test_hopper_medium_beats_behaviour_cloning_scale(tmp_path, algo):
    """50k updates on hopper-medium (behaviour 49.8): TD3+BC and IQL reach at least the behaviour level."""
    result = train(
        TrainConfig(
            algo=algo,
            dataset=str(SHARED_DATA / "hopper-medium.hdf5"),
            task="hopper",
            steps=50_000,
            eval_interval=0,
            eval_episodes=5,
            output_dir=str(tmp_path),
            progress=False,
        )
    )
    assert result.final_evaluation.normalized_mean > 45


@pytest.mark.slow
def test_recoil_imitates_the_expert_hidden_in_mixed_data(tmp_path):
    """ReCOIL's setting (its paper: D4RL random/medium data with expert trajectories mixed in, plus one expert
    trajectory given as demonstrations), on Pendulum: the data is pendulum-random plus all of pendulum-expert,
    unlabelled (behaviour 50.2); the demonstrations are 5 expert episodes (1000 transitions). No rewards are used.
    Behaviour cloning on the data: 36.6. ReCOIL (beta 10): -9.1 / 9.5 / 79.5 / 81.1 / 86.2 / 101.1 after
    5k-30k updates (seed 0); beta 3 had not learned after 6k. ~2 minutes: slow set."""
    from offrl.algos.recoil import ReCOILConfig
    from offrl.data import concatenate, save_dataset
    from offrl.train.offline import resolve_dataset

    mixed = tmp_path / "random-plus-expert.npz"
    save_dataset(concatenate([resolve_dataset(n).dataset for n in ("pendulum-random", "pendulum-expert")]), mixed)
    common = dict(dataset=str(mixed), task="pendulum", eval_interval=0, output_dir=str(tmp_path), progress=False)
    bc = train(TrainConfig(algo="bc", steps=3000, run_name="bc", **common))
    recoil = train(
        TrainConfig(
            algo="recoil", steps=15000, run_name="recoil", expert_dataset="pendulum-expert", expert_episodes=5,
            **common,
        ),
        ReCOILConfig(beta=10.0),
    )  # fmt: skip
    assert recoil.final_evaluation.normalized_mean > bc.final_evaluation.normalized_mean + 20


@pytest.mark.slow
def test_iql_fine_tuning_improves_on_its_offline_policy(tmp_path):
    """Offline-to-online (offrl finetune): IQL on pendulum-random for 5k updates scores 60.9 at the switch; 10k
    online steps with half-offline batches reach 100.8 after 2.5k and 101.1 at the end (seed 0, 2026-11-27).
    ~2 minutes: slow set."""
    from offrl.train.finetune import FinetuneConfig, finetune

    config = FinetuneConfig(
        algo="iql", dataset="pendulum-random", offline_steps=5000, online_steps=10000, eval_interval=2500,
        checkpoint_interval=5000, output_dir=str(tmp_path), run_name="ft", progress=False,
    )  # fmt: skip
    summary = finetune(config).summary
    assert summary["final"] > summary["score_at_switch"] + 20 and summary["final"] > 90


@pytest.mark.slow
def test_rlpd_learns_faster_with_prior_data(tmp_path):
    """RLPD (offrl finetune --algo rlpd --offline-steps 0): online SAC with a LayerNorm ensemble of 10, UTD 4,
    200 random warm-up steps. With pendulum-expert as prior data in half of every batch it scores 77.1 after 800
    environment steps; the same learner without the data (offline fraction 0) 22.4 (seed 0, 2026-11-27).
    ~2 minutes: slow set."""
    from offrl.algos.rlpd import RLPDConfig
    from offrl.train.finetune import FinetuneConfig, finetune

    def run(fraction: float) -> float:
        config = FinetuneConfig(
            algo="rlpd", dataset="pendulum-expert", offline_steps=0, online_steps=800, updates_per_step=4,
            warmup_steps=200, offline_fraction=fraction, eval_interval=200, eval_episodes=5,
            output_dir=str(tmp_path), run_name=f"rlpd-{fraction}", progress=False,
        )  # fmt: skip
        return finetune(config, RLPDConfig(actor_every=4)).summary["final"]

    with_data, without = run(0.5), run(0.0)
    assert with_data > without + 20, (with_data, without)


@pytest.mark.slow
def test_pa_rl_learns_from_random_data_with_its_cpu_sized_action_optimisation(tmp_path):
    """PA-RL (2 critics, m=8 base samples, k=4 kept, T=3 gradient steps) on pendulum-random (behaviour ~0): 92.6 after
    2000 updates, 99.5 after 3000 (seed 0, offline phase of benchmarks/finetune_table.py)."""
    from offrl.algos.parl import PARLConfig

    config = TrainConfig(algo="pa-rl", dataset="pendulum-random", steps=3000, eval_interval=0, output_dir=str(tmp_path),
                         progress=False)  # fmt: skip
    result = train(config, PARLConfig(num_critics=2, num_base_actions=8, num_keep=4, opt_steps=3))
    assert result.final_evaluation.normalized_mean > result.behaviour_normalized_score + 50


@pytest.mark.slow
def test_resfit_improves_a_poor_cloned_policy_on_the_sparse_pendulum(tmp_path):
    """ResFiT on pendulum-sparse-demos: the cloned base scores 60.1 at the switch, the base plus the learned residual
    94.5 after 6000 online steps (seed 0)."""
    from offrl.train.finetune import FinetuneConfig, finetune

    config = FinetuneConfig(algo="resfit", dataset="pendulum-sparse-demos", offline_steps=2000, online_steps=6000,
                            eval_interval=2000, eval_episodes=20, output_dir=str(tmp_path), progress=False)  # fmt: skip
    summary = finetune(config).summary
    assert summary["final"] > summary["score_at_switch"] + 20


@pytest.mark.slow
def test_ro2o_beats_the_behaviour_data_of_the_builtin_default(tmp_path):
    """RO2O with 5 critics of 2x256 and 5 perturbations (its defaults, 10 of 3x256 and 20, cost ~6x more) on
    pendulum-mixed (behaviour ~62): 45.5 after 2000 updates, 100.5 after 3000 (seed 0)."""
    from offrl.algos.ro2o import RO2OConfig

    config = TrainConfig(algo="ro2o", steps=3000, eval_interval=0, output_dir=str(tmp_path), progress=False)
    result = train(config, RO2OConfig(num_critics=5, num_perturbations=5, hidden_dims=(256, 256)))
    assert result.final_evaluation.normalized_mean > result.behaviour_normalized_score + 20
