r"""PRDC: Policy Regularization with Dataset Constraint (Ran, Li, Zhang, Zhang & Yu, "Policy Regularization with
Dataset Constraint for Offline Reinforcement Learning", ICML 2023, arXiv:2306.06569). Official code:
github.com/LAMDA-RL/PRDC.

TD3+BC whose behaviour-cloning target is not the batch's own action but the action of the dataset row nearest to
the policy's choice in a joint (scaled state, action) space:

.. math::

    (\hat s, \hat a) &= \arg\min_{(s_i, a_i) \in D}
        \big\lVert (\beta s \oplus \pi_\phi(s)) - (\beta s_i \oplus a_i) \big\rVert_2 \\
    L_\pi(\phi) &= -\lambda\, \mathbb{E}_D[Q_{\theta_1}(s, \pi_\phi(s))]
        + \mathbb{E}_D\big[(\pi_\phi(s) - \hat a)^2\big],
        \quad \lambda = \frac{\alpha}{\mathbb{E}_D |Q_{\theta_1}(s, \pi_\phi(s))|}\ \text{(no gradient)}

The search is over the whole training set (states as trained on, i.e. standardised; actions in [-1, 1]) and is not
differentiated. Critics, target smoothing and the update order are TD3+BC's (``offrl/algos/td3bc.py``): both critics
every step; every ``policy_delay`` steps the actor (and its neighbour search), then the Polyak update of all
targets. A small ``beta`` lets the nearest neighbour come from other states (a looser constraint, towards TD3);
a large one keeps it at the same state (towards TD3+BC).

Defaults are the official README's for hopper and walker2d: alpha 2.5, beta 2.0 (halfcheetah: alpha 40, beta 2;
antmaze: alpha 7.5, beta 7.5, rewards ``r * 10000 - 1``), states standardised, Adam 3e-4, 2x256 MLPs, batch 256,
gamma 0.99, tau 0.005, policy noise 0.2 clipped at 0.5, actor every 2 steps.

The search (``offrl.data.neighbours``): ``kdtree`` (scipy's KD-tree on the host through a callback, as the official
code; the default on a CPU), ``exact`` (brute force on the device, the default on a GPU), ``auto`` (resolved when
training starts and recorded in the run's config). Both give the same neighbour up to ties.

Deviations: ``d`` is the terminal flag only (time-limit truncations bootstrap); actions are mapped to [-1, 1] by the
trainer. The update needs the training set, so PRDC trains through the offline trainer (``bind_dataset``), not by
calling ``update`` on a batch alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from offrl.algos.base import Algorithm, Batch, DataUpdate, Metrics, Spec, config_field, require
from offrl.algos.td3bc import Networks, TD3BCState, act, init_state, td3_update
from offrl.data.neighbours import SEARCHES, Nearest, build_nearest, resolve_search
from offrl.nn.networks import NETWORK_INITS, ensemble_member


@dataclass(frozen=True)
class PRDCConfig:
    alpha: float = config_field(2.5, "weight of the Q term relative to the dataset constraint")
    beta: float = config_field(2.0, "scale of the state in the neighbour search's key (beta * s, a)")
    search: str = config_field("auto", "neighbour search: kdtree (host) | exact (device) | auto (exact on GPU/TPU)")
    policy_noise: float = config_field(0.2, "std of the target policy smoothing noise")
    noise_clip: float = config_field(0.5, "clip of the target policy smoothing noise")
    policy_delay: int = config_field(2, "critic updates per actor (and target) update")
    discount: float = config_field(0.99, "discount factor gamma")
    tau: float = config_field(0.005, "Polyak rate of the target networks")
    actor_lr: float = config_field(3e-4, "actor learning rate")
    critic_lr: float = config_field(3e-4, "critic learning rate")
    hidden_dims: tuple[int, ...] = config_field((256, 256), "hidden layer widths of actor and critics")
    normalize_observations: bool = config_field(True, "standardise observations with dataset mean/std")
    reward_scaling: str = config_field("none", "none | locomotion (r*1000/return range) | antmaze (r-1)")
    network_init: str = config_field(
        "orthogonal", "orthogonal | pytorch (PyTorch's default uniform init, as the paper's code and d3rlpy)"
    )

    def __post_init__(self) -> None:
        require(
            self.network_init in NETWORK_INITS,
            f"network_init must be one of {NETWORK_INITS}, got {self.network_init!r}",
        )
        require(self.alpha >= 0.0, f"alpha must be >= 0, got {self.alpha}")
        require(self.beta >= 0.0, f"beta must be >= 0, got {self.beta}")
        require(self.search in SEARCHES, f"search must be one of {', '.join(SEARCHES)}, got {self.search!r}")
        require(self.policy_noise >= 0.0 and self.noise_clip >= 0.0, "policy_noise and noise_clip must be >= 0")
        require(self.policy_delay >= 1, f"policy_delay must be >= 1, got {self.policy_delay}")
        require(0.0 <= self.discount <= 1.0, f"discount must be in [0, 1], got {self.discount}")
        require(0.0 < self.tau <= 1.0, f"tau must be in (0, 1], got {self.tau}")
        require(min(self.actor_lr, self.critic_lr) > 0, "learning rates must be > 0")
        require(self.reward_scaling in ("none", "locomotion", "antmaze"), "reward_scaling: none|locomotion|antmaze")


_ACTOR_METRICS = ("actor/loss", "actor/bc_loss", "actor/lambda", "actor/neighbour_distance", "actor/grad_norm")


def init(key: jax.Array, spec: Spec, config: PRDCConfig) -> TD3BCState:
    require(len(spec.observation_shape) == 1, f"PRDC needs flat observations, got shape {spec.observation_shape}")
    return init_state(key, spec, config, _ACTOR_METRICS)


def configure_for_training(config: PRDCConfig, total_steps: int) -> PRDCConfig:
    """Resolve ``search="auto"`` for this machine, so the run records (and a resume keeps) the search it used."""
    if config.search == "auto":
        from dataclasses import replace

        return replace(config, search=resolve_search("auto"))
    return config


def actor_loss(
    actor_params: dict,
    nets: Networks,
    critic_params: dict,
    batch: Batch,
    config: PRDCConfig,
    *,
    nearest: Nearest,
    data: Batch,
):
    observations = batch["observations"]
    pi = nets.actor.apply(actor_params, observations)
    q = nets.q1.apply(ensemble_member(critic_params, 0), observations, pi)  # Q1 only, as TD3+BC
    lmbda = jax.lax.stop_gradient(config.alpha / jnp.abs(q).mean())
    keys = jax.lax.stop_gradient(jnp.concatenate([config.beta * observations, pi], axis=-1))
    index = nearest(keys, data["observations"], data["actions"])
    neighbour_actions = data["actions"][index]
    neighbour_keys = jnp.concatenate([config.beta * data["observations"][index], neighbour_actions], axis=-1)
    bc_loss = jnp.square(pi - neighbour_actions).mean()
    loss = -lmbda * q.mean() + bc_loss
    return loss, {
        "actor/loss": loss,
        "actor/bc_loss": bc_loss,
        "actor/lambda": lmbda,
        "actor/neighbour_distance": jnp.linalg.norm(keys - neighbour_keys, axis=-1).mean(),
    }


def bind_dataset(config: PRDCConfig, arrays: dict[str, np.ndarray]) -> DataUpdate:
    """Build the neighbour search over the training arrays; the update reads the rows from the device ``data``."""
    nearest = build_nearest(arrays["observations"], arrays["actions"], config.beta, config.search)

    def update_with_data(state: TD3BCState, batch: Batch, data: Batch) -> tuple[TD3BCState, Metrics]:
        return td3_update(state, batch, partial(actor_loss, nearest=nearest, data=data))

    return update_with_data


def update(state: TD3BCState, batch: Batch) -> tuple[TD3BCState, Metrics]:
    raise TypeError(
        "PRDC's update searches the whole training set: build it with "
        "offrl.algos.base.training_update(ALGORITHM, config, arrays) and call update(state, batch, data)"
    )


ALGORITHM = Algorithm(
    name="prdc",
    description="PRDC (Ran et al. 2023): TD3+BC towards the nearest dataset action in (beta*state, action) space",
    config_class=PRDCConfig,
    init=init,
    update=update,
    act=act,
    configure_for_training=configure_for_training,
    bind_dataset=bind_dataset,
)
