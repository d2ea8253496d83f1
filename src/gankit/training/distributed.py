"""Data-parallel training over several processes, one per device, launched by ``torchrun``.

``torchrun --nproc_per_node N -m gankit train ...`` starts N copies of the same command; each reads
its RANK, WORLD_SIZE and LOCAL_RANK from the environment (:func:`setup`) and joins one process
group: NCCL on CUDA (device ``cuda:LOCAL_RANK``), gloo on the CPU. In a single process (no
WORLD_SIZE, or 1) nothing here runs: :func:`setup` returns a :class:`Distributed` of world size 1
and the trainer skips every collective.

How the ranks stay one model (what the trainer does with this module):

- ``train.batch_size`` is the **global** batch: each rank takes ``batch_size / world_size`` images
  (an error unless divisible) from its share of one shared permutation (``InfiniteLoader``), so
  the data of a global batch is the data of a single-process batch.
- The networks start identical (same seed, then broadcast from rank 0) and receive identical
  averaged gradients, so they stay identical bit for bit without ever being compared.
- **Gradients: one bucketed all-reduce per optimiser step** (:meth:`Distributed.average_gradients`)
  instead of a ``DistributedDataParallel`` wrapper per network. A GAN phase back-propagates through
  networks it does not optimise (G's loss through a frozen D), uses a network several times before
  one backward (D on real and fake), differentiates twice (gradient penalties), runs only every k
  steps (lazy regularisation) or leaves layers without gradients (ProGAN's ungrown blocks); and the
  objectives call their networks directly, not through a wrapper. DDP's reducer hooks every
  parameter of a wrapped module and expects each forward through the wrapper to be followed by one
  backward that reaches all of them: the frozen D needs ``no_sync``, the ungrown blocks
  ``find_unused_parameters`` (a graph walk every step), and a network used outside its wrapper is
  silently never synchronised. Here the trainer, after a phase's ``backward()``, averages exactly
  the gradients that phase's optimiser is about to apply, in one flat buffer per dtype (one
  collective, usually): nothing is reduced for frozen networks, nothing depends on how the
  objective calls its networks, and no parameter needs a hook. The cost is that the all-reduce does
  not overlap the backward pass, as DDP's bucketing would; for GAN-sized networks it is a few
  milliseconds per step on NVLink.
- The same buffer carries the loss and each rank's "stop requested" flag, so the non-finite guard
  (a NaN anywhere makes the averaged gradients NaN everywhere) and SIGINT/SIGTERM decisions agree on
  every rank without another collective.
- Buffers (batch-norm running statistics) are broadcast from rank 0 after every training step, as
  DDP's ``broadcast_buffers`` does; with ``train.sync_batchnorm`` batch norm normalises with the
  statistics of the global batch instead (:func:`convert_sync_batchnorm`).
- Only rank 0 writes files. Checkpoints gather every rank's RNG and sampler state; metrics gather
  the features of every rank's share of the generated images (:meth:`Distributed.gather_rows`).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import importlib
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from gankit.errors import GankitError

log = logging.getLogger("gankit")


@dataclass(frozen=True)
class Distributed:
    """This process's place among the training processes; world size 1 = a single process."""

    rank: int = 0  # global rank, 0 .. world_size - 1; rank 0 writes every file
    world_size: int = 1
    local_rank: int = 0  # rank on this machine: the CUDA device index

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def local_batch(self, batch_size: int) -> int:
        """Images per rank for the global ``batch_size`` (train.batch_size)."""
        if batch_size % self.world_size:
            raise GankitError(
                f"train.batch_size={batch_size} is the global batch and must be divisible by the "
                f"{self.world_size} training processes (WORLD_SIZE); e.g. --set train.batch_size="
                f"{max(batch_size // self.world_size, 1) * self.world_size}"
            )
        return batch_size // self.world_size

    def shard(self, n: int) -> tuple[int, int]:
        """This rank's rows [start, stop) of n rows split in rank order (sizes differ by <= 1)."""
        return n * self.rank // self.world_size, n * (self.rank + 1) // self.world_size

    # ------------------------------------------------------------------------------------------
    # Collectives: every rank must call them, in the same order

    def average_gradients(
        self, parameters: Iterable[nn.Parameter], extras: torch.Tensor
    ) -> torch.Tensor:
        """Replace the gradients of ``parameters`` by their mean over the ranks; return the mean
        of ``extras`` (a float tensor on the gradients' device) from the same all-reduce.

        Parameters without a gradient are left out. Which parameters have one depends only on the
        code path (phase, step, stage), never on the data, so every rank sends the same layout.
        The result is identical on every rank (each element is reduced once, then copied).
        """
        grads = [p.grad for p in parameters if p.grad is not None]
        groups: dict[torch.dtype, list[torch.Tensor]] = {}
        for grad in grads:
            groups.setdefault(grad.dtype, []).append(grad)
        extras = extras.detach().float().reshape(-1)
        groups.setdefault(torch.float32, [])
        reduced_extras = extras
        for dtype, members in groups.items():
            pieces = [g.reshape(-1) for g in members]
            if dtype == torch.float32:
                pieces.append(extras)
            flat = torch.cat(pieces)
            dist.all_reduce(flat)
            flat.div_(self.world_size)
            if dtype == torch.float32:
                reduced_extras = flat[flat.numel() - extras.numel() :]
            offset = 0
            for grad in members:
                grad.copy_(flat[offset : offset + grad.numel()].view_as(grad))
                offset += grad.numel()
        return reduced_extras

    def mean(self, tensor: torch.Tensor) -> torch.Tensor:
        """The mean of ``tensor`` over the ranks (a new tensor)."""
        total = tensor.detach().clone()
        dist.all_reduce(total)
        return total / self.world_size

    def broadcast_tensors(self, tensors: Iterable[torch.Tensor]) -> None:
        """Overwrite ``tensors`` on every rank with rank 0's: one broadcast per dtype."""
        groups: dict[torch.dtype, list[torch.Tensor]] = {}
        for tensor in tensors:
            groups.setdefault(tensor.dtype, []).append(tensor)
        with torch.no_grad():
            for members in groups.values():
                flat = torch.cat([t.reshape(-1) for t in members])
                dist.broadcast(flat, src=0)
                offset = 0
                for tensor in members:
                    tensor.copy_(flat[offset : offset + tensor.numel()].view_as(tensor))
                    offset += tensor.numel()

    def broadcast_object(self, value: Any) -> Any:
        """Rank 0's ``value`` (any picklable object) on every rank."""
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def all_gather_object(self, value: Any) -> list[Any]:
        """Every rank's ``value``, in rank order, on every rank."""
        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, value)
        return gathered

    def gather_rows(self, rows: np.ndarray) -> np.ndarray | None:
        """Every rank's ``rows`` (n_r, D), concatenated in rank order on rank 0; None elsewhere."""
        gathered: list[Any] | None = [None] * self.world_size if self.is_main else None
        dist.gather_object(rows, gathered, dst=0)
        return np.concatenate(gathered) if gathered is not None else None

    def barrier(self) -> None:
        """Wait until every rank gets here."""
        dist.barrier()

    @contextlib.contextmanager
    def rank_zero_first(self) -> Iterator[None]:
        """Rank 0 runs the block first (e.g. a dataset download), then the others."""
        if not self.is_main:
            dist.barrier()
        yield
        if self.is_main:
            dist.barrier()


SINGLE = Distributed()


def setup(device: torch.device) -> tuple[Distributed, torch.device]:
    """Join the process group that ``torchrun`` describes in the environment, or run alone.

    ``device`` is the resolved ``train.device``; with several processes "cuda" becomes
    ``cuda:LOCAL_RANK`` and the backend is NCCL, on the CPU gloo. A process group the caller
    initialised already is used as it is. Ranks other than 0 log warnings and errors only.
    """
    initialised = dist.is_available() and dist.is_initialized()
    if initialised:
        rank, world_size = dist.get_rank(), dist.get_world_size()
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    else:
        world_size = _env_int("WORLD_SIZE", 1)
        if world_size <= 1:
            return SINGLE, device
        if "RANK" not in os.environ:
            raise GankitError(
                f"WORLD_SIZE={world_size} but RANK is not set: launch the processes with "
                "torchrun (README: Multi-GPU and multi-node)"
            )
        rank, local_rank = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    if world_size <= 1:
        return SINGLE, device
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    elif device.type != "cpu":
        raise GankitError(f"distributed training runs on cuda (NCCL) or cpu (gloo), not on "
                          f"{device.type}: set train.device to cuda or cpu")  # fmt: skip
    if not initialised:
        # The first optimiser imports torch._dynamo, which keeps a reference to a process group
        # that exists at that time: destroy_process_group() then cannot join gloo's threads, and
        # one of them may free a tensor while the interpreter shuts down (SIGABRT at exit).
        # Imported before the group exists, it holds none.
        importlib.import_module("torch._dynamo")
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(
            backend, rank=rank, world_size=world_size,
            device_id=device if device.type == "cuda" else None,
        )  # fmt: skip
        atexit.register(_shutdown)
    if rank != 0:
        log.setLevel(max(log.getEffectiveLevel(), logging.WARNING))
    return Distributed(rank, world_size, local_rank), device


def _shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise GankitError(f"environment variable {name}={value!r} is not an integer") from None


def rank_seed(seed: int, rank: int, step: int = 0) -> int:
    """The seed of rank ``rank``'s own random stream (noise, dropout) from ``train.seed``: the
    ranks of a global batch must not draw the same latent vectors."""
    return (seed * 1_000_003 + (rank + 1) * 7_919 + step * 104_729) % (2**63)


# --------------------------------------------------------------------------------------------------
# Synchronised batch norm


class _SumOverRanks(torch.autograd.Function):
    """all_reduce(SUM) with a gradient: the gradient of every rank's input is the sum of the
    output gradients of all ranks."""

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor) -> torch.Tensor:
        total = tensor.clone()
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        total = grad.clone()
        dist.all_reduce(total)
        return total


def _sum_over_ranks(tensor: torch.Tensor) -> torch.Tensor:
    return _SumOverRanks.apply(tensor)  # type: ignore[no-any-return]


class AnyDeviceSyncBatchNorm(_BatchNorm):
    """Batch norm over the global batch of all ranks, on any device and backend (gloo included;
    ``nn.SyncBatchNorm`` computes on CUDA only). Used as a base by :func:`convert_sync_batchnorm`.

    In training mode with several ranks: the per-channel mean is the all-reduced sum over the
    count, then the (biased) variance the all-reduced sum of squared deviations from it: two
    differentiable all-reduces (their backward all-reduces the gradients), as exact as one
    process's two-pass batch norm. Running statistics take the unbiased global variance, so they
    are the same on every rank. Otherwise plain batch norm.
    """

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized()
                and dist.get_world_size() > 1):  # fmt: skip
            return super().forward(input)
        self._check_input_dim(input)
        x = input.float()
        channels = x.shape[1]
        dims = [0, *range(2, x.dim())]
        shape = [1, channels] + [1] * (x.dim() - 2)
        count = torch.full((1,), x.numel() / channels, device=x.device)
        summed = _sum_over_ranks(torch.cat([x.sum(dims), count]))
        n = summed[-1].detach()
        mean = summed[:channels] / n
        centred = x - mean.view(shape)
        var = _sum_over_ranks(centred.square().sum(dims)) / n
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)  # type: ignore[union-attr,operator]
                factor = (self.momentum if self.momentum is not None
                          else 1.0 / float(self.num_batches_tracked))  # fmt: skip
                unbiased = var.detach() * (n / (n - 1).clamp(min=1))
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), factor)
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), factor)  # type: ignore[union-attr]
        return out.to(input.dtype)


@functools.cache
def _synced_class(cls: type[nn.Module], base: type[nn.Module]) -> type[nn.Module]:
    # cls first: a subclass's own forward (e.g. one that ignores a condition argument) still runs
    # and its super().forward() reaches the synchronised one; _check_input_dim stays cls's.
    return type(f"Sync{cls.__name__}", (cls, base), {"__module__": __name__})


def convert_sync_batchnorm(network: nn.Module, device: torch.device) -> int:
    """Make every batch-norm layer of ``network`` normalise over the global batch, in place
    (same parameters, buffers and state-dict keys); returns how many layers changed.

    The layers keep their own class (and call signature) with a synchronised forward mixed in:
    ``nn.SyncBatchNorm``'s fused kernels on CUDA, :class:`AnyDeviceSyncBatchNorm` elsewhere. In
    evaluation mode, or in a single process, they are plain batch norm.
    """
    base: type[nn.Module] = nn.SyncBatchNorm if device.type == "cuda" else AnyDeviceSyncBatchNorm
    changed = 0
    for module in network.modules():
        if isinstance(module, _BatchNorm) and not isinstance(
            module, (nn.SyncBatchNorm, AnyDeviceSyncBatchNorm)
        ):
            module.__class__ = _synced_class(type(module), base)
            if base is nn.SyncBatchNorm:
                module.process_group = None  # type: ignore[assignment]
            changed += 1
    return changed
