"""Images to evaluate, from files: ``.npy``, ``.npz`` or a folder / ``.zip`` of images."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gankit.config import DataConfig
from gankit.data import load_images
from gankit.data.transforms import luma
from gankit.errors import GankitError


def to_nchw_uint8(array: np.ndarray, source: str) -> torch.Tensor:
    """(N, H, W), (N, H, W, C) or (N, C, H, W) with C in {1, 3} -> (N, C, H, W) uint8.

    uint8 arrays are taken as they are; float arrays must lie in [0, 1] or [-1, 1] (scaled to
    0..255 and rounded).
    """
    if array.ndim == 3:
        array = array[:, None]
    elif array.ndim == 4 and array.shape[-1] in (1, 3) and array.shape[1] not in (1, 3):
        array = array.transpose(0, 3, 1, 2)
    if array.ndim != 4 or array.shape[1] not in (1, 3) or array.shape[0] == 0:
        raise GankitError(
            f"{source}: expected images shaped (N, H, W), (N, H, W, C) or (N, C, H, W) with C 1 or "
            f"3, got {array.shape}"
        )
    if array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.floating):
            raise GankitError(f"{source}: images must be uint8 or float, not {array.dtype}")
        low, high = float(array.min()), float(array.max())
        if low >= 0 and high <= 1:
            array = array * 255.0
        elif low >= -1 and high <= 1:
            array = (array + 1) * 127.5
        else:
            raise GankitError(
                f"{source}: float images must lie in [0, 1] or [-1, 1], not [{low}, {high}]"
            )
        array = np.clip(np.rint(array), 0, 255).astype(np.uint8)
    return torch.from_numpy(np.ascontiguousarray(array))


def load_image_file(path: str | Path, channels: int | None = None) -> torch.Tensor:
    """Images (N, C, H, W) uint8 from a .npy, a .npz (its first array, or "images") or a folder /
    .zip of images (decoded at the size of its first image, square-cropped)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise GankitError(f"{path} does not exist")
    suffix = path.suffix.lower()
    if suffix in (".npy", ".npz"):
        try:
            loaded = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise GankitError(f"{path}: not a readable numpy file ({exc})") from None
        if suffix == ".npz":
            names = list(loaded.files)
            if not names:
                raise GankitError(f"{path}: the .npz holds no array")
            loaded = loaded["images"] if "images" in names else loaded[names[0]]
        images = to_nchw_uint8(loaded, str(path))
    else:
        size = _first_image_size(path)
        cfg = DataConfig(source="folder", root=str(path), resolution=size, channels=channels or 3)
        images = load_images(cfg).images
    if channels and images.shape[1] != channels:
        images = images.expand(-1, 3, -1, -1) if channels == 3 else luma(images)
    return images


def _first_image_size(path: Path) -> int:
    """The shorter side of the first decodable image in a folder or zip (the evaluation size)."""
    if path.is_dir():
        candidates = sorted(p for p in path.rglob("*") if p.is_file())
        opener = Image.open
    elif zipfile.is_zipfile(path):
        archive = zipfile.ZipFile(path)
        candidates = sorted(n for n in archive.namelist() if not n.endswith("/"))
        opener = lambda name: Image.open(archive.open(name))  # noqa: E731
    else:
        raise GankitError(f"{path}: expected a .npy, .npz, folder or .zip of images")
    for candidate in candidates:
        try:
            with opener(candidate) as image:
                return min(image.size)
        except Exception:
            continue
    raise GankitError(f"{path}: no readable image")
