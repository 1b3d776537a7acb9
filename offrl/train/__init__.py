"""Training: the jitted update loop, runs with logs and checkpoints, resume, and policy loading."""

from offrl.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
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
    "save_checkpoint",
    "train",
]
