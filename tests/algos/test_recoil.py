"""ReCOIL's pieces: the expert batch comes from the demonstration rows only; the bounded critic targets."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offrl.algos.base import Spec
from offrl.algos.recoil import ALGORITHM, ReCOILConfig, critic_loss, expert_batch, mixture_target, networks


def test_the_expert_batch_holds_demonstration_rows_only():
    n = 500
    flags = np.zeros(n, np.float32)
    flags[[3, 77, 450]] = 1.0
    data = {"observations": jnp.arange(n, dtype=jnp.float32)[:, None], "actions": jnp.zeros((n, 1))}
    rows = jnp.asarray(np.flatnonzero(flags), jnp.int32)
    drawn = np.asarray(expert_batch(jax.random.PRNGKey(0), rows, data, 256)["observations"][:, 0]).astype(int)
    assert set(drawn) == {3, 77, 450}


def test_targets_are_bounded_as_in_ls_iq():
    config = ReCOILConfig()  # r_E = 2, r_M = -2, gamma 0.99: targets 200 and -200
    next_v = jnp.asarray([10.0, 10.0])
    target = mixture_target(next_v, jnp.asarray([0.0, 1.0]), config)
    np.testing.assert_allclose(np.asarray(target), [-2.0 + 0.99 * 10.0, -200.0], rtol=1e-6)
    # critics sitting at the targets have zero loss: expert pairs at r_E / (1 - gamma), mixture pairs at y
    nets = networks(config, Spec((1,), 1))
    params = nets.critic.init(jax.random.PRNGKey(0), jnp.zeros((1, 1)), jnp.zeros((1, 1)))
    batch = {"observations": jnp.zeros((2, 1)), "actions": jnp.zeros((2, 1)), "is_expert": jnp.zeros(2)}
    q = nets.critic.apply(params, batch["observations"], batch["actions"])
    loss, _ = critic_loss(params, nets, batch, batch, q[0], config)
    expected = 0.5 * ((q - 200.0) ** 2).mean(-1) + 0.5 * ((q - q[0]) ** 2).mean(-1)
    np.testing.assert_allclose(float(loss), float(expected.sum()), rtol=1e-5)


def test_recoil_update_alone_names_what_it_needs():
    with pytest.raises(TypeError, match="expert batches"):
        ALGORITHM.update(None, {})
    with pytest.raises(ValueError, match="no row of the training set is marked as expert"):
        ALGORITHM.bind_dataset(ReCOILConfig(), {"is_expert": np.zeros(4, np.float32)})
