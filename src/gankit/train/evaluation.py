"""Metrics during training: every ``eval.every`` steps, against the training data itself.

The reference is the first ``eval.n`` training images; its features are cached on disk like any
reference. Generated images come from the sampling network (EMA when present) with a seed of
their own, so evaluating never moves the training RNG and a resumed run stays bit-exact.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from gankit.config import RunConfig
from gankit.data import ImageSet
from gankit.metrics import METRICS, MetricResult, Reference, evaluate, format_result
from gankit.objectives import Objective
from gankit.train.images import to_uint8

log = logging.getLogger("gankit")

EVAL_SEED_OFFSET = 7919  # images for metrics use seed train.seed + this, never the training RNG


class PeriodicEvaluation:
    """Runs ``cfg.eval.metrics`` and remembers the best value of the tracked number."""

    def __init__(self, cfg: RunConfig, images: ImageSet, device: torch.device) -> None:
        self.cfg, self.device = cfg, device
        data = cfg.data
        n = min(cfg.eval.n, len(images))
        self.reference = Reference(
            dataset=data.source, split=data.split, n=n, resolution=data.resolution,
            channels=data.channels, root=data.root,
        )  # fmt: skip
        # The images in memory are the reference itself when they are stored at the resolution.
        self.reference_images = images.images[:n] if data.stored_size == data.resolution else None
        self.tracked = cfg.eval.track or cfg.eval.tracked_names()[0]
        metric = next(m for m in map(METRICS.get, cfg.eval.metrics) if self.tracked in m.reports)
        self.lower_is_better = metric.lower_is_better
        self.best: dict[str, Any] | None = None  # {"value": ..., "step": ...}

    def run(self, objective: Objective, network: nn.Module, step: int) -> list[MetricResult]:
        seed = self.cfg.train.seed + EVAL_SEED_OFFSET
        # Building a feature network draws random initial weights before loading its own: fork
        # the RNG so that evaluating (and when) never changes the training that follows.
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            fake = objective.sample(self.reference.n, network, seed, self.cfg.eval.batch_size)
            images = to_uint8(objective.metric_view(fake))
            results = evaluate(
                images, self.reference, self.cfg.eval.metrics, device=str(self.device),
                batch_size=self.cfg.eval.batch_size, progress=False, seed=seed,
                reference_images=self.reference_images,
            )  # fmt: skip
        for result in results:
            log.info("step %d: %s", step, format_result(result))
        return results

    def improved(self, results: list[MetricResult], step: int) -> bool:
        """True (and remembered) when the tracked number beats the best so far."""
        value = next(r.value for r in results if r.metric == self.tracked)
        best = self.best["value"] if self.best else None
        if value is None:
            return False
        if best is None or (value < best if self.lower_is_better else value > best):
            self.best = {"metric": self.tracked, "value": value, "step": step}
            return True
        return False
