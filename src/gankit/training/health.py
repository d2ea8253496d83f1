"""Warnings for a run that is going wrong while it still trains: mode collapse and a
discriminator that wins outright. Both are cheap, need no metric network, and only warn.

- Diversity: the mean over pixels of the standard deviation across the fixed-noise samples
  (:func:`diversity`), divided by the same statistic on as many real training images. Each
  fixed-noise grid is checked; a ratio below ``COLLAPSE_RATIO`` (0.25: the samples vary four
  times less than the data) warns of mode collapse.
- D accuracy: the ``d_accuracy`` statistic the families log (see
  :func:`gankit.objectives.base.discriminator_accuracy`). At or above ``D_WINS_ACCURACY`` (0.99)
  in ``D_WINS_WINDOWS`` (3) log windows in a row, D separates every real from every fake image,
  and the generator's gradients tend to vanish (or the generator diverged).

Nothing is checked during the first ``WARMUP_FRACTION`` (10%) of the run's steps, and at least
``WARMUP_STEPS`` (100), when an untrained generator is expected to be poor. A warning is repeated
only after the condition has cleared. The statistics go to TensorBoard as
``health/diversity_ratio`` and ``train/d_accuracy``.
"""

from __future__ import annotations

import torch

COLLAPSE_RATIO = 0.25
D_WINS_ACCURACY = 0.99
D_WINS_WINDOWS = 3
WARMUP_FRACTION = 0.1
WARMUP_STEPS = 100


def diversity(images: torch.Tensor) -> float:
    """images (N, C, H, W), N >= 2 -> mean over pixels of the std across the N images."""
    return images.detach().float().std(dim=0).mean().item()


class HealthMonitor:
    """Turns the diversity ratio and D accuracy into warning lines (or None)."""

    def __init__(self, real_diversity: float, total_steps: int) -> None:
        self.real_diversity = max(real_diversity, 1e-8)
        self.warmup = max(int(total_steps * WARMUP_FRACTION), WARMUP_STEPS)
        self._collapsed = False
        self._d_wins_windows = 0

    def diversity_ratio(self, samples: torch.Tensor) -> float:
        return diversity(samples) / self.real_diversity

    def check_samples(self, step: int, ratio: float) -> str | None:
        collapsed = step >= self.warmup and ratio < COLLAPSE_RATIO
        warn = collapsed and not self._collapsed
        self._collapsed = collapsed
        if warn:
            return (
                f"step {step}: possible mode collapse: the fixed-noise samples vary "
                f"{ratio:.2f}x as much as real images (warning below {COLLAPSE_RATIO})"
            )
        return None

    def check_stats(self, step: int, record: dict[str, float]) -> str | None:
        accuracy = record.get("d_accuracy")
        if accuracy is None or step < self.warmup:
            return None
        self._d_wins_windows = self._d_wins_windows + 1 if accuracy >= D_WINS_ACCURACY else 0
        if self._d_wins_windows == D_WINS_WINDOWS:
            return (f"step {step}: the discriminator wins: accuracy >= {D_WINS_ACCURACY} in "
                    f"{D_WINS_WINDOWS} log windows in a row; the generator may get vanishing "
                    "gradients or have diverged (look at the samples; try a lower lr_d, "
                    "fewer D steps, label smoothing or train.diffaugment)")  # fmt: skip
        return None
