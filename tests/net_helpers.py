"""Small tools for tests that look inside networks."""

from __future__ import annotations

import torch
from torch import nn


class Recorder:
    """Records the first input and the output of every forward pass of a module."""

    def __init__(self, module: nn.Module) -> None:
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []
        module.register_forward_hook(self._hook)

    def _hook(self, module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        self.calls.append((args[0].detach().clone(), output.detach().clone()))


def parameters_of(network: nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of every parameter, by name."""
    return {name: p.detach().clone() for name, p in network.named_parameters()}
