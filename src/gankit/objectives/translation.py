"""The contract of image-to-image translators (CycleGAN, pix2pix, Siamese GAN, SPADE, SRGAN).

A translator's ``networks["generator"]`` maps a batch of domain-A images to domain B:
(N, C_a, h, w) in [-1, 1] -> (N, C_b, h * scale, w * scale) in [-1, 1], fully convolutionally,
so :mod:`gankit.translate` can apply it tile by tile to images of any size; per-image
normalisation then takes whole-image statistics (:mod:`gankit.translate.statistics`).

Training batches come from a two-domain source (see :class:`gankit.data.base.ImageSet`):
{"a": (B, C_a, R, R), "b": (B, C_b, R, R)} in [-1, 1], paired or not. Generator phases need
data too (``Phase.needs_data``). The fixed sample grids show each input beside its translation.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from gankit.data.base import ImageSet
from gankit.errors import ConfigError, GankitError
from gankit.objectives.base import Batch, Objective, Phase


class TranslationObjective(Objective):
    """Base of the translators: ``translate``, grids of (input | output) pairs, data checks."""

    task: ClassVar[str] = "translate"
    scale: ClassVar[int] = 1  # output side / input side (SRGAN: 4)
    needs_two_domains: ClassVar[bool] = True  # False: trains on one domain (SRGAN: B only)
    needs_pairs: ClassVar[bool] = False  # True: rows of A and B must correspond (pix2pix, SPADE)

    def check_data(self, images: ImageSet) -> None:
        family, source = self.family, self.data_cfg.source
        if self.needs_two_domains and not images.two_domains:
            raise ConfigError(
                f"{family} translates domain A to domain B: data.source={source!r} has one "
                "domain; use a two-domain source (e.g. digits-edges, unpaired, paired)"
            )
        if self.needs_pairs and not images.paired:
            raise ConfigError(f"{family} trains on pairs: data.source={source!r} is unpaired "
                              "(set data.paired=true where the source allows it)")  # fmt: skip

    @property
    def input_channels(self) -> int:
        """Channels of the translator's input (domain A; label maps: 1)."""
        return self.data_cfg.domain_a_channels

    @property
    def tile_size(self) -> int:
        """The input side the translator was trained on: the default tile for HD inference."""
        return self.data_cfg.resolution

    @property
    def input_multiple(self) -> int:
        """Input sides the generator accepts are multiples of this (its total downsampling)."""
        return 1

    def phases(self) -> list[Phase]:
        """By default a discriminator step then a generator step, each on a fresh batch."""
        return self.adversarial_phases(generator_needs_data=True)

    def translate(self, images: torch.Tensor, network: nn.Module | None = None) -> torch.Tensor:
        """Domain-A images (N, C_a, h, w) in [-1, 1] -> domain B (N, C_b, h*scale, w*scale)."""
        return (network or self.networks[self.sample_network])(images)

    def source_images(self, batch: Batch) -> torch.Tensor:
        """The generator's input in a training batch: domain A (SRGAN: B made small)."""
        return batch["a"]

    def fixed_inputs(
        self, n: int, generator: torch.Generator, data: Iterator[Batch]
    ) -> dict[str, torch.Tensor]:
        """{"a": n fixed domain-A images} from the data (the grids' inputs)."""
        return {"a": self.source_images(next(data))}

    def sample_inputs(
        self, n: int, generator: torch.Generator | None = None, **conditions: Any
    ) -> dict[str, torch.Tensor]:
        raise GankitError(
            f"{self.family} translates images and samples nothing from noise: use "
            "`gankit translate RUN IMAGE` (or gankit.load(RUN).translate(image))"
        )

    def display_input(self, images: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """Inputs (N, C_a, h, w) shown beside outputs ``like`` (N, C_b, H, W): resized by
        nearest neighbour and grayscale repeated to the outputs' channels."""
        if images.shape[-2:] != like.shape[-2:]:
            images = F.interpolate(images, size=like.shape[-2:], mode="nearest")
        if images.shape[1] != like.shape[1]:
            images = images.mean(dim=1, keepdim=True).expand(-1, like.shape[1], -1, -1)
        return images

    def generate(
        self, inputs: dict[str, torch.Tensor], network: nn.Module | None = None
    ) -> torch.Tensor:
        """(n, C_b, H, 2W) in [-1, 1]: each input (left) beside its translation (right)."""
        output = self.translate(inputs["a"], network)
        return torch.cat([self.display_input(inputs["a"], output).to(output.dtype), output], -1)

    def metric_view(self, images: torch.Tensor) -> torch.Tensor:
        """The translations: the right half of :meth:`generate`'s pairs."""
        return images[..., images.shape[-1] // 2 :]
