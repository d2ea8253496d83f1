"""Training statistics between two log lines: summed on the device, read back once."""

from __future__ import annotations

import torch

from gankit.training.distributed import Distributed


class StatsWindow:
    """The statistics of the phases since the last read. Sums stay on the device: reading
    them back (a host sync) happens every ``train.log_every`` steps. Each statistic has its
    own count, since phases run at different rates."""

    def __init__(self) -> None:
        self._sums: dict[str, torch.Tensor] = {}
        self._counts: dict[str, int] = {}

    def __bool__(self) -> bool:
        return bool(self._sums)

    def add(self, stats: dict[str, torch.Tensor]) -> None:
        """One optimiser step's detached scalars."""
        for key, value in stats.items():
            value = value.detach().float()
            self._sums[key] = self._sums[key] + value if key in self._sums else value
            self._counts[key] = self._counts.get(key, 0) + 1

    def clear(self) -> None:
        self._sums, self._counts = {}, {}

    def read(self, dist: Distributed) -> dict[str, float]:
        """Each statistic's mean over the window (and, with several ranks, over the ranks:
        every rank ran the same phases, so the keys and counts agree), then an empty window."""
        keys = sorted(self._sums)
        if not keys:  # every step of the window was skipped
            return {}
        stacked = torch.stack([self._sums[k] for k in keys])
        if dist.enabled:
            stacked = dist.mean(stacked)
        means = {
            k: total / self._counts[k] for k, total in zip(keys, stacked.tolist(), strict=True)
        }
        self.clear()
        return means
