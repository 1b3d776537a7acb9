r"""MOORL: Meta Offline-Online RL (Chaudhary, Mondal & Behera, "MOORL: A Framework for Integrating Offline-Online
Reinforcement Learning", TMLR 2025, arXiv:2506.09574; no official code), registered as ``moorl``.

SAC (``offrl/algos/sac.py``, unchanged) trained from scratch on an offline buffer and an online one, with a
Reptile-style meta-learner over the two data sources instead of mixing them in each batch. Training runs in
meta-epochs; each one

1. picks its source at random: the offline data with probability ``offline_probability``, else the online replay;
2. starts the actor and critics from the meta-parameters :math:`(\phi_{meta}, \theta_{meta})`;
3. takes ``inner_steps`` SAC steps on minibatches from that source;
4. moves the meta-parameters towards the adapted ones:
   :math:`\phi_{meta} \leftarrow \phi_{meta} + \beta_{meta}(\phi - \phi_{meta})`, the same for :math:`\theta`.

The agent acts with the meta-policy: at the end of each meta-epoch the actor and critics are reset to the new
meta-parameters, which the next epoch adapts from. No ensemble, no high update-to-data ratio:
the paper's point is a stable Q-function at SAC's cost.

In offrl it runs inside ``offrl finetune`` with the usual 50/50 mixed batches (``--offline-steps 0
--offline-fraction 0.5 --updates-per-step K``, with K = ``inner_steps``, so one meta-epoch per environment step as in
the paper's Algorithm 1): each update keeps the half of its batch that comes from the meta-epoch's source (the rows'
``from_data`` flags; with a 50/50 mixture that half is exactly the source's rows) and runs SAC's update on it.

What the public description leaves open, and offrl's choice for each (the paper's hyperparameter values were not
available to us; these are defaults to tune, not the paper's):
- ``inner_steps`` K = 4, ``meta_lr`` beta_meta = 0.5, ``offline_probability`` = 0.5;
- the inner optimiser's (Adam) state, the target critics and the temperature persist across meta-epochs (only actor
  and critic parameters are meta-learned), and the target critics keep their Polyak updates;
- no conservatism on offline batches (one AI summary mentions BCQ/BEAR-style suppression; the paper's algorithm
  box does not);
- the algorithm box writes the outer step as a gradient step on the meta-parameters; offrl implements the Reptile
  step the method description gives.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
from flax import struct

from offrl.algos import sac
from offrl.algos.base import Algorithm, Batch, Metrics, Spec, config_field, require
from offrl.nn.updates import copy_tree


@dataclass(frozen=True)
class MOORLConfig(sac.SACConfig):
    inner_steps: int = config_field(4, "SAC steps per meta-epoch (K; give the same to --updates-per-step)")
    meta_lr: float = config_field(0.5, "Reptile step of the meta-parameters towards the adapted ones (beta_meta)")
    offline_probability: float = config_field(0.5, "probability that a meta-epoch trains on the offline data")

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.inner_steps >= 1, f"inner_steps must be >= 1, got {self.inner_steps}")
        require(0.0 < self.meta_lr <= 1.0, f"meta_lr must be in (0, 1], got {self.meta_lr}")
        require(0.0 <= self.offline_probability <= 1.0, "offline_probability must be in [0, 1]")


class MOORLState(struct.PyTreeNode):
    inner: sac.SACState  # the adapted SAC agent of the current meta-epoch
    meta_actor_params: dict
    meta_critic_params: dict
    offline_source: jax.Array  # 1.0: this meta-epoch trains on the offline data, 0.0: on the online replay
    step: jax.Array
    rng: jax.Array
    config: MOORLConfig = struct.field(pytree_node=False)
    spec: Spec = struct.field(pytree_node=False)


def init(key: jax.Array, spec: Spec, config: MOORLConfig) -> MOORLState:
    inner_key, source_key, key = jax.random.split(key, 3)
    inner = sac.init(inner_key, spec, config)
    return MOORLState(
        inner=inner,
        meta_actor_params=copy_tree(inner.actor_params),  # separate buffers (the trainer donates the state)
        meta_critic_params=copy_tree(inner.critic_params),
        offline_source=jax.random.bernoulli(source_key, config.offline_probability).astype(jnp.float32),
        step=jnp.zeros((), jnp.int32),
        rng=key,
        config=config,
        spec=spec,
    )


def source_rows(batch: Batch, offline: jax.Array, key: jax.Array) -> Batch:
    """Half of the batch, the rows of the chosen source first (random order among them); rows without a
    ``from_data`` flag (offline training) all count as offline data."""
    n = batch["rewards"].shape[0]
    from_data = batch.get("from_data", jnp.ones(n))
    other = jnp.where(offline > 0, 1.0 - from_data, from_data)  # 1 where the row is from the other source
    order = jnp.argsort(other + 0.5 * jax.random.uniform(key, (n,)))
    keep = order[: max(n // 2, 1)]
    return {name: value[keep] for name, value in batch.items()}


def reptile(meta: dict, adapted: dict, rate: float) -> dict:
    return jax.tree_util.tree_map(lambda m, a: m + rate * (a - m), meta, adapted)


def update(state: MOORLState, batch: Batch) -> tuple[MOORLState, Metrics]:
    config = state.config
    rng, rows_key, source_key = jax.random.split(state.rng, 3)
    rows = source_rows(batch, state.offline_source, rows_key)
    inner, metrics = sac.update(state.inner, rows)
    metrics["moorl/offline_source"] = state.offline_source
    metrics["moorl/source_share"] = (rows.get("from_data", jnp.ones(1)) == state.offline_source).mean()

    def end_of_meta_epoch(_):
        meta_actor = reptile(state.meta_actor_params, inner.actor_params, config.meta_lr)
        meta_critic = reptile(state.meta_critic_params, inner.critic_params, config.meta_lr)
        source = jax.random.bernoulli(source_key, config.offline_probability).astype(jnp.float32)
        return inner.replace(actor_params=meta_actor, critic_params=meta_critic), meta_actor, meta_critic, source

    def within(_):
        return inner, state.meta_actor_params, state.meta_critic_params, state.offline_source

    done = (state.step + 1) % config.inner_steps == 0
    inner, meta_actor, meta_critic, source = jax.lax.cond(done, end_of_meta_epoch, within, None)
    new_state = state.replace(
        inner=inner,
        meta_actor_params=meta_actor,
        meta_critic_params=meta_critic,
        offline_source=source,
        step=state.step + 1,
        rng=rng,
    )
    return new_state, metrics


def act(state: MOORLState, observations: jax.Array, key: jax.Array, deterministic: bool = True) -> jax.Array:
    return sac.act(state.inner, observations, key, deterministic)


ALGORITHM = Algorithm(
    name="moorl",
    description="MOORL (Chaudhary et al. 2025): SAC with a Reptile meta-learner over offline and online data",
    config_class=MOORLConfig,
    init=init,
    update=update,
    act=act,
    extra_columns=("from_data",),
)
