"""The offline workflow (Kumar, Singh, Tian, Finn & Levine, "A Workflow for Offline Model-Free Robotic Reinforcement
Learning", CoRL 2021, arXiv:2109.10813): judge a training run from its checkpoints alone, without evaluating any
policy online.

For every checkpoint of a run (train with ``--keep-checkpoints 0`` to keep them all) and a fixed set of dataset
transitions (the training data, or a held-out dataset), :func:`checkpoint_statistics` computes

- the **average Q-value on the dataset's (s, a)** (the mean over the critic ensemble), and
- the **TD error** :math:`\\mathbb{E}[(Q(s, a) - r - \\gamma (1 - d) Q(s', \\pi(s')))^2]` with the checkpoint's own
  policy and critic (rewards and observations transformed as in training).

:func:`diagnose` applies the paper's rules:

- **overfitting**: the average dataset Q rises, peaks, then falls steadily with more gradient steps while the TD
  error stays low. Deploy the checkpoint at the peak (early stopping); fix with capacity-decreasing regularisation
  (dropout, fewer units, a variational information bottleneck on the critic's features).
- **underfitting**: the TD error stays high and does not come down. Fix with more capacity (wider or deeper
  critics) or less regularisation (e.g. a smaller conservative weight).

offrl adds one rule the paper does not have:

- **diverging**: the average dataset Q ends beyond the values the data's rewards allow at all, and is still moving
  away. No discounted sum of rewards in :math:`[r_{min}, r_{max}]` (the measured dataset's, as transformed for
  training) exceeds :math:`r_{max} / (1 - \\gamma)` (:math:`r_{max}` itself if it is negative: an episode may end
  after one step) or falls below :math:`r_{min} / (1 - \\gamma)` (:math:`r_{min}` if it is positive). The critic
  learns only from those rewards, so values beyond them come from extrapolation feeding on itself. Above the bound
  it is an over-estimating critic, usually with a policy that has collapsed: fix with stronger conservatism or
  behaviour regularisation, a lower critic learning rate, slower target updates or a smaller discount. Below it, a
  penalty pushing values down without limit: fix with a smaller conservative weight or a lower critic learning
  rate. "Still moving away" reuses the overfitting rule's ``drop``: over the second half of the checkpoints the Q
  moved outwards, from its innermost value there to its last, by more than 10% of its final magnitude or of the
  bounds' width, whichever is larger (so values near zero do not fire on noise), and a critic that levelled off
  slightly beyond the bound (a small regression error on values near their maximum) is not diverging. Rewards that
  are all equal give no range and are not judged. Deploy the last checkpoint whose Q was within the bounds, only
  after checking it: the policy may have gone wrong before the values did.
  The bounds hold for the statistics' own target (reward plus discounted Q, without the entropy bonus of soft
  critics or ReBRAC's behaviour penalty), and on held-out data they are those of its rewards, which may span less
  than the training data's.

How "rises", "falls steadily", "low" and "high" become numbers is offrl's choice (the paper states the rules in
words): a rise of at least ``drop`` (10%) of the peak's magnitude before the peak (a critic that starts above the
data's values and comes down is converging, not overfitting), then a fall of at least as much over the checkpoints
after it, most of them decreasing. A TD error is high, as a training error is in supervised learning, when the
critic leaves more than ``high_td`` (a quarter) of its targets' variance unexplained (TD error / variance of the
TD targets over the rows), when it is not negligible beside the values themselves (at least ``floor_td``, 1%, of
the mean squared target: targets that hardly vary, as on a single expert trajectory, make the first ratio large for
a tiny error), and when it has not fallen below half of its largest value. The rules are stated for conservative
methods (CQL, whose Q-values the penalty pushes down); the statistics apply to any algorithm with a critic,
continuous (a critic ensemble) or discrete (a Q-network over the actions, e.g. discrete CQL).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from offrl.algos import get_algorithm
from offrl.algos.base import Spec
from offrl.data.dataset import Dataset
from offrl.data.transforms import Transforms
from offrl.train.checkpoint import list_checkpoints, load_checkpoint, read_metadata
from offrl.train.offline import _config_from_json, check_spec_fits_data

RULES = "2026-11-28"  # the version of diagnose's rules: records judged under other rules are to be judged again


@dataclass(frozen=True)
class CheckpointStatistics:
    step: int
    dataset_q: float
    td_error: float
    target_scale: float  # mean squared TD target
    target_variance: float  # variance of the TD targets over the rows: what the critic has to explain
    value_low: float = -np.inf  # the smallest value the data's (transformed) rewards allow (value_bounds)
    value_high: float = np.inf  # the largest


@dataclass(frozen=True)
class Diagnosis:
    verdict: str  # "overfitting" | "underfitting" | "diverging" | "fine"
    recommended_step: int
    explanation: str
    advice: str


def critic_values(algo_name: str, state: Any, observations: jax.Array, actions: jax.Array) -> jax.Array:
    """Q(s, a) of an algorithm's critic: the mean over the critic ensemble for continuous actions (a file that
    defines ``networks`` with a ``critic`` and a state holding ``critic_params``), or the logged action's entry of a
    Q-network over all actions for discrete ones (``networks`` with a ``q`` and a state holding ``params``, e.g.
    discrete CQL)."""
    module = importlib.import_module(get_algorithm(algo_name).init.__module__)
    networks = getattr(module, "networks", None)
    if networks is None:
        raise ValueError(f"the workflow needs a critic: {algo_name} has none it can read")
    nets = networks(state.config, state.spec)
    if state.spec.discrete:
        if not (hasattr(nets, "q") and hasattr(state, "params")):
            raise ValueError(f"the workflow needs a Q-network over the actions: {algo_name} has none it can read")
        q_all = nets.q.apply(state.params, observations)  # [B, |A|]
        return jnp.take_along_axis(q_all, actions.astype(jnp.int32).reshape(-1, 1), axis=1)[:, 0]
    if not (hasattr(nets, "critic") and hasattr(state, "critic_params")):
        raise ValueError(f"the workflow needs a critic: {algo_name} has none it can read")
    q = nets.critic.apply(state.critic_params, observations, actions)
    return q.mean(axis=0) if q.ndim == 2 else q


def checkpoint_statistics(run_dir: str | Path, dataset: Dataset, max_rows: int = 20_000) -> list[CheckpointStatistics]:
    """Dataset Q and TD error of every checkpoint of ``run_dir`` on (up to ``max_rows``, evenly spaced) rows of
    ``dataset``."""
    run_dir = Path(run_dir)
    checkpoints = list_checkpoints(run_dir / "checkpoints")
    if not checkpoints:
        raise FileNotFoundError(f"no checkpoints in {run_dir / 'checkpoints'}")
    meta = read_metadata(checkpoints[0])
    algo = get_algorithm(meta["algo"])
    config = _config_from_json(algo.config_class, meta["algo_config"])
    spec = Spec.from_json(meta["spec"])
    check_spec_fits_data(spec, dataset, f"the run {run_dir}")
    if max_rows < 1:
        raise ValueError(f"max_rows (--max-rows) must be at least 1, got {max_rows}")
    transforms = Transforms.from_json(meta["transforms"])
    rows = np.linspace(0, dataset.size - 1, min(max_rows, dataset.size)).astype(np.int64)
    arrays = transforms.apply(dataset)
    batch = {k: jnp.asarray(v[rows]) for k, v in arrays.items() if k in
             ("observations", "actions", "rewards", "terminals", "next_observations")}  # fmt: skip
    discount = float(getattr(config, "discount", 0.99))
    low, high = value_bounds(arrays["rewards"], discount)
    template = algo.init(jax.random.PRNGKey(0), spec, config)

    @jax.jit
    def statistics(state):
        q = critic_values(algo.name, state, batch["observations"], batch["actions"])
        next_actions = algo.act(state, batch["next_observations"], jax.random.PRNGKey(0), True)
        next_q = critic_values(algo.name, state, batch["next_observations"], next_actions)
        target = batch["rewards"] + discount * (1.0 - batch["terminals"]) * next_q
        return q.mean(), jnp.square(q - target).mean(), jnp.square(target).mean(), target.var()

    out = []
    for path in checkpoints:
        state, meta = load_checkpoint(path, template, part="agent")
        q, td, scale, variance = (float(x) for x in statistics(state))
        out.append(CheckpointStatistics(int(meta["step"]), q, td, scale, variance, low, high))
    return out


def value_bounds(rewards: np.ndarray, discount: float) -> tuple[float, float]:
    """The smallest and largest discounted return a sequence of these rewards can have (episodes may end at any
    step, after which the value is 0)."""
    r_min, r_max = float(np.min(rewards)), float(np.max(rewards))
    horizon = 1.0 / (1.0 - discount) if discount < 1.0 else np.inf
    # the largest: every step earns r_max if it is positive, else the episode ends after one step; the smallest alike
    high = r_max * horizon if r_max > 0 else r_max
    low = r_min * horizon if r_min < 0 else r_min
    return low, high


def diagnose(
    stats: list[CheckpointStatistics], drop: float = 0.1, high_td: float = 0.25, floor_td: float = 0.01
) -> Diagnosis:
    """The paper's rules on a run's checkpoint statistics (oldest first).

    ``drop``: the rise before and the fall after a Q peak that count, as a share of the peak's magnitude.
    ``high_td``: the TD error, as a share of the TD targets' variance, above which it is high (until 2026-11-28 it
    was a share of their mean square, which a critic whose values grow with its error never exceeds).
    ``floor_td``: the TD error must also be at least this share of the targets' mean square.
    The rules are tried in this order: underfitting (whose explanation says when the Q is also beyond the bounds:
    a critic too small for its data may diverge too, and capacity is the first fix), diverging (offrl's; needs the
    value bounds that :func:`checkpoint_statistics` records), overfitting; a run none of them fits is fine.
    """
    if not stats:
        raise ValueError("no checkpoint statistics to diagnose")
    q = np.array([s.dataset_q for s in stats])
    td = np.array([s.td_error for s in stats])
    last = stats[-1]
    peak = int(np.argmax(q))
    after = q[peak:]
    falling = len(after) >= 3 and (np.diff(after) < 0).mean() >= 0.6
    scale = max(abs(q[peak]), 1e-8)
    rose = peak > 0 and q[peak] - q[0] >= drop * scale  # a rise first: a fall from the start is the critic converging
    fell = q[peak] - q[-1] >= drop * scale
    unexplained = td[-1] / max(last.target_variance, 1e-12)
    td_high = (
        last.target_scale > 1e-12  # targets all zero (e.g. a sparse reward never reached): nothing to judge
        and unexplained > high_td
        and td[-1] > floor_td * last.target_scale
        and td[-1] > 0.5 * td.max()
    )
    beyond = beyond_bounds(stats, drop)
    if td_high:
        also = (
            f"; the dataset Q also ends {beyond} the values the data's rewards allow "
            f"([{last.value_low:.4g}, {last.value_high:.4g}]) and still moves away"
            if beyond
            else ""
        )
        return Diagnosis(
            "underfitting",
            last.step,
            f"the TD error stays high: {td[-1]:.4g} at the last checkpoint, {unexplained:.0%} of the TD targets' "
            f"variance ({td[-1] / last.target_scale:.1%} of their mean square), and never fell below half of its "
            f"largest value ({td.max():.4g}){also}",
            "increase the critic's capacity (wider or deeper networks) or reduce regularisation (e.g. a smaller "
            "conservative weight)",
        )
    if beyond:
        return diverging(stats, beyond == "above")
    if rose and peak < len(q) - 1 and falling and fell:
        return Diagnosis(
            "overfitting",
            stats[peak].step,
            f"the average dataset Q peaked at {q[peak]:.4g} (step {stats[peak].step}) and fell to {q[-1]:.4g}, and "
            f"the TD error is not high ({td[-1]:.4g}, {unexplained:.0%} of the TD targets' variance)",
            "deploy the checkpoint at the peak (early stopping); to train longer, add capacity-decreasing "
            "regularisation (dropout, fewer units, an information bottleneck on the critic)",
        )
    return Diagnosis(
        "fine",
        last.step,
        "no overfitting (the dataset Q did not rise, peak and fall steadily) and no underfitting (the TD error is low "
        "or falling)",
        "deploy the last checkpoint",
    )


def beyond_bounds(stats: list[CheckpointStatistics], drop: float) -> str:
    """``"above"`` or ``"below"`` when the last dataset Q is beyond the data's value bounds and moved outwards over
    the second half of the checkpoints (from its innermost value there) by more than ``drop`` of its magnitude or of
    the bounds' width; ``""`` otherwise (also when the rewards give no range)."""
    last = stats[-1]
    if not last.value_low < last.value_high:
        return ""
    q = np.array([s.dataset_q for s in stats])
    second_half = q[(len(q) - 1) // 2 :]
    width = last.value_high - last.value_low if np.isfinite(last.value_high - last.value_low) else 0.0
    moved = drop * max(abs(q[-1]), width)
    if q[-1] > last.value_high and q[-1] - second_half.min() > moved:
        return "above"
    if q[-1] < last.value_low and second_half.max() - q[-1] > moved:
        return "below"
    return ""


def diverging(stats: list[CheckpointStatistics], above: bool) -> Diagnosis:
    """The verdict on a critic whose dataset Q ends beyond the data's value bounds and still moves away."""
    q = np.array([s.dataset_q for s in stats])
    second_half = q[(len(q) - 1) // 2 :]
    last = stats[-1]
    if above:
        bound, side, extreme, start, moved = last.value_high, "above", "largest", second_half.min(), "rose"
        fix = (
            "stronger conservatism or behaviour regularisation (e.g. a larger conservative weight), a lower critic "
            "learning rate, slower target updates or a smaller discount"
        )
    else:
        bound, side, extreme, start, moved = last.value_low, "below", "smallest", second_half.max(), "fell"
        fix = (
            "a smaller conservative weight (a penalty pushing the values down without limit) or a lower critic "
            "learning rate"
        )
    possible = [s for s in stats if s.value_low <= s.dataset_q <= s.value_high]
    deploy = possible[-1] if possible else stats[0]
    which = (
        f"check the checkpoint of step {deploy.step}, the last whose Q was within the bounds, before deploying it "
        "(the policy may have gone wrong before the values did)"
        if possible
        else f"no checkpoint had its Q within the bounds; if one must be deployed, the first (step {deploy.step}) is "
        "the least trained"
    )
    return Diagnosis(
        "diverging",
        deploy.step,
        f"the average dataset Q ends at {q[-1]:.4g}, {side} {bound:.4g}, the {extreme} discounted return the "
        f"data's rewards allow, and it {moved} from {start:.4g} to {q[-1]:.4g} over the second half of the "
        "checkpoints: the critic is diverging, its values come from extrapolation, not from the data",
        f"retrain with {fix}; {which}",
    )
