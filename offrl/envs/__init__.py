"""Evaluation tasks (a registry with reference returns) and seeded policy evaluation."""

from offrl.envs.evaluation import EvaluationResult, evaluate
from offrl.envs.registry import TASKS, Task, find_task, get_task

__all__ = ["TASKS", "EvaluationResult", "Task", "evaluate", "find_task", "get_task"]
