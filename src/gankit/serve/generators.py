"""Generators loaded once per run and reloaded when the run's weights change; PNG rendering.

Loading goes through :func:`gankit.load` (safetensors exports, checkpoints read with
``weights_only=True``): no pickled code is ever run.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

import gankit
from gankit.api import LoadedGenerator
from gankit.errors import GankitError
from gankit.runfolder.images import make_grid
from gankit.runfolder.layout import RunDir

MAX_GRID = 64  # images in one sampled grid
MAX_FRAMES = 64  # images along one interpolation path


@dataclass
class Capabilities:
    """What the explore page may offer for a run's generator."""

    translator: bool
    conditional: bool
    num_classes: int
    truncation: bool
    image_shape: tuple[int, ...]  # (C, H, W) of one sample; translators: the tile
    source: str  # "export" | "checkpoint": where the weights came from

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class _Entry:
    signature: tuple[Any, ...]
    generator: LoadedGenerator
    capabilities: Capabilities
    lock: threading.Lock  # one computation at a time per generator


def weights_source(folder: Path) -> tuple[Path, tuple[Any, ...]]:
    """The newer of a run's export and its latest checkpoint (a resumed run that is training
    again has a newer checkpoint than its old export), with a signature that changes whenever
    those files are rewritten."""
    run = RunDir(folder)
    candidates = []
    for path, files in (
        (run.export, [run.export / "config.json", *run.export.glob("*.safetensors")]),
        (run.latest, [run.latest]),
    ):
        stats = _stats(files)
        if stats and stats[0][0] == files[0].name:  # the manifest (or checkpoint) is there
            candidates.append((max(s[1] for s in stats), path, tuple(stats)))
    if not candidates:
        raise GankitError(
            f"{folder.name}: no export or checkpoint yet (the first checkpoint is "
            "written at train.checkpoint_every or at the end)"
        )
    _, path, signature = max(candidates, key=lambda c: c[0])
    return path, (str(path), *signature)


def _stats(files: list[Path]) -> list[tuple[str, int, int]]:
    """(name, mtime in ns, size) of the files that exist (one may vanish while we look)."""
    found = []
    for file in files:
        try:
            stat = file.stat()
        except OSError:
            continue
        found.append((file.name, stat.st_mtime_ns, stat.st_size))
    return found


class GeneratorCache:
    """At most ``capacity`` generators in memory, least recently used out first."""

    def __init__(self, capacity: int = 4, device: str = "cpu") -> None:
        self.capacity = capacity
        self.device = device
        self._entries: OrderedDict[Path, _Entry] = OrderedDict()
        self._lock = threading.Lock()  # guards _entries; loading happens outside it

    def get(self, folder: Path) -> _Entry:
        """The run's generator, loaded again if its weights changed since the last call."""
        path, signature = weights_source(folder)
        with self._lock:
            entry = self._entries.get(folder)
            if entry is not None and entry.signature == signature:
                self._entries.move_to_end(folder)
                return entry
        generator = gankit.load(path, device=self.device)
        entry = _Entry(signature, generator, capabilities(generator, path), threading.Lock())
        with self._lock:
            self._entries[folder] = entry
            self._entries.move_to_end(folder)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)
        return entry


def capabilities(generator: LoadedGenerator, path: Path) -> Capabilities:
    """Which conditions the generator's family accepts, found by asking its ``sample_inputs``
    (a family refuses conditions it does not support with a GankitError)."""
    objective = generator.objective
    source = "checkpoint" if path.suffix == ".pt" else "export"
    if generator.is_translator:
        shape = (objective.input_channels, objective.tile_size, objective.tile_size)
        return Capabilities(True, False, 0, False, shape, source)
    conditional = _accepts(objective, labels=torch.zeros(1, dtype=torch.int64))
    truncation = _accepts(objective, truncation=0.5)
    classes = int(getattr(objective, "classes", 0) or objective.num_classes) if conditional else 0
    shape = tuple(generator.sample(1, seed=0).shape[1:])
    return Capabilities(False, conditional, classes, truncation, shape, source)


def _accepts(objective: Any, **condition: Any) -> bool:
    try:
        objective.sample_inputs(1, torch.Generator(objective.device).manual_seed(0), **condition)
    except (GankitError, TypeError):
        return False
    return True


def conditions(
    caps: Capabilities, n: int, label: int | None, truncation: float | None
) -> dict[str, Any]:
    """Keyword arguments for ``sample``/``interpolate``; one-line errors for bad values."""
    result: dict[str, Any] = {}
    if label is not None:
        if not caps.conditional:
            raise GankitError("this generator is not conditional: it takes no class")
        if not 0 <= label < caps.num_classes:
            raise GankitError(f"class {label} is out of range: 0..{caps.num_classes - 1}")
        result["labels"] = torch.full((n,), label, dtype=torch.int64)
    if truncation is not None:
        if not caps.truncation:
            raise GankitError("this generator does not support truncation")
        if not truncation > 0:  # also refuses NaN
            raise GankitError(f"truncation must be > 0, got {truncation}")
        result["truncation"] = truncation
    return result


def png_bytes(pixels: np.ndarray | torch.Tensor, compress_level: int = 6) -> bytes:
    """(C, H, W) uint8 tensor or (H, W, C) uint8 array, C in {1, 3} -> PNG file bytes."""
    if isinstance(pixels, torch.Tensor):
        pixels = pixels.permute(1, 2, 0).numpy()
    array = np.ascontiguousarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", compress_level=compress_level)
    return buffer.getvalue()


def sample_grid(
    entry: _Entry, n: int, seed: int, label: int | None = None, truncation: float | None = None
) -> bytes:
    """A PNG grid of ``n`` samples (1..MAX_GRID) for ``seed``: the same seed, the same grid."""
    if entry.capabilities.translator:
        raise GankitError("a translator samples nothing from noise: use the Translate page")
    if not 1 <= n <= MAX_GRID:
        raise GankitError(f"n must lie in 1..{MAX_GRID}, got {n}")
    kwargs = conditions(entry.capabilities, n, label, truncation)
    with entry.lock:
        images = entry.generator.sample(n, seed=seed, **kwargs)
    return png_bytes(make_grid(images))


def interpolation_strip(
    entry: _Entry,
    seed_a: int,
    seed_b: int,
    steps: int,
    label: int | None = None,
    truncation: float | None = None,
) -> bytes:
    """A PNG strip of ``steps`` images side by side, without padding (frame i at x = i * W),
    along the spherical latent path from ``seed_a`` to ``seed_b``."""
    if entry.capabilities.translator:
        raise GankitError("a translator has no latent space to interpolate")
    if not 2 <= steps <= MAX_FRAMES:
        raise GankitError(f"steps must lie in 2..{MAX_FRAMES}, got {steps}")
    kwargs = conditions(entry.capabilities, 1, label, truncation)
    with entry.lock:
        frames = entry.generator.interpolate(seed_a, seed_b, steps, **kwargs)
    return png_bytes(make_grid(frames, columns=steps, padding=0))
