"""VGG-16 fc2 features, the embedding of improved precision and recall.

Kynkäänniemi et al. 2019, "Improved Precision and Recall Metric for Assessing Generative Models",
embed real and generated images with the second fully connected layer (fc2, 4096 numbers) of an
ImageNet VGG-16 (Simonyan & Zisserman 2015) before building their k-NN manifolds; their code and
StyleGAN2-ADA's ``pr50k3`` do the same. Precision and recall in other features (gankit's default,
Inception pool3) are different numbers, not comparable with the published ones.

gankit ships no VGG-16 weights (no torchvision, nothing downloaded): the user supplies a
TorchScript file, named by ``GANKIT_VGG16_WEIGHTS`` (or ``evaluate(pr_features=...)``), that maps

    (N, 3, 224, 224) float32 RGB, ImageNet-normalised: (x / 255 - mean) / std with
    mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225) (torchvision's weights' convention)
    -> (N, 4096) fc2 features.

For example, where torchvision and its weights are available::

    vgg = torchvision.models.vgg16(weights="IMAGENET1K_V1").eval()
    fc2 = torch.nn.Sequential(vgg.features, vgg.avgpool, torch.nn.Flatten(), *vgg.classifier[:5])
    torch.jit.trace(fc2, torch.zeros(1, 3, 224, 224)).save("vgg16-fc2.pt")

(``classifier[:5]`` is fc1, ReLU, dropout, fc2 and fc2's ReLU; the cut of the authors' network
was not checked here.) gankit brings uint8 images to 224 x 224 RGB with the same resize as for
Inception (clean-fid's float PIL bicubic by default, recorded), normalises them and runs the
network in fp32. The file's SHA-256 goes into every number's protocol and the reference cache key.
NVlabs' own ``vgg16.pt`` takes [0, 255] images of any size and needs ``return_features=True``: it
is not this interface and is refused (it returns 1000 logits).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch

from gankit.errors import MetricError
from gankit.fileio import file_sha256
from gankit.metrics.inception import RESIZE_METHODS, batched_forward, resize_rgb

VGG16_NAME = "vgg16-fc2"
VGG16_WEIGHTS_ENV = "GANKIT_VGG16_WEIGHTS"
VGG16_INPUT_SIZE = 224
VGG16_DIMS = 4096
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def vgg16_weights(path: str | os.PathLike | None = None) -> Path | None:
    """The VGG-16 file to use: ``path``, else ``$GANKIT_VGG16_WEIGHTS``, else None (none given).

    Raises MetricError (one line) when the named file does not exist.
    """
    chosen = path if path is not None else os.environ.get(VGG16_WEIGHTS_ENV) or None
    if chosen is None:
        return None
    resolved = Path(chosen).expanduser()
    if not resolved.is_file():
        raise MetricError(
            f"VGG-16 feature network {resolved} not found (set {VGG16_WEIGHTS_ENV} to a "
            "TorchScript file mapping ImageNet-normalised 224 x 224 RGB to 4096 fc2 features)"
        )
    return resolved


def preprocess_vgg(images: torch.Tensor, resize: str = "pil-bicubic-float") -> torch.Tensor:
    """(N, C, H, W) uint8, C in {1, 3} -> (N, 3, 224, 224) float32 on the CPU, ImageNet-normalised
    ((x / 255 - mean) / std per channel); grayscale repeated to RGB."""
    pixels = resize_rgb(images, resize, VGG16_INPUT_SIZE) / 255.0
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (pixels - mean) / std


class VGG16Features:
    """FeatureExtractor: images -> (N, 4096) VGG-16 fc2 features from a user-supplied file."""

    name: str = VGG16_NAME
    dims: int = VGG16_DIMS

    def __init__(
        self,
        weights: str | os.PathLike | None = None,  # None: $GANKIT_VGG16_WEIGHTS
        device: str | torch.device = "cpu",  # where the network runs; features return on the CPU
        batch_size: int = 64,  # images per forward pass inside features()
        resize: str = "pil-bicubic-float",  # one of RESIZE_METHODS
    ) -> None:
        if resize not in RESIZE_METHODS:
            raise MetricError(f"unknown resize method {resize!r}; choose one of {RESIZE_METHODS}")
        path = vgg16_weights(weights)
        if path is None:
            raise MetricError(f"no VGG-16 feature network given: set {VGG16_WEIGHTS_ENV}")
        self.weights_path = path
        self.hash = file_sha256(path)
        self.resize = resize
        self.device = torch.device(device)
        self.batch_size = batch_size
        try:
            with warnings.catch_warnings():  # torch 2.9+ deprecates TorchScript; the file is one
                warnings.simplefilter("ignore", DeprecationWarning)
                self.network = torch.jit.load(str(path), map_location=self.device).eval()
        except (RuntimeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise MetricError(
                f"VGG-16 feature network {path} is not a TorchScript file: {first}"
            ) from exc

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """images: (N, C, H, W) uint8, C in {1, 3}, any H x W -> (N, 4096) float32 on the CPU."""
        out = batched_forward(
            self.network, images, self.resize, self.batch_size, self.device, prepare=preprocess_vgg
        )
        if out.dim() != 2 or out.shape[1] != VGG16_DIMS:
            raise MetricError(
                f"VGG-16 feature network {self.weights_path} returned {tuple(out.shape)} for "
                f"{len(images)} images, expected (N, {VGG16_DIMS}) fc2 features"
            )
        return out
