"""GAN families, one module each, registered by name in OBJECTIVES."""

from gankit.objectives import dcgan, gan  # noqa: F401  (registers the families)
from gankit.objectives.base import Batch, Objective, Phase
from gankit.objectives.registry import OBJECTIVES

__all__ = ["OBJECTIVES", "Batch", "Objective", "Phase"]
