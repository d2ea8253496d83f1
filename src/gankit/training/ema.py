"""Exponential moving average of a generator's weights for sampling (Yazıcı et al. 2019)."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """Keeps ``shadow``, a frozen copy of ``network`` whose parameters follow
    shadow <- decay * shadow + (1 - decay) * param after each update; buffers (e.g. BN running
    statistics) are copied as they are.
    """

    def __init__(self, network: nn.Module, decay: float) -> None:
        self.decay = decay
        self.shadow = copy.deepcopy(network).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, network: nn.Module) -> None:
        shadow_params = list(self.shadow.parameters())
        params = [p.detach() for p in network.parameters()]
        torch._foreach_lerp_(shadow_params, params, 1.0 - self.decay)
        for shadow_buffer, buffer in zip(self.shadow.buffers(), network.buffers(), strict=True):
            shadow_buffer.copy_(buffer)
