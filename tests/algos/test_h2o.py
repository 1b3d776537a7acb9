"""H2O: the discriminators estimate the dynamics gap; the update runs on mixed real + simulated batches."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from offrl.algos.base import Spec, training_update
from offrl.algos.h2o import ALGORITHM, H2OConfig, discriminator_loss, init, log_sim_over_real, networks


def transitions(rng, n, shift):
    """s' = s + 0.1 a + N(0, 0.1^2), plus ``shift`` on the first coordinate (the simulator's gap)."""
    s = rng.standard_normal((n, 3)).astype(np.float32)
    a = rng.uniform(-1, 1, (n, 2)).astype(np.float32)
    mean = s + 0.1 * np.pad(a, ((0, 0), (0, 1)))
    mean[:, 0] += shift
    return s, a, (mean + 0.1 * rng.standard_normal((n, 3))).astype(np.float32), mean


def test_the_discriminators_recover_a_known_dynamics_gap():
    """Real and simulated dynamics differ by a shift of 0.2 in one coordinate of s'; after training on labelled
    batches, the estimated log P_sim/P_real of held-out transitions correlates with the true one."""
    config = H2OConfig(hidden_dims=(64, 64), discriminator_noise=0.0, discriminator_lr=1e-3)
    spec = Spec((3,), 2)
    nets, state = networks(config, spec), init(jax.random.PRNGKey(0), spec, config)
    params = (state.d_sa_params, state.d_sas_params)
    tx = optax.adam(config.discriminator_lr)
    opt = tx.init(params)
    rng = np.random.default_rng(0)

    @jax.jit
    def step(params, opt, batch, real, key):
        grads, _ = jax.grad(discriminator_loss, has_aux=True)(params, nets, batch, real, key, 0.0)
        updates, opt = tx.update(grads, opt)
        return optax.apply_updates(params, updates), opt

    key = jax.random.PRNGKey(1)
    for _ in range(1500):
        real_part, sim_part = transitions(rng, 128, 0.0), transitions(rng, 128, 0.2)
        batch = {
            "observations": np.concatenate([real_part[0], sim_part[0]]),
            "actions": np.concatenate([real_part[1], sim_part[1]]),
            "next_observations": np.concatenate([real_part[2], sim_part[2]]),
        }
        key, sub = jax.random.split(key)
        params, opt = step(params, opt, batch, jnp.repeat(jnp.asarray([1.0, 0.0]), 128), sub)
    s, a, s2, _ = transitions(rng, 2000, 0.1)  # between the two: both dynamics are plausible
    estimated = np.asarray(log_sim_over_real(nets, params[0], params[1], s, a, s2))
    real_mean = s + 0.1 * np.pad(a, ((0, 0), (0, 1)))
    sim_mean = real_mean.copy()
    sim_mean[:, 0] += 0.2
    true = (np.square(s2[:, 0] - real_mean[:, 0]) - np.square(s2[:, 0] - sim_mean[:, 0])) / (2 * 0.1**2)
    assert np.corrcoef(estimated, true)[0, 1] > 0.6


def test_an_update_on_a_mixed_batch_is_finite_and_weights_only_the_simulated_rows():
    config = H2OConfig(hidden_dims=(16, 16))
    spec = Spec((3,), 2)
    rng = np.random.default_rng(0)
    real_part, sim_part = transitions(rng, 32, 0.0), transitions(rng, 32, 0.5)
    batch = {
        "observations": jnp.asarray(np.concatenate([real_part[0], sim_part[0]])),
        "actions": jnp.asarray(np.concatenate([real_part[1], sim_part[1]])),
        "rewards": jnp.ones(64),
        "terminals": jnp.zeros(64),
        "next_observations": jnp.asarray(np.concatenate([real_part[2], sim_part[2]])),
        "from_data": jnp.repeat(jnp.asarray([1.0, 0.0]), 32),
    }
    update = training_update(ALGORITHM, config, batch)
    state, metrics = jax.jit(update)(init(jax.random.PRNGKey(0), spec, config), batch, batch)
    assert all(np.isfinite(float(v)) for v in metrics.values())
    assert float(metrics["h2o/real_fraction"]) == 0.5
    assert 1e-5 <= float(metrics["h2o/sim_weight"]) <= 1.0
