"""The one training loop for every family.

The trainer owns everything around the GAN math: optimisers (one per phase), zero_grad / backward /
step, autocast and gradient scaling, the EMA generator, statistics, sample grids, checkpoints and
the export. It knows no family by name: an :class:`Objective` supplies networks, phases and losses,
and gets from the trainer only the step and this process's batch size (docs/design.md). Its
resumable state is :mod:`gankit.training.state`; its records go to a :class:`Sink`
(:mod:`gankit.training.sink`).

Under ``torchrun`` it trains data-parallel (:mod:`gankit.training.distributed`): every rank runs
this same loop on its share of each global batch, averages each phase's gradients with the
others before stepping, and agrees with them on skipped steps and stop signals; only rank 0
writes files.
"""

from __future__ import annotations

import logging
import math
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gankit.config import RunConfig
from gankit.data import ImageSet, load_images
from gankit.data.loader import InfiniteLoader
from gankit.errors import ConfigError, GankitError
from gankit.metrics import MetricResult
from gankit.nets.augment import attach_diffaugment
from gankit.objectives import OBJECTIVES, Objective, Phase, linear_decay
from gankit.runfolder import checkpoint as ckpt
from gankit.runfolder.export import export_generator
from gankit.runfolder.images import make_grid, save_grid
from gankit.runfolder.layout import RunDir
from gankit.training import distributed, state
from gankit.training.ema import EMA
from gankit.training.evaluation import PeriodicEvaluation
from gankit.training.fastpath import (
    autocast_dtype,
    configure_backends,
    resolve_channels_last,
    resolve_precision,
    select_device,
    use_fused_optimizer,
)
from gankit.training.guard import (
    MAX_ROLLBACKS,
    ROLLBACK_LR_FACTOR,
    NonFiniteGuard,
    TrainingDiverged,
    out_of_memory,
    rollback_or_stop,
)
from gankit.training.health import HealthMonitor, diversity
from gankit.training.optim import make_optimizer, resolve_phase
from gankit.training.signals import StopSignals
from gankit.training.sink import RunSink, Sink
from gankit.training.stats import StatsWindow

log = logging.getLogger("gankit")


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    interrupted: bool  # stopped early by SIGINT/SIGTERM (a checkpoint was saved)
    last_grid: Path | None
    export_dir: Path | None
    metrics: list[MetricResult] = field(default_factory=list)  # the last evaluation's numbers
    is_main: bool = True  # False on the other ranks of a torchrun job (they report nothing)


def _channels_last(tensor: torch.Tensor) -> torch.Tensor:
    """Images (N, C, H, W) in the NHWC memory layout; other tensors (labels) as they are."""
    return tensor.contiguous(memory_format=torch.channels_last) if tensor.dim() == 4 else tensor


class Trainer:
    """Trains ``cfg.family`` into ``run_dir``; ``resume=True`` continues its latest checkpoint."""

    def __init__(
        self,
        cfg: RunConfig,
        run_dir: str | Path,
        resume: bool = False,
        images: ImageSet | None = None,  # pre-loaded data; None = load ``cfg.data``
        sink: Sink | None = None,  # where records go; None: the run folder's (rank 0 only)
    ) -> None:
        self.dist, self.device = distributed.setup(select_device(cfg.train.device))
        if self.dist.enabled:  # one run folder: rank 0's (a default name has a timestamp)
            run_dir = self.dist.broadcast_object(str(run_dir))
        self.cfg, self.run = cfg, RunDir(Path(run_dir))
        local_batch = self.dist.local_batch(cfg.train.batch_size)
        torch.manual_seed(cfg.train.seed)  # the same initial weights on every rank
        if images is None:
            with self.dist.rank_zero_first() if self.dist.enabled else nullcontext():
                images = load_images(cfg.data)  # rank 0 first: it may download
        self.images = images
        self.objective: Objective = OBJECTIVES.get(cfg.family)(
            cfg, self.images.num_classes, batch_size=local_batch
        )
        self.objective.to(self.device)
        self._check_objective()
        self.precision = resolve_precision(cfg.train.precision, self.device)
        self.channels_last = resolve_channels_last(
            cfg.train.channels_last, self.device, self.precision
        )
        configure_backends(self.device, cfg.train.precision)
        if self.channels_last:  # NHWC weights; convolutions then keep activations NHWC
            for network in self.objective.networks.values():
                network.to(memory_format=torch.channels_last)
        if self.dist.enabled:
            if cfg.train.sync_batchnorm:
                for network in self.objective.networks.values():
                    distributed.convert_sync_batchnorm(network, self.device)
            self.dist.broadcast_tensors(self._network_tensors(buffers_only=False))
        self.phases = [resolve_phase(phase, cfg.train) for phase in self.objective.phases()]
        self.optimizers = {
            phase.name: make_optimizer(
                phase,
                self._parameters(phase.networks),
                use_fused_optimizer(cfg.train.fused_optimizer, phase.optimizer, self.device),
            )
            for phase in self.phases
        }
        sampled = self.objective.networks[self.objective.sample_network]
        self.ema = EMA(sampled, cfg.train.ema_decay) if cfg.train.ema else None
        self.guard = NonFiniteGuard(cfg.train.nonfinite_patience)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        if cfg.train.compile:  # in place: parameters and state-dict keys stay the same
            for network in self.objective.networks.values():
                network.compile()
        self.loader = InfiniteLoader(
            self.images, cfg.data, local_batch, cfg.train.seed, self.device,
            rank=self.dist.rank, world_size=self.dist.world_size,
        )  # fmt: skip
        grid_rng = torch.Generator(self.device).manual_seed(cfg.train.seed)
        grid = cfg.train.grid_size**2
        preview = InfiniteLoader(self.images, cfg.data, grid, cfg.train.seed + 7, self.device)
        self.fixed_inputs = self.objective.fixed_inputs(grid, grid_rng, preview)
        self.health = None
        if grid >= 2:
            real = next(preview)
            real_images = real.get("b", real.get("image"))
            self.health = HealthMonitor(diversity(real_images), cfg.train.steps)
        self.evaluation = (
            PeriodicEvaluation(cfg, self.images, self.device, self.dist)
            if cfg.eval.metrics
            else None
        )
        self._last_eval_step = -1
        self.last_metrics: list[MetricResult] = []
        self.step = 0
        self.stats = StatsWindow()  # the phases' statistics since the last log line
        self._skipped_logged = 0  # guard.skipped at the last log line
        self._latest_step: int | None = None  # the step checkpoints/latest.pt holds
        show = cfg.train.progress
        self.sink = sink or (RunSink(self.run, cfg.output.tensorboard, show)
                             if self.dist.is_main else Sink())  # fmt: skip
        self._stop: StopSignals | None = None  # while fit() runs
        self._stop_votes: torch.Tensor | None = None  # ranks that asked to stop (mean, 0 = none)
        if self.dist.enabled:  # each rank its own noise stream: a global batch of distinct z
            torch.manual_seed(distributed.rank_seed(cfg.train.seed, self.dist.rank))
        if resume:
            self._resume()
        elif self.run.latest.exists():
            raise GankitError(
                f"{self.run.root} already holds a run; continue it with --resume {self.run.root} "
                "or choose another --out"
            )

    # ------------------------------------------------------------------------------------------
    # One training step

    def _parameters(self, names: tuple[str, ...]) -> list[nn.Parameter]:
        return [p for name in names for p in self.objective.networks[name].parameters()]

    def _check_objective(self) -> None:
        """The objective's own data checks, DiffAugment on its discriminators, and no periodic
        metrics for a translator (they score noise-to-image samples)."""
        self.objective.check_data(self.images)
        if self.cfg.train.diffaugment:
            for name in self.objective.discriminators:
                attach_diffaugment(self.objective.networks[name], self.cfg.train.diffaugment)
        if self.objective.task == "translate" and self.cfg.eval.metrics:
            raise ConfigError(
                f"{self.cfg.family} is a translator: eval.metrics during training are for "
                "noise-to-image families; leave eval.metrics empty"
            )

    def _network_tensors(self, buffers_only: bool) -> list[torch.Tensor]:
        """Every buffer (and parameter) of every network, in a fixed order."""
        tensors: list[torch.Tensor] = []
        for network in self.objective.networks.values():
            if not buffers_only:
                tensors += [p.data for p in network.parameters()]
            tensors += list(network.buffers())
        return tensors

    def _autocast(self) -> AbstractContextManager[Any]:
        dtype = autocast_dtype(self.precision)
        if dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=dtype)

    def run_phase(self, phase: Phase) -> None:
        """One phase of the current step: ``phase.repeats`` optimiser steps of its networks,
        each on a fresh batch if it needs data, with the step's learning rate, autocast, the
        gradient scaler, the gradient all-reduce (several ranks) and the non-finite guard."""
        # Only this phase's networks need parameter gradients: freezing the others saves their
        # weight-gradient computation (e.g. D's during a generator step).
        for name, network in self.objective.networks.items():
            network.requires_grad_(name in phase.networks)
        optimizer = self.optimizers[phase.name]
        train = self.cfg.train
        decay = linear_decay(self.step, train.steps, train.lr_decay_start)
        assert phase.lr is not None, "phases are resolved in __init__"
        lr = phase.lr * self.objective.lr_factor(self.step) * decay * self.guard.lr_scale
        for group in optimizer.param_groups:
            group["lr"] = lr
        for _ in range(phase.repeats):
            batch = next(self.loader) if phase.needs_data else None
            if batch is not None and self.channels_last:  # as the weights: no per-layer reorder
                batch = {k: _channels_last(v) for k, v in batch.items()}
            with self._autocast():
                loss, stats = self.objective.loss(phase.name, batch)
            optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if self.dist.enabled:
                loss = self._average_gradients(optimizer, loss)
            if not self.guard.is_finite(loss, optimizer, not self.scaler.is_enabled()):
                optimizer.zero_grad(set_to_none=True)
                self.guard.skip()
                continue
            self.scaler.step(optimizer)
            self.scaler.update()
            self.objective.after_step(phase.name)
            self.stats.add(stats)

    def _average_gradients(
        self, optimizer: torch.optim.Optimizer, loss: torch.Tensor
    ) -> torch.Tensor:
        """Average the gradients ``optimizer`` is about to apply over the ranks (one all-reduce,
        see :mod:`gankit.training.distributed`); returns the mean loss. The same buffer carries each
        rank's stop request, so all ranks see every request at the same step."""
        stop = 1.0 if self._stop is not None and self._stop.requested else 0.0
        extras = torch.stack([loss.detach().float(), loss.new_full((), stop, dtype=torch.float32)])
        parameters = [p for group in optimizer.param_groups for p in group["params"]]
        mean_loss, self._stop_votes = self.dist.average_gradients(parameters, extras)
        return mean_loss

    def train_step(self) -> None:
        """Every phase due at this step, then the EMA update."""
        self.objective.train()
        self.objective.set_step(self.step)
        if self.objective.resets_optimizers(self.step):
            for optimizer in self.optimizers.values():
                optimizer.state.clear()  # re-initialised (step 0, zero moments) at the next step
        for phase in self.phases:
            if self.step >= phase.start and self.step % phase.every == 0:
                self.run_phase(phase)
        if self.dist.enabled:  # BN running statistics: rank 0's everywhere (as DDP broadcasts)
            self.dist.broadcast_tensors(self._network_tensors(buffers_only=True))
        if self.ema is not None:
            self.ema.update(self.objective.networks[self.objective.sample_network])
        self.step += 1
        self.guard.end_step()

    def _guarded_step(self) -> None:
        """:meth:`train_step`, with running out of memory turned into one line that says what
        to change (the step's partial work is dropped; the last checkpoint is intact)."""
        try:
            self.train_step()
        except torch.OutOfMemoryError:
            for optimizer in self.optimizers.values():
                optimizer.zero_grad(set_to_none=True)
            batch = self.cfg.train.batch_size
            raise out_of_memory(self.device, batch, self.step, self.precision) from None

    # ------------------------------------------------------------------------------------------
    # The loop

    def fit(self) -> TrainResult:
        """Train until ``train.steps``; save grids, checkpoints, the loss plot and the export."""
        train = self.cfg.train
        interrupted = False
        clock = (time.perf_counter(), self.step)
        try:
            self._start_run()
            with StopSignals() as stop:
                self._stop = stop
                while self.step < train.steps:
                    self._guarded_step()
                    if self.guard.exhausted:
                        self._on_nonfinite()
                        self.sink.progress(self.step)
                        continue
                    self.sink.progress(self.step)
                    if self.step % train.log_every == 0:
                        clock = self._log_stats(clock)
                    sample_due = train.sample_every and self.step % train.sample_every == 0
                    if sample_due and self.dist.is_main:
                        self.save_sample_grid()
                    if self._evaluation_due():
                        self.run_evaluation()
                    if train.checkpoint_every and self.step % train.checkpoint_every == 0:
                        self.save_checkpoint()
                    if stop.agreed(self.dist, self._stop_votes, self.step):
                        interrupted = True
                        break
            return self._finish(interrupted)
        finally:
            self._stop = None
            self.sink.close()

    def _finish(self, interrupted: bool) -> TrainResult:
        if self.stats:
            self._log_stats((time.perf_counter(), self.step))
        if self.evaluation is not None and not interrupted and self._last_eval_step != self.step:
            self.run_evaluation()
        self.save_checkpoint()
        grid = export_dir = None
        if self.dist.is_main:
            grid = self.save_sample_grid()
            self.sink.finish(title=str(self.run.root))
            if not interrupted:
                export_dir = export_generator(
                    self.cfg, self.objective, self.sampling_network(), self.run.export
                )
        if self.dist.enabled:  # every rank returns when the run's files are complete
            self.dist.barrier()
        return TrainResult(
            self.run.root, self.step, interrupted, grid, export_dir, self.last_metrics,
            is_main=self.dist.is_main,
        )  # fmt: skip

    def _log_stats(self, clock: tuple[float, int]) -> tuple[float, int]:
        """Read back the accumulated statistics (one host sync), check them, log them."""
        means = self.stats.read(self.dist)
        record: dict[str, Any] = {"step": self.step, **means}
        now = time.perf_counter()
        elapsed_steps = self.step - clock[1]
        if elapsed_steps > 0 and now > clock[0]:
            record["images_per_s"] = elapsed_steps * self.cfg.train.batch_size / (now - clock[0])
        bad = [k for k, v in means.items() if not math.isfinite(v)]
        if self.dist.is_main:
            self._write_stats(record)
        if bad:
            raise TrainingDiverged(
                f"{', '.join(bad)} became non-finite by step {self.step}; the last good checkpoint "
                f"is {self.run.latest} (try a lower learning rate)"
            )
        return now, self.step

    def _write_stats(self, record: dict[str, Any]) -> None:
        """Rank 0: the record (and skipped-step and health warnings) to the sink."""
        if self.guard.skipped:
            record["skipped_steps"] = self.guard.skipped  # over the whole run
            if self.guard.skipped > self._skipped_logged:
                log.warning("step %d: %d optimiser steps with NaN/Inf losses or gradients "
                            "skipped so far", self.step, self.guard.skipped)  # fmt: skip
            self._skipped_logged = self.guard.skipped
        self.sink.losses(record)
        if self.health is not None:
            self._warn(self.health.check_stats(self.step, record))

    # ------------------------------------------------------------------------------------------
    # Metrics

    def _evaluation_due(self) -> bool:
        every = self.cfg.eval.every
        return self.evaluation is not None and every > 0 and self.step % every == 0

    def run_evaluation(self) -> None:
        """Evaluate the sampling network; log to metrics.jsonl and TensorBoard; keep best.pt."""
        assert self.evaluation is not None
        results = self.evaluation.run(self.objective, self.sampling_network(), self.step)
        if self.dist.is_main:
            for result in results:
                self.sink.metric(self.step, result.record(step=self.step), result.metric,
                                 result.value)  # fmt: skip
        self._last_eval_step, self.last_metrics = self.step, results
        if self.evaluation.improved(results, self.step):  # the same results on every rank
            state = self.state_dict()
            if self.dist.is_main:
                ckpt.save_checkpoint(state, self.run.best)

    # ------------------------------------------------------------------------------------------
    # Files

    def _start_run(self) -> None:
        """Rank 0: the run folder's config.yaml, the sink (log.txt from here on), a log line."""
        if not self.dist.is_main:
            return
        self.run.root.mkdir(parents=True, exist_ok=True)
        self.run.config.write_text(self.cfg.to_yaml(), encoding="utf-8")
        self.sink.open(self.cfg.train.steps, self.step, self.cfg.family)
        log.info(
            "training %s on %s, %d steps, device %s, run folder %s",
            self.cfg.family,
            self.images.description,
            self.cfg.train.steps,
            self.device,
            self.run.root,
        )
        if self.dist.enabled:
            log.info(
                "%d processes (%s), %d images per process of the global batch %d%s",
                self.dist.world_size, "nccl" if self.device.type == "cuda" else "gloo",
                self.loader.batch_size, self.cfg.train.batch_size,
                ", synchronised batch norm" if self.cfg.train.sync_batchnorm else "",
            )  # fmt: skip

    def sampling_network(self) -> nn.Module:
        """The network samples, grids, exports and metrics use: the EMA copy of the generator
        when ``train.ema`` is on, else the generator itself."""
        return (
            self.ema.shadow if self.ema else self.objective.networks[self.objective.sample_network]
        )

    @torch.no_grad()
    def sample_fixed(self) -> torch.Tensor:
        """The fixed-noise images (grid_size**2, C, H, W), from the EMA generator when present."""
        return self.objective.generate_eval(self.fixed_inputs, self.sampling_network())

    def save_sample_grid(self) -> Path:
        images = self.sample_fixed()
        path = save_grid(images, self.run.sample_grid(self.step), columns=self.cfg.train.grid_size)
        ratio = None
        if self.health is not None:
            ratio = self.health.diversity_ratio(self.objective.metric_view(images))
            self._warn(self.health.check_samples(self.step, ratio))
        self.sink.samples(self.step, make_grid(images, self.cfg.train.grid_size))
        if ratio is not None:
            self.sink.scalar("health/diversity_ratio", ratio, self.step)
        return path

    def _warn(self, warning: str | None) -> None:
        """A health warning: to the log and the sink."""
        if warning is not None:
            self.sink.warning(warning, self.step)

    def state_dict(self) -> dict[str, Any]:
        """The whole training state (:func:`gankit.training.state.capture`); with several
        ranks a collective: every rank must call it."""
        return state.capture(self)

    def save_checkpoint(self) -> Path:
        """Write ``checkpoints/latest.pt`` atomically (:func:`gankit.training.state.write_latest`);
        a failed write leaves the previous one intact and is one CheckpointError line."""
        state.write_latest(self, self._latest_step)
        self._latest_step = self.step
        return self.run.latest

    def _resume(self) -> None:
        saved = ckpt.load_checkpoint(self.run.latest, map_location=self.device)
        state.migrate(self, saved)
        state.check_resumable(self, saved)
        state.restore(self, saved)
        self._latest_step = self.step
        if self.dist.is_main:
            for partial in self.run.checkpoints.glob(".*.tmp"):  # a write killed half-way
                partial.unlink(missing_ok=True)
            self.sink.rewind(self.step)
        saved_world = int(saved.get("world_size") or 1)
        log.info("resumed %s at step %d", self.run.root, self.step)
        if saved_world != self.dist.world_size:
            log.info(
                "the checkpoint was written by %d processes, this run has %d: the global batch "
                "stays train.batch_size=%d (%d per process), the data order continues at the same "
                "position, the random streams of the processes are re-seeded",
                saved_world, self.dist.world_size, self.cfg.train.batch_size,
                self.loader.batch_size,
            )  # fmt: skip

    def _on_nonfinite(self) -> None:
        """``nonfinite_patience`` steps in a row were skipped: roll back or stop."""
        guard = self.guard
        what = rollback_or_stop(guard, self.step, self.cfg.train.nonfinite, self.run.latest)
        rollbacks, skipped = guard.rollbacks + 1, guard.skipped
        state.restore(self, ckpt.load_checkpoint(self.run.latest, map_location=self.device))
        self._latest_step = self.step
        guard.rollbacks, guard.skipped, guard.streak = rollbacks, skipped, 0
        guard.lr_scale = ROLLBACK_LR_FACTOR**rollbacks
        self.stats.clear()
        if not self.dist.is_main:
            return
        self.sink.rewind(self.step)
        log.warning(
            "%s: rolled back to the checkpoint of step %d with learning rates x%g (rollback %d "
            "of at most %d)", what, self.step, guard.lr_scale, rollbacks, MAX_ROLLBACKS,
        )  # fmt: skip
