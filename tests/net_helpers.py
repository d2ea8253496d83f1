"""Small tools for tests that look inside networks, and the translators' held-out data."""

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


def held_out_digits_and_edges(resolution: int, first: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Bundled digits from index ``first`` on (never trained on) and their true edge maps,
    both (N, 1, R, R) in [-1, 1]."""
    from gankit.data import load_images
    from gankit.resolve import build_config

    cfg = build_config({"family": "pix2pix", "data": {"source": "digits-edges",
                                                      "resolution": resolution}})  # fmt: skip
    images = load_images(cfg.data)
    return (images.images[first:].float() / 127.5 - 1, images.images_b[first:].float() / 127.5 - 1)
