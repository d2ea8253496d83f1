"""The one trainer, its checkpoints and exports."""

from gankit.training.trainer import Trainer, TrainResult

__all__ = ["TrainResult", "Trainer"]
