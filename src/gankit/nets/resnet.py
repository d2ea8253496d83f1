"""ResNet generator and discriminator of SNGAN, SAGAN and BigGAN, parameterised by resolution.

resolution = s0 * 2**k with s0 in 4..7 (32 -> 4x4 and k = 3 blocks, 28 -> 7x7 and 2, 64 -> 4x4
and 4). The generator starts from an s0 x s0 map of ``width * 2**k`` channels (capped at
``max_channels``) and each of its k up-blocks halves the channels, ending at ``width``; the
discriminator mirrors it: an optimised first block to ``width`` channels, doublings down to
s0 x s0, one more block without downsampling, ReLU, global sum pooling and the (projection)
head (Miyato et al. 2018, appendix B). At 128x128 with width = ch and max_channels = 16 ch this
is BigGAN's layout (Brock et al. 2019, appendix B); other sizes follow the same doubling
rule, so SNGAN's CIFAR-10 networks (constant 256/128 channels, D ending at 8x8) are approximated,
not copied.
"""

from __future__ import annotations

from functools import partial
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn

from gankit.errors import ConfigError
from gankit.nets.blocks import (
    ClassConditionalBatchNorm2d,
    ConditionalBatchNorm2d,
    Init,
    NormFactory,
    PlainBatchNorm2d,
    ProjectionHead,
    ResBlockDown,
    ResBlockUp,
    SelfAttention,
    conv2d,
    linear,
)
from gankit.nets.dcgan import dcgan_stages


def resnet_stages(resolution: int) -> tuple[int, int]:
    """(s0, k) with resolution = s0 * 2**k, 4 <= s0 < 8 and k >= 1 (as DCGAN's)."""
    return dcgan_stages(resolution, "the ResNet GANs", "16, 28, 32, 64, 128")


def _check_attention(attention_at: int | None, allowed: list[int], network: str) -> None:
    if attention_at is not None and attention_at not in allowed:
        raise ConfigError(
            f"model.attention_at={attention_at}: the {network} has feature maps of "
            f"{', '.join(map(str, allowed))} pixels here; choose one of them or null"
        )


def split_sizes(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` near-equal sizes, larger ones first: (10, 4) -> 3, 3, 2, 2."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


class ResNetGenerator(nn.Module):
    """z: (N, latent_dim) [, labels: (N,) int64] -> images: (N, C, R, R) in [-1, 1].

    z (or its first chunk) -> linear -> (width * 2**k) x s0 x s0 -> k ResBlockUp [self-attention
    after the block that outputs ``attention_at`` pixels] -> BN -> ReLU -> conv3x3 -> tanh.

    The block norms are plain BN (unconditional), per-class BN (``num_classes`` > 0), or, with
    ``hierarchical`` or ``shared_embedding_dim``, BN conditioned on a vector: BigGAN's
    [z_chunk, shared_embedding(y)], z split into k + 1 chunks, the first for the linear layer and
    one per block (Brock et al. 2019, section 3 and appendix B).
    """

    def __init__(
        self,
        *,
        latent_dim: int,  # length of z
        resolution: int,  # side R of the images made
        channels: int,  # image channels C
        width: int = 64,  # channels of the last block; earlier blocks double it
        num_classes: int = 0,  # > 0: class-conditional norms; labels are then required
        attention_at: int | None = None,  # feature size to insert self-attention at; None: none
        spectral_norm: bool = False,  # spectral norm on every conv/linear (SAGAN, BigGAN)
        hierarchical: bool = False,  # BigGAN: z chunks condition each block's norms
        shared_embedding_dim: int | None = None,  # BigGAN: one class embedding for all blocks
        max_channels: int = 1024,  # cap on any layer's channels
        init: Init = "xavier",  # "orthogonal" for BigGAN
    ) -> None:
        super().__init__()
        start, doublings = resnet_stages(resolution)
        sizes = [start * 2**i for i in range(1, doublings + 1)]  # after each up-block
        _check_attention(attention_at, sizes, "generator")
        widths = [min(width * 2**level, max_channels) for level in range(doublings, -1, -1)]
        self.latent_dim, self.hierarchical = latent_dim, hierarchical
        self.start_shape = (widths[0], start, start)
        self.chunk_sizes = split_sizes(latent_dim, doublings + 1) if hierarchical else [latent_dim]
        if min(self.chunk_sizes) < 1:
            raise ConfigError(f"model.latent_dim={latent_dim} is below the {doublings + 1} chunks")
        self.shared = None
        if shared_embedding_dim and num_classes > 0:
            self.shared = nn.Embedding(num_classes, shared_embedding_dim)
            nn.init.normal_(self.shared.weight, 0.0, 0.02)
        self.needs_labels = num_classes > 0
        self.project = linear(self.chunk_sizes[0], widths[0] * start * start, spectral_norm, init)
        self.blocks = nn.ModuleList()
        for i, (fan_in, fan_out) in enumerate(pairwise(widths)):
            norm = self._norm_factory(i, num_classes, shared_embedding_dim, spectral_norm, init)
            self.blocks.append(
                ResBlockUp(
                    in_channels=fan_in,
                    out_channels=fan_out,
                    norm=norm,
                    spectral=spectral_norm,
                    init=init,
                )
            )
        self.attention_after = -1 if attention_at is None else sizes.index(attention_at)
        self.attention = (
            SelfAttention(widths[self.attention_after + 1], spectral_norm, init)
            if attention_at is not None
            else None
        )
        self.out_norm = nn.BatchNorm2d(widths[-1])
        self.to_image = conv2d(widths[-1], channels, 3, spectral_norm, init)

    def _norm_factory(
        self, block: int, num_classes: int, shared_dim: int | None, spectral: bool, init: Init
    ) -> NormFactory:
        condition_dim = (self.chunk_sizes[block + 1] if self.hierarchical else 0) + (
            shared_dim if self.shared is not None else 0
        )
        if self.hierarchical or self.shared is not None:

            def conditional_norm(channels: int) -> nn.Module:  # a NormFactory: channels by position
                return ConditionalBatchNorm2d(
                    channels=channels, condition_dim=condition_dim, spectral=spectral, init=init
                )

            return conditional_norm
        if num_classes > 0:
            return partial(ClassConditionalBatchNorm2d, num_classes=num_classes)
        return PlainBatchNorm2d

    def _conditions(
        self, z: torch.Tensor, labels: torch.Tensor | None
    ) -> tuple[torch.Tensor, list[torch.Tensor | None]]:
        """The linear layer's input and each block's condition (labels, a vector or None)."""
        if self.needs_labels and labels is None:
            raise ValueError("this generator is class-conditional: pass labels")
        first, *rest = z.split(self.chunk_sizes, dim=1)
        chunks: list[torch.Tensor | None] = (
            list(rest) if self.hierarchical else [None] * len(self.blocks)
        )
        embedded = self.shared(labels) if self.shared is not None else None
        if not self.hierarchical and embedded is None:
            return first, [labels] * len(self.blocks)
        conditions: list[torch.Tensor | None] = []
        for chunk in chunks:
            parts = [part for part in (chunk, embedded) if part is not None]
            conditions.append(torch.cat(parts, dim=1))
        return first, conditions

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        first, conditions = self._conditions(z, labels)
        h = self.project(first).view(z.shape[0], *self.start_shape)
        for i, (block, condition) in enumerate(zip(self.blocks, conditions, strict=True)):
            h = block(h, condition)
            if i == self.attention_after and self.attention is not None:
                h = self.attention(h)
        return torch.tanh(self.to_image(F.relu(self.out_norm(h))))


class ResNetDiscriminator(nn.Module):
    """images: (N, C, R, R) in [-1, 1] [, labels: (N,) int64] -> scores: (N,) raw (no sigmoid).

    optimised ResBlockDown to ``width`` -> k - 1 ResBlockDown doubling the channels (capped) ->
    one ResBlockDown without downsampling at s0 x s0 [self-attention after the block that outputs
    ``attention_at`` pixels] -> ReLU -> sum over positions -> :class:`ProjectionHead`
    (projection term when ``num_classes`` > 0, Miyato & Koyama 2018).
    """

    def __init__(
        self,
        *,
        resolution: int,  # side R of the images judged
        channels: int,  # image channels C
        width: int = 64,  # channels of the first block; later ones double
        num_classes: int = 0,  # > 0: projection discriminator; labels are then required
        attention_at: int | None = None,  # feature size to insert self-attention at; None: none
        spectral_norm: bool = True,  # spectral norm on every layer (SNGAN, SAGAN, BigGAN)
        max_channels: int = 1024,  # cap on any layer's channels
        init: Init = "xavier",  # "orthogonal" for BigGAN
    ) -> None:
        super().__init__()
        _, doublings = resnet_stages(resolution)
        sizes = [resolution // 2**i for i in range(1, doublings + 1)]  # after each down-block
        _check_attention(attention_at, sizes, "discriminator")
        widths = [min(width * 2**level, max_channels) for level in range(doublings)]
        blocks = [
            ResBlockDown(
                in_channels=channels,
                out_channels=widths[0],
                first=True,
                spectral=spectral_norm,
                init=init,
            )
        ]
        for fan_in, fan_out in pairwise(widths):
            blocks.append(
                ResBlockDown(
                    in_channels=fan_in, out_channels=fan_out, spectral=spectral_norm, init=init
                )
            )
        blocks.append(
            ResBlockDown(
                in_channels=widths[-1],
                out_channels=widths[-1],
                downsample=False,
                spectral=spectral_norm,
                init=init,
            )
        )
        self.blocks = nn.ModuleList(blocks)
        self.attention_after = -1 if attention_at is None else sizes.index(attention_at)
        self.attention = (
            SelfAttention(widths[self.attention_after], spectral_norm, init)
            if attention_at is not None
            else None
        )
        self.head = ProjectionHead(
            features=widths[-1], num_classes=num_classes, spectral=spectral_norm, init=init
        )

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """phi(x): (N, C, R, R) -> (N, F), the summed ReLU features of the last block."""
        h = images
        for i, block in enumerate(self.blocks):
            h = block(h)
            if i == self.attention_after and self.attention is not None:
                h = self.attention(h)
        return F.relu(h).sum(dim=(2, 3))

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.features(images), labels)
