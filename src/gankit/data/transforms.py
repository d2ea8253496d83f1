"""Turning decoded images into the stored form: ``channels`` x S x S uint8, S = ``stored_size``.

One rule for every source: resize so the SHORTER side is S (PIL bicubic, which antialiases when
shrinking), then take the centred S x S window. Both happen in one ``Image.resize(box=...)`` call on
the centred square of the source, which is the same operation without the large intermediate image
an extreme aspect ratio (1 x 300) would need. When the shorter side already is S nothing is
resampled: the window is cut out with integer offsets ``(side - S) // 2``.

Channels: grayscale -> RGB repeats the plane; RGB -> grayscale is PIL's ``"L"`` conversion (ITU-R
601 luma, ``L = (19595 R + 38470 G + 7471 B + 2**15) >> 16``). Transparent pixels are composited
onto black. The random crop and flip of ``cfg.crop``/``cfg.flip`` happen later, per batch.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from tqdm import tqdm

_MANY_IMAGES = 2000  # show a progress bar when resizing at least this many images


def pil_to_array(img: Image.Image, channels: int, size: int) -> np.ndarray:
    """Convert one decoded image to the stored form.

    img: any PIL image (EXIF orientation is applied; every common mode is handled, see
        :func:`to_l_or_rgb`). channels: 1 or 3. size: S, the side of the output.
    Returns (channels, S, S) uint8.
    Raises whatever PIL raises for an image it cannot decode or convert (e.g. OSError).
    """
    img = _apply_exif_orientation(img)
    img = to_l_or_rgb(img)
    if channels == 1 and img.mode == "RGB":
        img = img.convert("L")  # before resizing: a third of the work, same luma rule
    array = np.asarray(fit_square(img, size))
    if array.ndim == 2:
        return np.repeat(array[None], channels, axis=0)
    return np.ascontiguousarray(array.transpose(2, 0, 1))


def arrays_to_stored(array: np.ndarray, channels: int, size: int) -> torch.Tensor:
    """Convert a stack of same-sized images (MNIST, CIFAR) to the stored form.

    array: (N, H, W) grayscale or (N, H, W, 3) RGB, uint8.
    Returns (N, channels, S, S) uint8 with S = ``size``. Vectorised when the shorter side already
    is S (only a crop and a channel change); one PIL resize per image otherwise.
    """
    is_rgb = array.ndim == 4 and array.shape[3] == 3
    if array.dtype != np.uint8 or not (array.ndim == 3 or is_rgb):
        raise ValueError(f"need (N, H, W) or (N, H, W, 3) uint8, not {array.shape} {array.dtype}")
    count, height, width = array.shape[:3]
    if min(height, width) == size:
        top, left = (height - size) // 2, (width - size) // 2
        window = array[:, top : top + size, left : left + size]
        return torch.from_numpy(np.ascontiguousarray(_change_channels(window, channels)))
    stored = np.empty((count, channels, size, size), dtype=np.uint8)
    show = None if count >= _MANY_IMAGES else True  # None: tqdm hides itself off a terminal
    for index in tqdm(range(count), desc="resizing", unit="img", disable=show, leave=False):
        stored[index] = pil_to_array(Image.fromarray(array[index]), channels, size)
    return torch.from_numpy(stored)


def to_l_or_rgb(img: Image.Image) -> Image.Image:
    """Bring any PIL mode to ``"L"`` (one channel) or ``"RGB"``.

    - ``1``, ``L``: ``L``. ``RGB``: unchanged.
    - ``I;16*`` (16-bit): scaled to 8 bits (``round(v / 257)``), not clipped. ``I`` (32-bit int,
      how 16-bit PNGs used to open): the same 16-bit scaling when any value exceeds 255, else taken
      as 8-bit values; negatives clip to 0.
    - ``F`` (float): values all in [0, 1] are scaled by 255, otherwise read as 0..255 and clipped;
      NaN becomes 0.
    - Alpha (``RGBA``, ``LA``, ``PA``, ``P`` with a transparent colour, premultiplied ``RGBa``,
      ``La``): composited onto black, i.e. each channel multiplied by alpha / 255.
    - ``P`` without transparency, ``CMYK``, ``YCbCr``, ``RGBX`` and others: PIL's ``RGB``
      conversion.
    """
    mode = img.mode
    if mode in ("L", "RGB"):
        return img
    if mode == "1":
        return img.convert("L")
    if mode.startswith("I;16") or mode == "I":
        return _integer_to_l(img)
    if mode == "F":
        return _float_to_l(img)
    if (mode == "P" and "transparency" in img.info) or mode == "PA":
        return _composite_on_black(img.convert("RGBA"))
    if mode in ("LA", "La"):
        return _composite_on_black(img.convert("LA"))
    if mode in ("RGBA", "RGBa"):
        return _composite_on_black(img.convert("RGBA"))
    return img.convert("RGB")


def fit_square(img: Image.Image, size: int) -> Image.Image:
    """Resize the shorter side to ``size`` (bicubic, antialiased) and keep the centred square.

    img: ``L`` or ``RGB``, any width x height. Returns a ``size`` x ``size`` image of the same mode.
    """
    width, height = img.size
    short = min(width, height)
    if short == size:  # nothing to resample
        left, top = (width - size) // 2, (height - size) // 2
        return img.crop((left, top, left + size, top + size))
    box = ((width - short) / 2, (height - short) / 2, (width + short) / 2, (height + short) / 2)
    return img.resize((size, size), Image.Resampling.BICUBIC, box=box)


def rgb_to_luma(rgb: np.ndarray) -> np.ndarray:
    """PIL's ``"L"`` conversion, vectorised: (..., 3) uint8 -> (...) uint8, bit-exact with PIL."""
    wide = rgb.astype(np.uint32)
    luma = wide[..., 0] * 19595 + wide[..., 1] * 38470 + wide[..., 2] * 7471 + 0x8000
    return (luma >> 16).astype(np.uint8)


def luma(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) uint8 -> (N, 1, H, W) uint8 on the same device, bit-exact with PIL's "L"."""
    weights = torch.tensor((19595, 38470, 7471), dtype=torch.int32, device=images.device)
    weighted = images.to(torch.int32) * weights.view(1, 3, 1, 1)
    return ((weighted.sum(dim=1, keepdim=True) + 0x8000) >> 16).to(torch.uint8)


def _change_channels(images: np.ndarray, channels: int) -> np.ndarray:
    """(N, S, S) or (N, S, S, 3) uint8 -> (N, channels, S, S) uint8."""
    if images.ndim == 3:
        return np.repeat(images[:, None], channels, axis=1)
    if channels == 1:
        return rgb_to_luma(images)[:, None]
    return images.transpose(0, 3, 1, 2)


def _apply_exif_orientation(img: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(img) or img
    except Exception:  # a broken EXIF block should not cost the image: use the stored orientation
        return img


def _integer_to_l(img: Image.Image) -> Image.Image:
    values = np.asarray(img).astype(np.int64)
    if img.mode.startswith("I;16") or values.max(initial=0) > 255:
        values = (np.clip(values, 0, 65535) * 255 + 32767) // 65535
    return Image.fromarray(np.clip(values, 0, 255).astype(np.uint8))


def _float_to_l(img: Image.Image) -> Image.Image:
    values = np.nan_to_num(np.asarray(img, dtype=np.float64), nan=0.0, posinf=255.0, neginf=0.0)
    if values.size and values.min() >= 0.0 and values.max() <= 1.0:
        values = values * 255.0
    return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8))


def _composite_on_black(img: Image.Image) -> Image.Image:
    """``RGBA`` -> ``RGB`` or ``LA`` -> ``L``: colour * alpha / 255, rounded."""
    values = np.asarray(img).astype(np.uint32)
    colour, alpha = values[..., :-1], values[..., -1:]
    blended = ((colour * alpha + 127) // 255).astype(np.uint8)
    if blended.shape[-1] == 1:
        return Image.fromarray(blended[..., 0])
    return Image.fromarray(blended)


SOBEL_X = ((-1.0, 0.0, 1.0), (-2.0, 0.0, 2.0), (-1.0, 0.0, 1.0))
SOBEL_FULL_STEP = 4.0  # Sobel response to a 0 -> 1 step edge: 1 + 2 + 1


def edge_map(images: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) in [-1, 1] -> Sobel gradient magnitude per channel, scaled to [-1, 1].

    Borders are replicated, so the frame adds no edges; a full black-to-white step maps to 1.
    """
    kernel_x = torch.tensor(SOBEL_X, device=images.device, dtype=images.dtype)
    kernels = torch.stack([kernel_x, kernel_x.t()]).unsqueeze(1)  # (2, 1, 3, 3)
    n, c, h, w = images.shape
    unit = ((images + 1) / 2).reshape(n * c, 1, h, w)
    gradients = F.conv2d(F.pad(unit, (1, 1, 1, 1), mode="replicate"), kernels)
    magnitude = gradients.square().sum(dim=1).sqrt().reshape(n, c, h, w)
    return (magnitude / SOBEL_FULL_STEP).clamp(0, 1) * 2 - 1
