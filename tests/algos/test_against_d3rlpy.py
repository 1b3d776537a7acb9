"""offrl's TD3+BC update is d3rlpy's TD3+BC update: the same weights and batch give the same networks after two steps.

The hopper table (BENCHMARKS.md) shows d3rlpy's TD3+BC above offrl's on some files, with bimodal seeds. This test
separates the algorithm from everything else: it copies d3rlpy's freshly initialised networks into offrl's state,
feeds both libraries the same two batches (target smoothing noise off, the only random draw in the update), and
compares every parameter afterwards: actor, both critics, and their targets.

Needs d3rlpy (``pip install 'offrl[bench]'``); skipped otherwise, so CI does not run it.

Step numbering: the paper's code (and offrl) updates the actor when ``total_it % policy_freq == 0`` after incrementing,
i.e. on the 2nd, 4th, ... step; d3rlpy when ``grad_step % interval == 0`` before incrementing, i.e. on its 1st, 3rd,
... step. Passing d3rlpy grad steps 1 and 2 aligns the two: critics only, then critics, actor and targets.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offrl.algos.base import Spec
from offrl.algos.td3bc import TD3BCConfig, networks
from offrl.algos.td3bc import init as td3bc_init
from offrl.algos.td3bc import update as td3bc_update

HIDDEN = (32, 32)
OBS_DIM, ACT_DIM, BATCH = 5, 2, 64


def torch_linears(module) -> list[tuple[np.ndarray, np.ndarray]]:
    """(kernel [in, out], bias) of every ``nn.Linear`` in ``module``, in order of registration."""
    import torch

    return [
        (m.weight.detach().numpy().T.copy(), m.bias.detach().numpy().copy())
        for m in module.modules()
        if isinstance(m, torch.nn.Linear)
    ]


def flax_params(linears: list[tuple[np.ndarray, np.ndarray]]) -> dict:
    """offrl's MLP parameter tree (``MLP_0/Dense_i``) holding the given layers."""
    dense = {f"Dense_{i}": {"kernel": jnp.asarray(k), "bias": jnp.asarray(b)} for i, (k, b) in enumerate(linears)}
    return {"params": {"MLP_0": dense}}


def ensemble_params(members: list[list[tuple[np.ndarray, np.ndarray]]]) -> dict:
    """An offrl critic ensemble's tree: every leaf stacked over members on axis 0."""
    trees = [flax_params(layers) for layers in members]
    return jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *trees)


def assert_trees_close(ours: dict, theirs: dict, what: str) -> None:
    """Same tree structure, and every leaf equal to float32 rounding."""
    assert jax.tree_util.tree_structure(ours) == jax.tree_util.tree_structure(theirs), what
    for (path, a), b in zip(
        jax.tree_util.tree_flatten_with_path(ours)[0], jax.tree_util.tree_leaves(theirs), strict=True
    ):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6, err_msg=f"{what}: {path}")


def test_td3bc_two_updates_match_d3rlpy():
    d3rlpy = pytest.importorskip("d3rlpy")
    import torch

    torch.manual_seed(0)
    algo = d3rlpy.algos.TD3PlusBCConfig(
        actor_learning_rate=3e-4,
        critic_learning_rate=3e-4,
        batch_size=BATCH,
        gamma=0.99,
        tau=0.005,
        target_smoothing_sigma=0.0,
        target_smoothing_clip=0.5,
        alpha=2.5,
        update_actor_interval=2,
        actor_encoder_factory=d3rlpy.models.VectorEncoderFactory(list(HIDDEN)),
        critic_encoder_factory=d3rlpy.models.VectorEncoderFactory(list(HIDDEN)),
    ).create(device="cpu:0")
    algo.create_impl((OBS_DIM,), ACT_DIM)
    modules = algo.impl._modules

    config = TD3BCConfig(hidden_dims=HIDDEN, policy_noise=0.0, normalize_observations=False)
    state = td3bc_init(jax.random.PRNGKey(0), Spec((OBS_DIM,), ACT_DIM), config)
    actor = flax_params(torch_linears(modules.policy))
    critic = ensemble_params([torch_linears(q) for q in modules.q_funcs])
    # d3rlpy's networks have offrl's layout: same layers, same order of the (observation, action) concatenation
    assert jax.tree_util.tree_structure(state.actor_params) == jax.tree_util.tree_structure(actor)
    assert jax.tree_util.tree_structure(state.critic_params) == jax.tree_util.tree_structure(critic)
    nets = networks(config, state.spec)
    state = state.replace(
        actor_params=actor,
        target_actor_params=flax_params(torch_linears(modules.targ_policy)),
        critic_params=critic,
        target_critic_params=ensemble_params([torch_linears(q) for q in modules.targ_q_funcs]),
        actor_opt=nets.actor_tx.init(actor),
        critic_opt=nets.critic_tx.init(critic),
    )

    rng = np.random.default_rng(0)
    update = jax.jit(td3bc_update)
    for grad_step in (1, 2):
        batch = {
            "observations": rng.normal(size=(BATCH, OBS_DIM)).astype(np.float32),
            "actions": rng.uniform(-1, 1, size=(BATCH, ACT_DIM)).astype(np.float32),
            "rewards": rng.normal(size=BATCH).astype(np.float32),
            "next_observations": rng.normal(size=(BATCH, OBS_DIM)).astype(np.float32),
            "terminals": (rng.uniform(size=BATCH) < 0.1).astype(np.float32),
        }
        torch_batch = d3rlpy.torch_utility.TorchMiniBatch(
            observations=torch.tensor(batch["observations"]),
            actions=torch.tensor(batch["actions"]),
            rewards=torch.tensor(batch["rewards"][:, None]),
            next_observations=torch.tensor(batch["next_observations"]),
            next_actions=torch.zeros(BATCH, ACT_DIM),
            returns_to_go=torch.zeros(BATCH, 1),
            terminals=torch.tensor(batch["terminals"][:, None]),
            intervals=torch.ones(BATCH, 1),
            device="cpu:0",
        )
        theirs = algo.impl.update(torch_batch, grad_step)
        state, ours = update(state, {k: jnp.asarray(v) for k, v in batch.items()})
        # d3rlpy's critic loss is the same sum over both critics of their mean squared TD errors
        np.testing.assert_allclose(float(ours["critic/loss"]), theirs["critic_loss"], rtol=1e-4)
        if grad_step == 2:
            np.testing.assert_allclose(float(ours["actor/loss"]), theirs["actor_loss"], rtol=1e-4)
            np.testing.assert_allclose(float(ours["actor/bc_loss"]), theirs["bc_loss"], rtol=1e-4)

    assert_trees_close(state.actor_params, flax_params(torch_linears(modules.policy)), "actor")
    assert_trees_close(state.target_actor_params, flax_params(torch_linears(modules.targ_policy)), "target actor")
    assert_trees_close(state.critic_params, ensemble_params([torch_linears(q) for q in modules.q_funcs]), "critics")
    assert_trees_close(
        state.target_critic_params,
        ensemble_params([torch_linears(q) for q in modules.targ_q_funcs]),
        "target critics",
    )
    # the two steps moved the networks: the comparison is not between two untouched copies
    moved = jax.tree_util.tree_map(lambda a, b: float(jnp.abs(a - b).max()), state.actor_params, actor)
    assert max(jax.tree_util.tree_leaves(moved)) > 1e-4
