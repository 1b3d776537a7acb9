"""FamO2O: the encoding of beta, the balance model's range, and what changes online."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np

from offrl.algos.base import Spec, finetuning_configs
from offrl.algos.famo2o import ALGORITHM, FamO2OConfig, balance, encode, init


def test_the_encoding_is_the_official_sin_cos_one():
    beta = np.array([1.0, 2.5, 5.0])
    i = np.arange(0, 3)  # d = 6
    inner = beta[:, None] / (10000.0 ** (2 * i / 6))
    expected = np.empty((3, 6))
    expected[:, 0::2], expected[:, 1::2] = np.sin(inner), np.cos(inner)
    np.testing.assert_allclose(encode(jnp.asarray(beta), 6, 10000.0), expected, rtol=1e-6, atol=1e-6)


def test_the_balance_model_picks_betas_within_the_range():
    config = FamO2OConfig(hidden_dims=(16, 16), beta_min=8.0, beta_max=14.0, cosine_decay=False)
    state = init(jax.random.PRNGKey(0), Spec((4,), 2), config)
    betas = balance(state, jax.random.normal(jax.random.PRNGKey(1), (64, 4)) * 10)
    assert betas.shape == (64,) and float(betas.min()) >= 8.0 and float(betas.max()) <= 14.0


def test_fine_tuning_trains_the_actor_at_the_balance_models_betas_online():
    offline, online = finetuning_configs(ALGORITHM, FamO2OConfig(), 1000, 1000)
    assert offline.random_beta and not online.random_beta
    assert not offline.cosine_decay and not online.cosine_decay  # the official fine-tuning configs
    json.dumps(online.__dict__)  # recorded in config.json
