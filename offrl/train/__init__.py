"""Training: the jitted update loop, runs with logs and checkpoints, groups of runs, resume, and policy loading."""

from offrl.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from offrl.train.group import resume_group, train_group
from offrl.train.offline import LoadedPolicy, NonFiniteLossError, RunResult, TrainConfig, load_policy, resume, train

__all__ = [
    "CheckpointError",
    "LoadedPolicy",
    "NonFiniteLossError",
    "RunResult",
    "TrainConfig",
    "load_checkpoint",
    "load_policy",
    "resume",
    "resume_group",
    "save_checkpoint",
    "train",
    "train_group",
]
