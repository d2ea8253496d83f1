"""Metrics during training: every ``eval.every`` steps, against the training data itself.

The reference is ``eval.n`` training images drawn at random with the fixed seed
``REFERENCE_SEED`` (recorded with every number as the reference's seed; from the first
``data.max_images`` when that is set, as training): the first n of a folder sorted by class would
be a few classes only. Its features are cached on disk like any reference (the seed is part of
the key). Generated images come from the sampling network (EMA when present) with a seed of
their own, so evaluating never moves the training RNG and a resumed run stays bit-exact.

With several training processes every rank generates its share of the same n images (the rows of
the same latent draw that a single process would generate), runs them through the feature network
on its own device, and rank 0 gathers the features and computes the metrics (the reference's
features are read from the cache or computed on rank 0 alone); every rank gets the results.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from gankit.config import RunConfig
from gankit.data import ImageSet
from gankit.errors import GankitError
from gankit.metrics import METRICS, MetricResult, Reference, evaluate, format_result
from gankit.metrics.reference import subset
from gankit.objectives import Objective
from gankit.resolve import tracked_metrics
from gankit.runfolder.images import to_uint8
from gankit.training.distributed import SINGLE, Distributed

log = logging.getLogger("gankit")

EVAL_SEED_OFFSET = 7919  # images for metrics use seed train.seed + this, never the training RNG
REFERENCE_SEED = 0  # which training images are the reference: the same for every run of a set


class PeriodicEvaluation:
    """Runs ``cfg.eval.metrics`` and remembers the best value of the tracked number."""

    def __init__(
        self,
        cfg: RunConfig,
        images: ImageSet,
        device: torch.device,
        dist: Distributed = SINGLE,  # several ranks: each generates a share, rank 0 computes
    ) -> None:
        self.cfg, self.device, self.dist = cfg, device, dist
        data = cfg.data
        n = min(cfg.eval.n, len(images))
        if n < dist.world_size:
            raise GankitError(f"eval.n={n} images cannot be shared among {dist.world_size} "
                              "training processes")  # fmt: skip
        self.reference = Reference(
            dataset=data.source, split=data.split, n=n, resolution=data.resolution,
            channels=data.channels, root=data.root, seed=REFERENCE_SEED, pool=data.max_images,
        )  # fmt: skip
        # The images in memory are the reference itself when they are stored at the resolution:
        # the rows Reference.load_images would take from the same images.
        self.reference_images = None
        if data.stored_size == data.resolution:
            rows = subset(len(images), n, REFERENCE_SEED)
            stored = images.images
            self.reference_images = (
                stored[rows] if isinstance(stored, torch.Tensor) else [stored[i] for i in rows]
            )
        self.tracked = cfg.eval.track or tracked_metrics(cfg.eval)[0]
        metric = next(m for m in map(METRICS.get, cfg.eval.metrics) if self.tracked in m.reports)
        self.lower_is_better = metric.lower_is_better
        self.best: dict[str, Any] | None = None  # {"value": ..., "step": ...}

    def run(self, objective: Objective, network: nn.Module, step: int) -> list[MetricResult]:
        seed = self.cfg.train.seed + EVAL_SEED_OFFSET
        # Building a feature network draws random initial weights before loading its own: fork
        # the RNG so that evaluating (and when) never changes the training that follows.
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            fake = self._generate(objective, network, seed)
            images = to_uint8(objective.metric_view(fake))
            results = evaluate(
                images, self.reference, self.cfg.eval.metrics, device=str(self.device),
                batch_size=self.cfg.eval.batch_size, progress=False, seed=seed,
                reference_images=self.reference_images,
                gather=self.dist.gather_rows if self.dist.enabled else None,
            )  # fmt: skip
        if self.dist.enabled:
            results = self.dist.broadcast_object(results)
        for result in results:
            log.info("step %d: %s", step, format_result(result))
        return results

    def _generate(self, objective: Objective, network: nn.Module, seed: int) -> torch.Tensor:
        """The n images of ``objective.sample(n, network, seed)``; with several ranks only this
        rank's rows of them (the latents are drawn whole, then split)."""
        n, batch_size = self.reference.n, self.cfg.eval.batch_size
        if not self.dist.enabled:
            return objective.sample(n, network, seed, batch_size)
        inputs = objective.sample_inputs(n, torch.Generator(objective.device).manual_seed(seed))
        start, stop = self.dist.shard(n)
        share = {k: v[start:stop] for k, v in inputs.items()}
        return objective.generate_eval(share, network, batch_size)

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
