"""SRGAN networks (Ledig et al. 2017, "Photo-Realistic Single Image Super-Resolution Using a
Generative Adversarial Network", figure 4): the SRResNet generator and the VGG-style
discriminator, and the bicubic downsampling that makes the low-resolution inputs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from gankit.errors import ConfigError


def bicubic_downsample(images: torch.Tensor, factor: int) -> torch.Tensor:
    """(N, C, H, W) in [-1, 1] -> (N, C, H / factor, W / factor) in [-1, 1].

    Bicubic interpolation (a = -0.75, PyTorch's kernel) with antialiasing, i.e. the kernel
    stretched by ``factor`` like MATLAB's ``imresize`` (Ledig et al. 2017, section 3: "bicubic
    kernel with downsampling factor r"); the overshoot of the cubic kernel is clamped back to
    [-1, 1]. H and W must be multiples of ``factor``.
    """
    height, width = images.shape[-2:]
    if height % factor or width % factor:
        raise ConfigError(
            f"images of {height}x{width} pixels cannot be downsampled x{factor}: data.resolution "
            f"must be a multiple of {factor}"
        )
    small = F.interpolate(
        images,
        size=(height // factor, width // factor),
        mode="bicubic",
        align_corners=False,
        antialias=True,
    )
    return small.clamp(-1, 1)


class ResidualBlock(nn.Module):
    """conv3x3 -> BN -> PReLU -> conv3x3 -> BN, plus the input (figure 4, "B residual blocks").

    x: (N, C, H, W) -> (N, C, H, W). PReLU (He et al. 2015) has one slope per channel.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.BatchNorm2d(channels),
            nn.PReLU(channels),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class SRResNet(nn.Module):
    """Low-resolution images (N, C, h, w) in [-1, 1] -> (N, C, s h, s w) in [-1, 1], s = ``scale``.

    Figure 4 (generator): conv9x9 (``width``) -> PReLU; ``num_blocks`` residual blocks (B = 16);
    conv3x3 -> BN, plus the output of the first PReLU (the global skip); log2(s) upsampling
    blocks conv3x3 (4 ``width``) -> pixel shuffle x2 (Shi et al. 2016) -> PReLU; conv9x9 to C;
    tanh, so the output has the HR images' range [-1, 1] (section 3.2 scales HR images to
    [-1, 1]; the paper's LR inputs are in [0, 1], here they are in [-1, 1] like every gankit
    image: an affine change the first convolution absorbs). Fully convolutional; in evaluation
    mode the BNs use running statistics, so tiles do not depend on each other.
    """

    def __init__(
        self,
        *,
        channels: int,  # image channels C
        width: int = 64,  # feature channels (64 in the paper)
        num_blocks: int = 16,  # B residual blocks (16 in the paper)
        scale: int = 4,  # upscaling factor, a power of 2 (x4 in the paper)
    ) -> None:
        super().__init__()
        doublings = round(math.log2(scale))
        if scale < 2 or 2**doublings != scale:
            raise ConfigError(f"the SRResNet scale must be a power of 2 >= 2, got {scale}")
        self.scale = scale
        self.head = nn.Sequential(nn.Conv2d(channels, width, 9, padding=4), nn.PReLU(width))
        self.blocks = nn.Sequential(*[ResidualBlock(width) for _ in range(num_blocks)])
        self.blocks_out = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width)
        )
        self.upsample = nn.Sequential(
            *[
                nn.Sequential(
                    nn.Conv2d(width, width * 4, 3, padding=1), nn.PixelShuffle(2), nn.PReLU(width)
                )
                for _ in range(doublings)
            ]
        )
        self.to_image = nn.Conv2d(width, channels, 9, padding=4)

    def forward(self, low_res: torch.Tensor) -> torch.Tensor:
        h = self.head(low_res)
        h = h + self.blocks_out(self.blocks(h))
        return torch.tanh(self.to_image(self.upsample(h)))


class SRGANDiscriminator(nn.Module):
    """Images (N, C, R, R) in [-1, 1] -> logits (N,) (D = sigmoid(logit): real).

    Figure 4 (discriminator): conv3x3 (``width``, stride 1) -> LeakyReLU(0.2); seven conv3x3 ->
    BN -> LeakyReLU(0.2) with (channels, stride) = (w, 2), (2w, 1), (2w, 2), (4w, 1), (4w, 2),
    (8w, 1), (8w, 2) (64 -> 512 channels for w = 64); dense 1024 -> LeakyReLU(0.2) -> dense 1.
    To take any resolution, an adaptive average pooling to ``pool`` x ``pool`` comes before the
    dense layers: the paper's 96x96 crops leave 6x6 maps, so ``pool`` = R / 16 (6 at 96 px) is
    the identity and the network is exactly the paper's. The sigmoid is in the loss.
    """

    def __init__(
        self,
        *,
        channels: int,  # image channels C
        width: int = 64,  # channels of the first conv; doubled every other layer up to 8x
        dense: int = 1024,  # units of the hidden dense layer (1024 in the paper)
        pool: int = 6,  # side of the pooled map before the dense layers (R / 16 in the paper)
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 3, padding=1), nn.LeakyReLU(0.2)]
        fan_in = width
        for multiple, stride in ((1, 2), (2, 1), (2, 2), (4, 1), (4, 2), (8, 1), (8, 2)):
            fan_out = width * multiple
            layers += [
                nn.Conv2d(fan_in, fan_out, 3, stride, padding=1),
                nn.BatchNorm2d(fan_out),
                nn.LeakyReLU(0.2),
            ]
            fan_in = fan_out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(pool)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(fan_in * pool * pool, dense),
            nn.LeakyReLU(0.2),
            nn.Linear(dense, 1),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(images))).squeeze(1)
