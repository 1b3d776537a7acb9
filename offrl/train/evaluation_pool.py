"""Evaluations of saved policies in worker processes, several at once.

Stepping a simulator is host work, one core per episode batch. When many runs train at once on an accelerator
(``offrl.train.group``), evaluating their policies one after another in the training process leaves the
accelerator idle for minutes. An :class:`EvaluationPool` evaluates checkpoint files in N worker processes, each
with JAX on the CPU and one thread (they never touch the accelerator or its memory), and returns the results in
the order asked. A checkpoint evaluated here gives the same result as the in-process evaluation of that agent:
same policy, same environment seeds.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from offrl.envs.evaluation import EvaluationResult

SINGLE_THREAD_XLA = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def _start_worker() -> None:
    """Runs in each worker before any JAX computation: CPU only, one thread."""
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    os.environ["XLA_FLAGS"] = " ".join(f for f in (os.environ.get("XLA_FLAGS", ""), SINGLE_THREAD_XLA) if f)
    os.environ["OMP_NUM_THREADS"] = "1"
    import jax

    jax.config.update("jax_platforms", "cpu")


def evaluate_checkpoint(path: str | Path, episodes: int, seed: int) -> EvaluationResult:
    """The policy saved at ``path`` on its run's task: ``episodes`` episodes, environment seeds ``seed``..."""
    from offrl.envs.evaluation import evaluate
    from offrl.train.offline import load_policy

    policy = load_policy(path)
    task = policy.task
    if task is None:
        raise ValueError(f"{path} records no task to evaluate on")
    return evaluate(policy, task, episodes, seed)


def _evaluate(job: tuple[str, int, int]) -> EvaluationResult:
    return evaluate_checkpoint(*job)


class EvaluationPool:
    """``workers`` processes that evaluate checkpoint files (``with EvaluationPool(8) as pool: ...``)."""

    def __init__(self, workers: int):
        if workers < 1:
            raise ValueError(f"an evaluation pool needs at least one worker, got {workers}")
        self.workers = workers
        self._executor = ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker
        )

    def evaluate(self, jobs: list[tuple[str | Path, int, int]]) -> list[EvaluationResult]:
        """``(checkpoint path, episodes, seed)`` per job; the results in the same order."""
        return list(self._executor.map(_evaluate, [(str(path), episodes, seed) for path, episodes, seed in jobs]))

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> EvaluationPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
