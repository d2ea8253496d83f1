"""Image grids and PNG output, without torchvision."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def make_grid(images: torch.Tensor, columns: int | None = None, padding: int = 2) -> torch.Tensor:
    """images: (N, C, H, W) in [-1, 1] -> (C, rows * (H + p) + p, cols * (W + p) + p) uint8.

    Grayscale stays one channel; the padding is black.
    """
    images = to_uint8(images)
    count, channels, height, width = images.shape
    columns = columns or math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    grid = torch.zeros(
        channels,
        rows * (height + padding) + padding,
        columns * (width + padding) + padding,
        dtype=torch.uint8,
    )
    for index in range(count):
        row, col = divmod(index, columns)
        top, left = padding + row * (height + padding), padding + col * (width + padding)
        grid[:, top : top + height, left : left + width] = images[index]
    return grid


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) float in [-1, 1] -> uint8 in [0, 255] on the CPU (rounded, clamped)."""
    return ((images.detach().float().cpu() + 1) * 127.5).round_().clamp_(0, 255).to(torch.uint8)


def save_png(image: torch.Tensor, path: str | Path) -> Path:
    """image: (C, H, W) uint8, C in {1, 3} -> PNG (written to a temp name, then renamed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    array = image.permute(1, 2, 0).numpy()
    pil = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else np.ascontiguousarray(array))
    temporary = path.with_name(path.name + ".tmp")
    pil.save(temporary, format="PNG")
    temporary.replace(path)
    return path


def save_grid(images: torch.Tensor, path: str | Path, columns: int | None = None) -> Path:
    """images: (N, C, H, W) in [-1, 1] -> a PNG grid at ``path``."""
    return save_png(make_grid(images, columns), path)


def save_gif(frames: torch.Tensor, path: str | Path, duration_ms: int = 120) -> Path:
    """frames: (T, N, C, H, W) in [-1, 1] -> an animated GIF looping forwards then back, each
    frame the N images side by side."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pictures = []
    for frame in frames:
        grid = make_grid(frame, columns=len(frame)).permute(1, 2, 0).numpy()
        pictures.append(Image.fromarray(grid[:, :, 0] if grid.shape[2] == 1 else grid))
    loop = pictures + pictures[-2:0:-1]
    loop[0].save(path, save_all=True, append_images=loop[1:], duration=duration_ms, loop=0)
    return path
