"""The run folder layout (DESIGN.md, "Runs on disk"), in one place."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunDir:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def latest(self) -> Path:
        return self.checkpoints / "latest.pt"

    def step_checkpoint(self, step: int) -> Path:
        """An older checkpoint kept by ``train.keep_checkpoints``."""
        return self.checkpoints / f"step-{step:06d}.pt"

    @property
    def best(self) -> Path:
        return self.checkpoints / "best.pt"

    @property
    def samples(self) -> Path:
        return self.root / "samples"

    def sample_grid(self, step: int) -> Path:
        return self.samples / f"step-{step:06d}.png"

    @property
    def export(self) -> Path:
        return self.root / "export"

    @property
    def events(self) -> Path:
        return self.root / "events"

    @property
    def log(self) -> Path:
        return self.root / "log.txt"

    @property
    def losses(self) -> Path:
        return self.root / "losses.jsonl"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def loss_plot(self) -> Path:
        return self.root / "loss_curves.png"

    def newest_sample(self) -> Path | None:
        grids = sorted(self.samples.glob("step-*.png"))
        return grids[-1] if grids else None
