"""What offline-to-online fine-tuning did, from its evaluation curve: the score at the switch to online learning,
the dip after it, the final score, and the regret as CORL reports it.

CORL (Tarasov et al. 2023, ``algorithms/finetune/*.py``) logs ``eval/regret`` as the mean of ``1 - s`` over the
evaluations of the online phase and ``train/regret`` as the same mean over the online training episodes, with ``s``
the D4RL-normalised score as a fraction (1.0 = expert). A method that starts high and stays high has a small regret;
one that dips after the switch, or improves slowly, pays for it. offrl takes scores in percent (as it prints them)
and reports regret as a fraction, like CORL.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def regret(normalized_scores: Sequence[float]) -> float:
    """``mean(1 - score / 100)`` over scores in percent; NaN when there are none."""
    scores = np.asarray(normalized_scores, np.float64)
    return float(np.mean(1.0 - scores / 100.0)) if scores.size else float("nan")


def fine_tuning_summary(
    steps: Sequence[int],
    scores: Sequence[float],
    switch_step: int,
    train_episode_scores: Sequence[float] = (),
) -> dict[str, float]:
    """Summary of an evaluation curve (``steps`` increasing, normalised ``scores`` in percent) around the switch at
    ``switch_step``: the evaluation at the switch (the last one at or before it), the minimum and the final after
    it, the dip (switch minus minimum, 0 if it never went below), the step of the minimum, and the regrets."""
    steps_arr, scores_arr = np.asarray(steps, np.int64), np.asarray(scores, np.float64)
    if steps_arr.shape != scores_arr.shape or steps_arr.ndim != 1:
        raise ValueError(
            f"steps and scores must be 1-D and of one length, got {steps_arr.shape} and {scores_arr.shape}"
        )
    if steps_arr.size and np.any(np.diff(steps_arr) <= 0):
        raise ValueError("evaluation steps must increase")
    before, after = steps_arr <= switch_step, steps_arr > switch_step
    if not before.any():
        raise ValueError(f"no evaluation at or before the switch (step {switch_step}): evaluate when it happens")
    if not after.any():
        raise ValueError(f"no evaluation after the switch (step {switch_step})")
    at_switch = float(scores_arr[before][-1])
    online = scores_arr[after]
    lowest = int(np.argmin(online))
    return {
        "score_at_switch": at_switch,
        "min_after_switch": float(online[lowest]),
        "step_of_min": int(steps_arr[after][lowest]),
        "dip": max(0.0, at_switch - float(online[lowest])),
        "final": float(online[-1]),
        "improvement": float(online[-1]) - at_switch,
        "eval_regret": regret(online),
        "train_regret": regret(train_episode_scores),
    }
