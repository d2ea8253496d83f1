"""Where a run's records go: one object owns log.txt, losses.jsonl, metrics.jsonl, TensorBoard
and the progress bar.

The trainer reports through a :class:`Sink`; the base class does nothing, which is what the
other ranks of a torchrun job (only rank 0 writes files) and a trainer used without a run
folder's outputs get. :class:`RunSink` writes the run folder of docs/design.md.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import torch
from tqdm import tqdm

from gankit.runfolder.history import append_record, plot_losses, read_records, truncate_after
from gankit.runfolder.layout import RunDir

log = logging.getLogger("gankit")


class Sink:
    """The no-op sink: every report is dropped."""

    def open(self, steps: int, step: int, description: str) -> None:
        """Training of ``steps`` steps starts (or continues) at ``step``."""

    def close(self) -> None:
        """Training stopped (finished, interrupted or failed): release files and the bar."""

    def progress(self, step: int) -> None:
        """The loop reached ``step``."""

    def losses(self, record: dict[str, Any]) -> None:
        """Averaged training statistics: {"step": int, "<name>": float, ...}."""

    def metric(self, step: int, record: dict[str, Any], name: str, value: float) -> None:
        """One evaluated number (``record`` is its full metrics.jsonl line)."""

    def samples(self, step: int, grid: torch.Tensor) -> None:
        """A fixed-noise sample grid (3, H, W) float in [0, 1]."""

    def scalar(self, tag: str, value: float, step: int) -> None:
        """A number outside the loss record (e.g. health/diversity_ratio)."""

    def warning(self, text: str, step: int) -> None:
        """A health warning: logged (by every sink) and kept beside the scalars."""
        log.warning(text)

    def rewind(self, step: int) -> None:
        """Records newer than ``step`` describe steps that will be redone: drop them."""

    def finish(self, title: str) -> None:
        """The run's end: summary files (the loss-curve plot)."""


class RunSink(Sink):
    """Rank 0's sink: the run folder's log.txt, losses.jsonl, metrics.jsonl, loss_curves.png,
    TensorBoard events (``output.tensorboard``) and a tqdm bar (``train.progress``)."""

    def __init__(self, run: RunDir, tensorboard: bool, show_progress: bool) -> None:
        self.run = run
        self.tensorboard = tensorboard
        self.show_progress = show_progress
        self._writer: Any = None  # TensorBoard SummaryWriter while open
        self._log_file: logging.Handler | None = None
        self._bar: tqdm | None = None

    def open(self, steps: int, step: int, description: str) -> None:
        self.run.root.mkdir(parents=True, exist_ok=True)
        self._log_file = logging.FileHandler(self.run.log, encoding="utf-8")
        self._log_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(self._log_file)
        if log.getEffectiveLevel() > logging.INFO:
            log.setLevel(logging.INFO)  # the run's log.txt keeps the INFO lines
        if self.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.run.events))
        self._bar = tqdm(
            total=steps,
            initial=step,
            disable=not self.show_progress,
            desc=description,
            unit="step",
            dynamic_ncols=True,
            delay=0.5,
            mininterval=0.5 if sys.stderr.isatty() else 30,  # a log file gets a line every 30 s
        )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._log_file is not None:
            log.removeHandler(self._log_file)
            self._log_file.close()
            self._log_file = None

    def progress(self, step: int) -> None:
        if self._bar is not None:
            self._bar.update(step - self._bar.n)

    def losses(self, record: dict[str, Any]) -> None:
        append_record(self.run.losses, record)
        numbers = {k: v for k, v in record.items() if k != "step"}
        if self._writer is not None:
            for key, value in numbers.items():
                self._writer.add_scalar(f"train/{key}", value, record["step"])
        if self._bar is not None:
            self._bar.set_postfix({k: f"{v:.3g}" for k, v in numbers.items()}, refresh=False)

    def metric(self, step: int, record: dict[str, Any], name: str, value: float) -> None:
        append_record(self.run.metrics, record)
        if self._writer is not None:
            self._writer.add_scalar(f"eval/{name}", value, step)

    def samples(self, step: int, grid: torch.Tensor) -> None:
        if self._writer is not None:
            self._writer.add_image("samples", grid, step)

    def scalar(self, tag: str, value: float, step: int) -> None:
        if self._writer is not None:
            self._writer.add_scalar(tag, value, step)

    def warning(self, text: str, step: int) -> None:
        super().warning(text, step)
        if self._writer is not None:
            self._writer.add_text("health", text, step)

    def rewind(self, step: int) -> None:
        truncate_after(self.run.losses, step)
        truncate_after(self.run.metrics, step)

    def finish(self, title: str) -> None:
        plot_losses(read_records(self.run.losses), self.run.loss_plot, title=title)
