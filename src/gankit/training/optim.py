"""Each phase's optimiser: the run's settings filled into a family's :class:`Phase`."""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from gankit.config import TrainConfig
from gankit.errors import GankitError
from gankit.objectives import Phase

OPTIMIZERS = ("adam", "adamw", "rmsprop", "sgd")


def resolve_phase(phase: Phase, train: TrainConfig) -> Phase:
    """``phase`` with every optimiser setting it leaves None taken from ``train``: the learning
    rate of its role (``lr_g`` for a generator phase, else ``lr_d``), ``betas``, ``optimizer``."""
    lr = phase.lr if phase.lr is not None else (
        train.lr_g if phase.role == "generator" else train.lr_d)  # fmt: skip
    return dataclasses.replace(
        phase,
        lr=lr,
        betas=phase.betas if phase.betas is not None else train.betas,
        optimizer=phase.optimizer if phase.optimizer is not None else train.optimizer,
    )


def make_optimizer(
    phase: Phase, parameters: list[nn.Parameter], fused: bool = False
) -> torch.optim.Optimizer:
    """The optimiser of a resolved ``phase``; ``fused``: one fused kernel per step (Adam,
    AdamW, SGD; see :func:`gankit.training.fastpath.use_fused_optimizer`)."""
    implementation = {"fused": True} if fused else {}
    lr, betas = phase.lr, phase.betas
    assert lr is not None and betas is not None, "make_optimizer takes a resolved phase"
    if phase.optimizer == "adam":
        return torch.optim.Adam(parameters, lr=lr, betas=betas, **implementation)
    if phase.optimizer == "adamw":
        return torch.optim.AdamW(parameters, lr=lr, betas=betas, **implementation)
    if phase.optimizer == "rmsprop":
        return torch.optim.RMSprop(parameters, lr=lr)
    if phase.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=lr, momentum=betas[0], **implementation)
    raise GankitError(f"unknown optimizer {phase.optimizer!r}; valid: {', '.join(OPTIMIZERS)}")
