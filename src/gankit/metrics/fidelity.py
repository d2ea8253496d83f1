"""Full-reference fidelity of images to their ground truth: PSNR and SSIM, as super-resolution and
paired translation papers report them.

Both take two batches ``images``, ``reference``: (N, C, H, W) float tensors on the value range
``value_range`` (gankit's images: (-1, 1), the default; (0, 1) or (0, 255) for other data) and
return one number per image, (N,) float64. Internally the images are mapped to [0, 1]:

- PSNR (dB) = 10 log10(1 / MSE) on [0, 1], i.e. 10 log10(L^2 / MSE) with L = high - low, the
  MSE over C, H, W of each image; identical images give +inf.
- SSIM (Wang, Bovik, Sheikh & Simoncelli 2004, "Image Quality Assessment: From Error Visibility
  to Structural Similarity", eq. 13 with the local statistics of section III-B): an 11x11
  circular-symmetric Gaussian window with sigma 1.5 (normalised to sum 1), K1 = 0.01,
  K2 = 0.03, C1 = (K1 L)^2 and C2 = (K2 L)^2 with L = 1 on the [0, 1] scale; the SSIM map over
  every position where the window fits inside the image ("valid", as the authors' MATLAB
  ``ssim_index``; no automatic downsampling), averaged over positions and channels. Images
  need sides >= 11.

``luminance=True`` compares only the luma Y of RGB images, as SR papers report (Ledig et al.
2017, section 3.1, on the Y channel of YCbCr): ITU-R BT.601 as MATLAB's ``rgb2ycbcr``,
Y = (16 + 65.481 R + 128.553 G + 24.966 B) / 255 with R, G, B in [0, 1], so Y lies in
[16/255, 235/255] and the peak stays 1 (255 on 8-bit data). ``crop`` drops that many border
pixels on every side first (SR papers crop the scale factor, e.g. 4).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gankit.errors import MetricError

SSIM_WINDOW = 11  # side of the Gaussian window (Wang et al. 2004, section III-B)
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03
_LUMA = (65.481, 128.553, 24.966)  # ITU-R BT.601 (MATLAB rgb2ycbcr), per unit of R, G, B


def _prepare(
    images: torch.Tensor,
    reference: torch.Tensor,
    value_range: tuple[float, float],
    luminance: bool,
    crop: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Both batches checked, as float64 on [0, 1], luma only and cropped as asked."""
    if images.dim() != 4 or images.shape != reference.shape:
        raise MetricError(
            "images and reference must be (N, C, H, W) batches of one shape, got "
            f"{tuple(images.shape)} and {tuple(reference.shape)}"
        )
    low, high = value_range
    if not high > low:
        raise MetricError(f"value_range must be (low, high) with high > low, got {value_range}")
    images, reference = ((x.double() - low) / (high - low) for x in (images, reference))
    if luminance:
        if images.shape[1] != 3:
            raise MetricError(f"luminance=True needs RGB images, got {images.shape[1]} channels")
        images, reference = (luma(x) for x in (images, reference))
    if crop:
        if crop < 0 or 2 * crop >= min(images.shape[-2:]):
            raise MetricError(f"crop={crop} leaves nothing of {tuple(images.shape[-2:])} images")
        images = images[..., crop:-crop, crop:-crop]
        reference = reference[..., crop:-crop, crop:-crop]
    return images, reference


def luma(images: torch.Tensor) -> torch.Tensor:
    """RGB (N, 3, H, W) on [0, 1] -> Y (N, 1, H, W) on [16/255, 235/255] (ITU-R BT.601)."""
    weights = torch.tensor(_LUMA, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (16 + (images * weights).sum(1, keepdim=True)) / 255


def psnr(
    images: torch.Tensor,  # (N, C, H, W)
    reference: torch.Tensor,  # (N, C, H, W), the ground truth
    value_range: tuple[float, float] = (-1.0, 1.0),  # the data's (low, high): peak = high - low
    luminance: bool = False,  # compare the luma Y of RGB images only
    crop: int = 0,  # border pixels dropped on each side
) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image, (N,) float64; +inf for identical images."""
    images, reference = _prepare(images, reference, value_range, luminance, crop)
    mse = (images - reference).square().flatten(1).mean(1)
    return 10 * torch.log10(1 / mse)  # log10(1 / 0) = +inf


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """(size, size) float64 Gaussian weights centred on the middle pixel, summing to 1."""
    offsets = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    line = torch.exp(-(offsets**2) / (2 * sigma**2))
    window = line[:, None] * line[None, :]
    return window / window.sum()


def ssim(
    images: torch.Tensor,  # (N, C, H, W), H and W >= 11 (after crop)
    reference: torch.Tensor,  # (N, C, H, W)
    value_range: tuple[float, float] = (-1.0, 1.0),  # the data's (low, high): L = high - low
    luminance: bool = False,  # compare the luma Y of RGB images only
    crop: int = 0,  # border pixels dropped on each side
) -> torch.Tensor:
    """Mean SSIM per image (Wang et al. 2004), (N,) float64 in [-1, 1]; 1 for identical images."""
    x, y = _prepare(images, reference, value_range, luminance, crop)
    if min(x.shape[-2:]) < SSIM_WINDOW:
        raise MetricError(
            f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels, got "
            f"{tuple(x.shape[-2:])}"
        )
    channels = x.shape[1]
    window = gaussian_window().to(x.device).expand(channels, 1, -1, -1)

    def local_mean(t: torch.Tensor) -> torch.Tensor:  # the window's weighted mean, "valid"
        return F.conv2d(t, window, groups=channels)

    mu_x, mu_y = local_mean(x), local_mean(y)
    var_x = local_mean(x * x) - mu_x**2
    var_y = local_mean(y * y) - mu_y**2
    cov_xy = local_mean(x * y) - mu_x * mu_y
    c1, c2 = SSIM_K1**2, SSIM_K2**2  # (K L)^2 with L = 1 on [0, 1]
    index = ((2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    )
    return index.flatten(1).mean(1)
