"""The non-finite guard: a step whose loss or gradients are NaN/Inf is never applied.

Each optimiser step is checked with one host sync: the loss and the total gradient norm of the
phase's parameters must be finite (with fp16 loss scaling only the loss: the gradient scaler
already skips steps with overflowing gradients and lowers its scale). A bad step is skipped:
gradients dropped, no optimiser update, no hook, its statistics not logged. ``patience``
training steps in a row with a skipped step mean the run cannot recover by skipping alone (e.g.
batch-norm running statistics already hold NaN): the trainer then rolls back to its latest
checkpoint with the learning rates halved, or stops, as ``train.nonfinite`` says.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from gankit.errors import GankitError

MAX_ROLLBACKS = 3
ROLLBACK_LR_FACTOR = 0.5


class TrainingDiverged(GankitError):
    """The losses became NaN or infinite."""


@dataclass
class NonFiniteGuard:
    patience: int  # training steps in a row with a skipped step before the policy acts
    skipped: int = 0  # optimiser steps skipped over the whole run
    streak: int = 0  # training steps in a row that had a skipped optimiser step
    rollbacks: int = 0  # rollbacks done so far
    lr_scale: float = 1.0  # ROLLBACK_LR_FACTOR ** rollbacks, applied to every phase's lr
    _bad_this_step: bool = False

    @staticmethod
    def is_finite(
        loss: torch.Tensor, optimizer: torch.optim.Optimizer, check_gradients: bool = True
    ) -> bool:
        """Whether the loss (a scalar) and every gradient of ``optimizer``'s parameters are
        finite; one host sync."""
        checks = [loss.detach().float().reshape(1)]
        if check_gradients:
            grads = [p.grad for g in optimizer.param_groups for p in g["params"]
                     if p.grad is not None]  # fmt: skip
            if grads:
                checks.append(torch.nn.utils.get_total_norm(grads).float().reshape(1))
        return bool(torch.isfinite(torch.cat(checks)).all())

    def skip(self) -> None:
        self.skipped += 1
        self._bad_this_step = True

    def end_step(self) -> None:
        """Called after every training step."""
        self.streak = self.streak + 1 if self._bad_this_step else 0
        self._bad_this_step = False

    @property
    def exhausted(self) -> bool:
        return self.streak >= self.patience

    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if not k.startswith("_")}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.skipped, self.streak = int(state["skipped"]), int(state["streak"])
        self.rollbacks, self.lr_scale = int(state["rollbacks"]), float(state["lr_scale"])


def rollback_or_stop(guard: NonFiniteGuard, step: int, policy: str, latest: Path) -> str:
    """``patience`` steps in a row were skipped: the line that says so, when ``policy``
    (``train.nonfinite``) and the rollbacks left allow a rollback to ``latest``; else
    :class:`TrainingDiverged` with what to do."""
    what = (
        f"losses or gradients were NaN/Inf in {guard.streak} steps in a row (the last: step "
        f"{step - 1}; {guard.skipped} optimiser steps skipped in all)"
    )
    if policy == "stop" or guard.rollbacks >= MAX_ROLLBACKS:
        reason = "train.nonfinite=stop" if policy == "stop" else (
            f"{MAX_ROLLBACKS} rollbacks did not help")  # fmt: skip
        raise TrainingDiverged(f"{what}; stopped ({reason}); the last good checkpoint is "
                               f"{latest} (resume it with a lower learning rate)")  # fmt: skip
    if not latest.is_file():
        raise TrainingDiverged(f"{what}; no checkpoint to roll back to: lower the learning "
                               "rate or set train.checkpoint_every")  # fmt: skip
    return what


def out_of_memory(device: torch.device, batch: int, step: int, precision: str) -> GankitError:
    """Running out of memory as one line that says what to change."""
    used = ""
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        used = f" ({(total - free) / 2**30:.1f} of {total / 2**30:.1f} GiB in use)"
        torch.cuda.empty_cache()
    return GankitError(
        f"out of memory on {device}{used} at train.batch_size={batch}, step {step}: try "
        f"--set train.batch_size={max(batch // 2, 1)}"
        + (" or --set train.precision=bf16" if precision == "fp32" else "")
    )
