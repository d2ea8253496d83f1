"""The one trainer, its checkpoints and exports."""

from gankit.training.trainer import Trainer, TrainResult, load_run_config

__all__ = ["TrainResult", "Trainer", "load_run_config"]
