"""The one training loop for every family.

The trainer owns everything around the GAN math: optimisers (one per phase), zero_grad / backward /
step, autocast and gradient scaling, the EMA generator, statistics, sample grids, checkpoints and
the export. It knows no family by name: an :class:`Objective` supplies networks, phases and losses.

Under ``torchrun`` it trains data-parallel (:mod:`gankit.training.distributed`): every rank runs
this same loop on its share of each global batch, averages each phase's gradients with the
others before stepping, and agrees with them on skipped steps and stop signals; only rank 0
writes files.
"""

from __future__ import annotations

import logging
import math
import signal
import sys
import threading
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from gankit.config import RunConfig
from gankit.data import ImageSet, load_images
from gankit.data.loader import InfiniteLoader
from gankit.errors import CheckpointError, GankitError
from gankit.metrics import MetricResult
from gankit.objectives import OBJECTIVES, Objective, Phase, linear_decay
from gankit.runfolder import checkpoint as ckpt
from gankit.runfolder.export import export_generator
from gankit.runfolder.history import append_record, plot_losses, read_records, truncate_after
from gankit.runfolder.images import save_grid
from gankit.runfolder.layout import RunDir
from gankit.training import distributed
from gankit.training.ema import EMA
from gankit.training.evaluation import PeriodicEvaluation
from gankit.training.fastpath import (
    autocast_dtype,
    configure_backends,
    resolve_channels_last,
    resolve_precision,
    use_fused_optimizer,
)
from gankit.training.guard import MAX_ROLLBACKS, ROLLBACK_LR_FACTOR, NonFiniteGuard
from gankit.training.health import HealthMonitor, diversity

log = logging.getLogger("gankit")


class TrainingDiverged(GankitError):
    """The losses became NaN or infinite."""


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    interrupted: bool  # stopped early by SIGINT/SIGTERM (a checkpoint was saved)
    last_grid: Path | None
    export_dir: Path | None
    metrics: list[MetricResult] = field(default_factory=list)  # the last evaluation's numbers
    is_main: bool = True  # False on the other ranks of a torchrun job (they report nothing)


def select_device(name: str) -> torch.device:
    """ "auto" -> cuda when available, else cpu. An unavailable explicit device is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise GankitError("train.device=cuda but no CUDA device is available (use auto or cpu)")
    if name == "mps" and not torch.backends.mps.is_available():
        raise GankitError("train.device=mps but MPS is not available (use auto or cpu)")
    return torch.device(name)


def make_optimizer(
    phase: Phase, parameters: list[nn.Parameter], fused: bool = False
) -> torch.optim.Optimizer:
    """The optimiser of ``phase``; ``fused``: one fused kernel per step (Adam, AdamW, SGD; see
    :func:`gankit.training.fastpath.use_fused_optimizer`)."""
    implementation = {"fused": True} if fused else {}
    if phase.optimizer == "adam":
        return torch.optim.Adam(parameters, lr=phase.lr, betas=phase.betas, **implementation)
    if phase.optimizer == "adamw":
        return torch.optim.AdamW(parameters, lr=phase.lr, betas=phase.betas, **implementation)
    if phase.optimizer == "rmsprop":
        return torch.optim.RMSprop(parameters, lr=phase.lr)
    if phase.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=phase.lr, momentum=phase.betas[0], **implementation)
    raise GankitError(f"unknown optimizer {phase.optimizer!r}; valid: adam, adamw, rmsprop, sgd")


def _channels_last(tensor: torch.Tensor) -> torch.Tensor:
    """Images (N, C, H, W) in the NHWC memory layout; other tensors (labels) as they are."""
    return tensor.contiguous(memory_format=torch.channels_last) if tensor.dim() == 4 else tensor


class StopSignals(AbstractContextManager["StopSignals"]):
    """While active, SIGINT and SIGTERM set ``requested`` instead of killing the process, so the
    loop can finish its step and save. A second signal raises KeyboardInterrupt as usual."""

    def __init__(self) -> None:
        self.requested: str | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


class Trainer:
    """Trains ``cfg.family`` into ``run_dir``; ``resume=True`` continues its latest checkpoint."""

    def __init__(
        self,
        cfg: RunConfig,
        run_dir: str | Path,
        resume: bool = False,
        images: ImageSet | None = None,  # pre-loaded data; None = load ``cfg.data``
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
            self._rank_config(local_batch), self.images.num_classes
        )
        self.objective.to(self.device)
        self.objective.check_data(self.images)
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
        self.phases = self.objective.phases()
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
        self._stats: dict[str, torch.Tensor] = {}
        self._stats_count: dict[str, int] = {}
        self._skipped_logged = 0  # guard.skipped at the last log line
        self._latest_step: int | None = None  # the step checkpoints/latest.pt holds
        self._writer: Any = None  # TensorBoard SummaryWriter while fit() runs
        self._log_file: logging.Handler | None = None  # the run's log.txt while fit() runs
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

    def _rank_config(self, local_batch: int) -> RunConfig:
        """The config the objective sees: with several ranks its ``train.batch_size`` is this
        rank's share (objectives size their generator batches by it); else ``cfg`` itself."""
        if not self.dist.enabled:
            return self.cfg
        train = self.cfg.train.model_copy(update={"batch_size": local_batch})
        return self.cfg.model_copy(update={"train": train})

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

    def _run_phase(self, phase: Phase) -> None:
        # Only this phase's networks need parameter gradients: freezing the others saves their
        # weight-gradient computation (e.g. D's during a generator step).
        for name, network in self.objective.networks.items():
            network.requires_grad_(name in phase.networks)
        optimizer = self.optimizers[phase.name]
        train = self.cfg.train
        decay = linear_decay(self.step, train.steps, train.lr_decay_start)
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
            self._accumulate(stats)

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
                self._run_phase(phase)
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
            used = ""
            if self.device.type == "cuda":
                free, total = torch.cuda.mem_get_info(self.device)
                used = f" ({(total - free) / 2**30:.1f} of {total / 2**30:.1f} GiB in use)"
                torch.cuda.empty_cache()
            batch = self.cfg.train.batch_size
            raise GankitError(
                f"out of memory on {self.device}{used} at train.batch_size={batch}, step "
                f"{self.step}: try --set train.batch_size={max(batch // 2, 1)}"
                + (" or --set train.precision=bf16" if self.precision == "fp32" else "")
            ) from None

    def _accumulate(self, stats: dict[str, torch.Tensor]) -> None:
        # Sums stay on the device: reading them back (a host sync) happens every log_every steps.
        # Each statistic has its own count: phases run at different rates.
        for key, value in stats.items():
            value = value.detach().float()
            self._stats[key] = self._stats[key] + value if key in self._stats else value
            self._stats_count[key] = self._stats_count.get(key, 0) + 1

    # ------------------------------------------------------------------------------------------
    # The loop

    def fit(self) -> TrainResult:
        """Train until ``train.steps``; save grids, checkpoints, the loss plot and the export."""
        train = self.cfg.train
        interrupted = False
        progress = tqdm(
            total=train.steps,
            initial=self.step,
            disable=not train.progress or not self.dist.is_main,
            desc=self.cfg.family,
            unit="step",
            dynamic_ncols=True,
            delay=0.5,
            mininterval=0.5 if sys.stderr.isatty() else 30,  # a log file gets a line every 30 s
        )
        clock = (time.perf_counter(), self.step)
        try:
            self._prepare_run_dir()
            with StopSignals() as stop:
                self._stop = stop
                while self.step < train.steps:
                    self._guarded_step()
                    if self.guard.exhausted:
                        self._on_nonfinite()
                        progress.n = self.step
                        continue
                    progress.update(1)
                    if self.step % train.log_every == 0:
                        clock = self._log_stats(progress, clock)
                    sample_due = train.sample_every and self.step % train.sample_every == 0
                    if sample_due and self.dist.is_main:
                        self.save_sample_grid()
                    if self._evaluation_due():
                        self.run_evaluation()
                    if train.checkpoint_every and self.step % train.checkpoint_every == 0:
                        self.save_checkpoint()
                    if self._stop_agreed(stop):
                        interrupted = True
                        break
            return self._finish(interrupted)
        finally:
            self._stop = None
            progress.close()
            self._close_outputs()

    def _stop_agreed(self, stop: StopSignals) -> bool:
        """Whether to stop after this step: a signal here, or (several ranks) on any rank by the
        last all-reduce of this step, so that every rank stops at the same step."""
        if self.dist.enabled:
            if self._stop_votes is None or float(self._stop_votes) == 0:
                return False
        elif not stop.requested:
            return False
        if stop.requested:
            log.warning("%s received at step %d: saving and stopping", stop.requested, self.step)
        elif self.dist.is_main:
            log.warning("another training process was asked to stop at step %d: saving and "
                        "stopping", self.step)  # fmt: skip
        return True

    def _close_outputs(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._log_file is not None:
            log.removeHandler(self._log_file)
            self._log_file.close()
            self._log_file = None

    def _finish(self, interrupted: bool) -> TrainResult:
        if self._stats:
            self._log_stats(None, (time.perf_counter(), self.step))
        if self.evaluation is not None and not interrupted and self._last_eval_step != self.step:
            self.run_evaluation()
        self.save_checkpoint()
        grid = export_dir = None
        if self.dist.is_main:
            grid = self.save_sample_grid()
            plot_losses(read_records(self.run.losses), self.run.loss_plot, title=str(self.run.root))
            if not interrupted:
                objective_cfg, self.objective.cfg = self.objective.cfg, self.cfg  # global batch
                try:
                    export_dir = export_generator(
                        self.objective, self.sampling_network(), self.run.export
                    )
                finally:
                    self.objective.cfg = objective_cfg
        if self.dist.enabled:  # every rank returns when the run's files are complete
            self.dist.barrier()
        return TrainResult(
            self.run.root, self.step, interrupted, grid, export_dir, self.last_metrics,
            is_main=self.dist.is_main,
        )  # fmt: skip

    def _log_stats(self, progress: tqdm | None, clock: tuple[float, int]) -> tuple[float, int]:
        """Read back the accumulated statistics (one host sync), check them, log them."""
        keys = sorted(self._stats)
        sums: list[float] = []
        if keys:  # none when every step of the window was skipped
            stacked = torch.stack([self._stats[k] for k in keys])
            if self.dist.enabled:  # every rank ran the same phases: the same keys and counts
                stacked = self.dist.mean(stacked)
            sums = stacked.tolist()
        record: dict[str, Any] = {"step": self.step}
        record |= {k: total / self._stats_count[k] for k, total in zip(keys, sums, strict=True)}
        self._stats, self._stats_count = {}, {}
        now = time.perf_counter()
        elapsed_steps = self.step - clock[1]
        if elapsed_steps > 0 and now > clock[0]:
            record["images_per_s"] = elapsed_steps * self.cfg.train.batch_size / (now - clock[0])
        bad = [k for k in keys if not math.isfinite(record[k])]
        if self.dist.is_main:
            self._write_stats(record, progress)
        if bad:
            raise TrainingDiverged(
                f"{', '.join(bad)} became non-finite by step {self.step}; the last good checkpoint "
                f"is {self.run.latest} (try a lower learning rate)"
            )
        return now, self.step

    def _write_stats(self, record: dict[str, Any], progress: tqdm | None) -> None:
        """Rank 0: the record to losses.jsonl, the log, TensorBoard and the progress bar."""
        if self.guard.skipped:
            record["skipped_steps"] = self.guard.skipped  # over the whole run
            if self.guard.skipped > self._skipped_logged:
                log.warning("step %d: %d optimiser steps with NaN/Inf losses or gradients "
                            "skipped so far", self.step, self.guard.skipped)  # fmt: skip
            self._skipped_logged = self.guard.skipped
        append_record(self.run.losses, record)
        if self.health is not None:
            self._warn(self.health.check_stats(self.step, record))
        if self._writer is not None:
            for key, value in record.items():
                if key != "step":
                    self._writer.add_scalar(f"train/{key}", value, self.step)
        if progress is not None:
            progress.set_postfix(
                {k: f"{v:.3g}" for k, v in record.items() if k != "step"}, refresh=False
            )

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
                append_record(self.run.metrics, result.record(step=self.step))
                if self._writer is not None:
                    self._writer.add_scalar(f"eval/{result.metric}", result.value, self.step)
        self._last_eval_step, self.last_metrics = self.step, results
        if self.evaluation.improved(results, self.step):  # the same results on every rank
            state = self.state_dict()
            if self.dist.is_main:
                ckpt.save_checkpoint(state, self.run.best)

    # ------------------------------------------------------------------------------------------
    # Files

    def _prepare_run_dir(self) -> None:
        if not self.dist.is_main:
            return
        self.run.root.mkdir(parents=True, exist_ok=True)
        self.run.config.write_text(self.cfg.to_yaml(), encoding="utf-8")
        self._log_file = logging.FileHandler(self.run.log, encoding="utf-8")
        self._log_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(self._log_file)
        if log.getEffectiveLevel() > logging.INFO:
            log.setLevel(logging.INFO)  # the run's log.txt keeps the INFO lines
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
        if self.cfg.output.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.run.events))

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
        if self._writer is not None:
            from gankit.runfolder.images import make_grid

            self._writer.add_image(
                "samples", make_grid(images, self.cfg.train.grid_size), self.step
            )
            if ratio is not None:
                self._writer.add_scalar("health/diversity_ratio", ratio, self.step)
        return path

    def _warn(self, warning: str | None) -> None:
        """A health warning: to the log and TensorBoard."""
        if warning is None:
            return
        log.warning(warning)
        if self._writer is not None:
            self._writer.add_text("health", warning, self.step)

    def state_dict(self) -> dict[str, Any]:
        """The whole training state. With several ranks a collective (every rank must call it):
        ``ranks`` holds each rank's own random streams, sampler and objective state, in order;
        the top-level ``rng`` and ``loader`` are rank 0's."""
        rank_state = self._rank_state()
        return {
            "family": self.cfg.family,
            "config": self.cfg.to_dict(),
            "step": self.step,
            "num_classes": self.objective.num_classes,
            "networks": {n: net.state_dict() for n, net in self.objective.networks.items()},
            "ema": self.ema.shadow.state_dict() if self.ema else None,
            "optimizers": {n: opt.state_dict() for n, opt in self.optimizers.items()},
            "scaler": self.scaler.state_dict(),
            "loader": self.loader.state_dict(),
            "fixed_inputs": self.fixed_inputs,
            "objective": self.objective.extra_state(),
            "best": self.evaluation.best if self.evaluation else None,
            "rng": rank_state["rng"],
            "guard": self.guard.state_dict(),
            "world_size": self.dist.world_size,
            "ranks": self.dist.all_gather_object(rank_state) if self.dist.enabled else None,
        }

    def _rank_state(self) -> dict[str, Any]:
        """What differs between ranks: RNG states, the sampler's augmentation draws, the
        objective's extra state (e.g. an image pool); on the CPU when gathered from ranks."""
        state = {
            "rng": ckpt.capture_rng(),
            "loader": self.loader.state_dict(),
            "objective": self.objective.extra_state(),
        }
        return _to_cpu(state) if self.dist.enabled else state

    def save_checkpoint(self) -> Path:
        """Write ``checkpoints/latest.pt`` atomically. With ``train.keep_checkpoints`` = N > 1
        the previous latest stays as ``step-XXXXXX.pt`` (a hard link: no copy), N - 1 of them.

        A failed write (disk full, permissions) leaves the previous checkpoint intact and is one
        :class:`CheckpointError` line."""
        latest, keep = self.run.latest, self.cfg.train.keep_checkpoints
        previous = self._latest_step
        state = self.state_dict()  # a collective with several ranks
        failure = None
        if self.dist.is_main:
            try:
                if keep > 1 and latest.is_file() and previous is not None and previous != self.step:
                    ckpt.keep_copy(latest, self.run.step_checkpoint(previous))
                ckpt.save_checkpoint(state, latest)
            except OSError as exc:
                failure = str(exc.strerror or exc)
        if self.dist.enabled:  # every rank stops with rank 0's error, none waits forever
            failure = self.dist.broadcast_object(failure)
        if failure is not None:
            before = f"step {previous}" if previous is not None else "none"
            raise CheckpointError(
                f"could not write the checkpoint of step {self.step} to {latest} "
                f"({failure}); the previous checkpoint ({before}) is intact"
            )
        self._latest_step = self.step
        if self.dist.is_main:
            ckpt.prune(self.run.checkpoints, keep - 1)
        return latest

    def _resume(self) -> None:
        state = ckpt.load_checkpoint(self.run.latest, map_location=self.device)
        if state["family"] != self.cfg.family:
            raise CheckpointError(
                f"{self.run.latest}: a {state['family']!r} checkpoint, not {self.cfg.family!r}"
            )
        differences = ckpt.architecture_differences(state["config"], self.cfg.to_dict())
        if differences:
            raise CheckpointError(
                f"cannot resume {self.run.root} with a changed architecture: "
                + "; ".join(differences)
            )
        if state["loader"]["dataset_size"] != len(self.images):
            raise CheckpointError(
                f"cannot resume {self.run.root}: the dataset has {len(self.images)} images, the "
                f"checkpoint was trained on {state['loader']['dataset_size']}"
            )
        self._load_state(state)
        if self.dist.is_main:
            for partial in self.run.checkpoints.glob(".*.tmp"):  # a write killed half-way
                partial.unlink(missing_ok=True)
            truncate_after(self.run.losses, self.step)
            truncate_after(self.run.metrics, self.step)
        saved_world = int(state.get("world_size") or 1)
        log.info("resumed %s at step %d", self.run.root, self.step)
        if saved_world != self.dist.world_size:
            log.info(
                "the checkpoint was written by %d processes, this run has %d: the global batch "
                "stays train.batch_size=%d (%d per process), the data order continues at the same "
                "position, the random streams of the processes are re-seeded",
                saved_world, self.dist.world_size, self.cfg.train.batch_size,
                self.loader.batch_size,
            )  # fmt: skip

    def _load_state(self, state: dict[str, Any]) -> None:
        """Everything a checkpoint holds back into the trainer (after _resume's checks)."""
        for name, network in self.objective.networks.items():
            network.load_state_dict(state["networks"][name])
        if self.ema is not None and state["ema"] is not None:
            self.ema.shadow.load_state_dict(state["ema"])
        for name, optimizer in self.optimizers.items():
            # The implementation (fused or not) is this run's choice, not the checkpoint's:
            # load_state_dict would otherwise bring back the saved groups' flags.
            flags = [
                {k: g[k] for k in ("fused", "foreach") if k in g} for g in optimizer.param_groups
            ]
            optimizer.load_state_dict(state["optimizers"][name])
            for group, own in zip(optimizer.param_groups, flags, strict=True):
                group.update(own)
        self.scaler.load_state_dict(state["scaler"])
        self.fixed_inputs = {k: v.to(self.device) for k, v in state["fixed_inputs"].items()}
        self.step = int(state["step"])
        if self.evaluation is not None:
            self.evaluation.best = state.get("best")
        self._latest_step = self.step
        if "guard" in state:
            self.guard.load_state_dict(state["guard"])
        self._load_rank_state(state)

    def _load_rank_state(self, state: dict[str, Any]) -> None:
        """This rank's random streams, sampler and objective state. Saved by as many ranks as
        now: each rank continues its own exactly. Saved by another number: the sampler
        continues at the same global position (see InfiniteLoader.load_state_dict), the
        objective's extra state is rank 0's, and the torch RNG of every rank is re-seeded from
        (train.seed, rank, step)."""
        ranks = state.get("ranks")
        same_world = int(state.get("world_size") or 1) == self.dist.world_size
        if same_world and ranks:
            own = ranks[self.dist.rank]
        else:
            own = {"rng": state["rng"], "loader": state["loader"], "objective": state["objective"]}
        self.objective.load_extra_state(own["objective"])
        self.loader.load_state_dict(own["loader"])
        ckpt.restore_rng(own["rng"])
        if not same_world:
            torch.manual_seed(distributed.rank_seed(self.cfg.train.seed, self.dist.rank, self.step))

    def _on_nonfinite(self) -> None:
        """``nonfinite_patience`` steps in a row were skipped: roll back or stop."""
        guard, train = self.guard, self.cfg.train
        what = (
            f"losses or gradients were NaN/Inf in {guard.streak} steps in a row (the last: step "
            f"{self.step - 1}; {guard.skipped} optimiser steps skipped in all)"
        )
        if train.nonfinite == "stop" or guard.rollbacks >= MAX_ROLLBACKS:
            reason = "train.nonfinite=stop" if train.nonfinite == "stop" else (
                f"{MAX_ROLLBACKS} rollbacks did not help")  # fmt: skip
            raise TrainingDiverged(
                f"{what}; stopped ({reason}); the last good checkpoint is {self.run.latest} "
                "(resume it with a lower learning rate)"
            )
        if not self.run.latest.is_file():
            raise TrainingDiverged(f"{what}; no checkpoint to roll back to: lower the learning "
                                   "rate or set train.checkpoint_every")  # fmt: skip
        rollbacks, skipped = guard.rollbacks + 1, guard.skipped
        self._load_state(ckpt.load_checkpoint(self.run.latest, map_location=self.device))
        guard.rollbacks, guard.skipped, guard.streak = rollbacks, skipped, 0
        guard.lr_scale = ROLLBACK_LR_FACTOR**rollbacks
        self._stats, self._stats_count = {}, {}
        if not self.dist.is_main:
            return
        truncate_after(self.run.losses, self.step)
        truncate_after(self.run.metrics, self.step)
        log.warning(
            "%s: rolled back to the checkpoint of step %d with learning rates x%g (rollback %d "
            "of at most %d)", what, self.step, guard.lr_scale, rollbacks, MAX_ROLLBACKS,
        )  # fmt: skip


def _to_cpu(tree: Any) -> Any:
    """``tree`` (dicts, lists, tuples of tensors and plain values) with every tensor on the CPU."""
    if isinstance(tree, torch.Tensor):
        return tree.cpu()
    if isinstance(tree, dict):
        return {k: _to_cpu(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_to_cpu(v) for v in tree)
    return tree
