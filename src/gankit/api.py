"""Python entry points: ``gankit.load(run_or_export_dir).sample(n)``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from gankit.config import RunConfig
from gankit.errors import CheckpointError, GankitError
from gankit.objectives import OBJECTIVES, Objective
from gankit.resolve import saved_config
from gankit.runfolder.checkpoint import load_checkpoint
from gankit.runfolder.export import EXPORT_FORMAT
from gankit.runfolder.layout import RunDir
from gankit.runfolder.migrate import config_format, fit_checkpoint, fit_state_dict


class LoadedGenerator:
    """A trained generator ready to sample, rebuilt from its config and weights."""

    def __init__(self, cfg: RunConfig, objective: Objective, network: nn.Module) -> None:
        self.cfg = cfg
        self.objective = objective.eval()
        self.network = network.eval()

    @property
    def config(self) -> RunConfig:
        return self.cfg

    @property
    def family(self) -> str:
        return self.cfg.family

    def sample(
        self, n: int, seed: int | None = None, batch_size: int = 256, **conditions: Any
    ) -> torch.Tensor:
        """n images (n, C, H, W) float in [-1, 1] on the CPU; the same seed, the same images.

        ``conditions``: e.g. ``labels`` ((n,) int64) for conditional families, ``truncation``.
        """
        return self.objective.sample(n, self.network, seed, batch_size, **conditions).float().cpu()

    @property
    def is_translator(self) -> bool:
        """True for image-to-image families (they ``translate``; the others ``sample``)."""
        return self.objective.task == "translate"

    @torch.no_grad()
    def translate(self, images: torch.Tensor) -> torch.Tensor:
        """Domain-A images (N, C_a, h, w) in [-1, 1], in one pass -> domain B
        (N, C_b, h * scale, w * scale) in [-1, 1] on the CPU. Large images: translate_image."""
        if not self.is_translator:
            raise GankitError(f"{self.family} generates images from noise: use sample(), not "
                              "translate()")  # fmt: skip
        inputs = images.to(self.objective.device, torch.float32)
        return self.objective.translate(inputs, self.network).float().cpu()

    def translate_image(
        self,
        image: Any,  # (H, W, C) uint8 array or a PIL image, any size
        mode: str = "overlap",  # overlap | grid | whole (see gankit.translate.tiling)
        tile: int | None = None,  # tile side in input pixels; None: the training size
        overlap: int | None = None,  # overlap mode: pixels shared by neighbours (tile // 4)
        batch_size: int = 8,
        progress: bool | Callable[[int, int], None] = False,  # tqdm bar, or (done, total) calls
        out: np.ndarray | None = None,  # a preallocated (or memmapped) result
        stats: str = "auto",  # auto | image | running: see gankit.translate.statistics
    ) -> np.ndarray:
        """Translate an image of any size tile by tile: (H, W, C_a) uint8 ->
        (H * scale, W * scale, C_b) uint8. The input is converted to the channels the
        translator was trained on (RGB <-> grayscale); label maps are read as indices.
        ``stats``: the statistics of the norm layers (``auto``: image-level for CycleGAN and
        pix2pix, running for the other translators)."""
        from gankit.translate import as_pixels, translate_image

        if not self.is_translator:
            raise GankitError(f"{self.family} generates images from noise: nothing to translate")
        objective = self.objective
        pixels = as_pixels(image)
        pixels = _match_channels(pixels, objective.input_channels)
        return translate_image(
            pixels, lambda x: objective.translate(x, self.network),
            tile or objective.tile_size, mode=mode, overlap=overlap, scale=objective.scale,
            multiple=objective.input_multiple, batch_size=batch_size, device=objective.device,
            progress=progress, out=out, stats=stats, network=self.network,
        )  # fmt: skip

    @torch.no_grad()
    def interpolate(
        self, seed_a: int, seed_b: int, steps: int = 8, **conditions: Any
    ) -> torch.Tensor:
        """``steps`` images (steps, C, H, W) in [-1, 1] along the latent path between two seeds.

        Gaussian latents are interpolated spherically (slerp; White 2016), which keeps them at
        the norm the generator saw in training; discrete inputs (class labels) stay those of
        ``seed_a`` so the path changes only the latent.
        """
        objective = self.objective
        start, end = (
            objective.sample_inputs(
                1, torch.Generator(objective.device).manual_seed(seed), **conditions
            )
            for seed in (seed_a, seed_b)
        )
        weights = torch.linspace(0, 1, steps, device=objective.device)
        path = {
            key: slerp(value, end[key], weights) if value.is_floating_point()
            else value.expand(steps, *value.shape[1:])
            for key, value in start.items()
        }  # fmt: skip
        return objective.generate_eval(path, self.network).float().cpu()


def _match_channels(pixels: np.ndarray, channels: int) -> np.ndarray:
    """(H, W, C) uint8 -> (H, W, channels): gray repeated to RGB, RGB to luma (ITU-R 601)."""
    if pixels.shape[2] == channels:
        return pixels
    if channels == 3 and pixels.shape[2] == 1:
        return np.repeat(pixels, 3, axis=2)
    if channels == 1 and pixels.shape[2] >= 3:
        luma = pixels[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        return np.clip(np.rint(luma), 0, 255).astype(np.uint8)[..., None]
    raise GankitError(f"an image with {pixels.shape[2]} channels cannot feed a translator of "
                      f"{channels}-channel images")  # fmt: skip


def slerp(a: torch.Tensor, b: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation of (1, ...) tensors a, b at ``weights`` (T,) -> (T, ...)."""
    flat_a, flat_b = a.flatten(1), b.flatten(1)
    cosine = torch.nn.functional.cosine_similarity(flat_a, flat_b).clamp(-1, 1)
    omega = torch.acos(cosine)
    t = weights.view(-1, 1)
    if omega.abs().item() < 1e-6:  # (nearly) the same direction: linear is exact enough
        mixed = (1 - t) * flat_a + t * flat_b
    else:
        mixed = (torch.sin((1 - t) * omega) * flat_a + torch.sin(t * omega) * flat_b) / torch.sin(
            omega
        )
    return mixed.view(len(weights), *a.shape[1:])


def _build(
    config: dict[str, Any], num_classes: int, device: str | torch.device, source: Path
) -> tuple[RunConfig, Objective]:
    """The objective of a saved config (an older format's migrated), on ``device``."""
    cfg = saved_config(config, str(source))
    return cfg, OBJECTIVES.get(cfg.family)(cfg, num_classes).to(device)


def _load_export(folder: Path, device: str | torch.device) -> LoadedGenerator:
    try:
        manifest = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(
            f"{folder / 'config.json'}: unreadable export manifest ({exc})"
        ) from None
    if not isinstance(manifest, dict) or "config" not in manifest or "network" not in manifest:
        raise CheckpointError(f"{folder / 'config.json'}: not a gankit export")
    if manifest.get("format", 0) > EXPORT_FORMAT:
        raise CheckpointError(
            f"{folder}: exported by gankit {manifest.get('gankit_version')}, newer than this one"
        )
    num_classes = int(manifest.get("num_classes", 0))
    cfg, objective = _build(manifest["config"], num_classes, device, folder)
    name = manifest["network"]
    try:
        weights = load_file(str(folder / f"{name}.safetensors"), device=str(device))
    except (OSError, SafetensorError) as exc:
        raise CheckpointError(
            f"{folder / (name + '.safetensors')}: unreadable weights ({exc})"
        ) from None
    network = objective.networks[name]
    if config_format(manifest["config"]) < cfg.format:  # an older format's export
        weights, _ = fit_state_dict(network, weights)
    _load_weights(network, weights, folder)
    return LoadedGenerator(cfg, objective, network)


def _load_weights(network: nn.Module, weights: dict[str, torch.Tensor], source: Path) -> None:
    try:
        network.load_state_dict(weights)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(
            f"{source}: weights do not fit the network of its config ({first})"
        ) from None


def _load_checkpoint_generator(path: Path, device: str | torch.device) -> LoadedGenerator:
    state = load_checkpoint(path)
    cfg, objective = _build(state["config"], int(state.get("num_classes", 0)), device, path)
    name = objective.sample_network
    fit_checkpoint(state, dict(objective.networks), name)
    network = objective.networks[name]
    _load_weights(network, state["ema"] or state["networks"][name], path)
    return LoadedGenerator(cfg, objective, network)


def load(path: str | Path, device: str | torch.device = "cpu") -> LoadedGenerator:
    """Load the generator of a run folder (its export, else its latest checkpoint; EMA weights
    when present), an export folder, or a checkpoint file."""
    path = Path(path)
    if path.is_file():
        return _load_checkpoint_generator(path, device)
    if (path / "config.json").is_file():
        return _load_export(path, device)
    run = RunDir(path)
    if (run.export / "config.json").is_file():
        return _load_export(run.export, device)
    if run.latest.is_file():
        return _load_checkpoint_generator(run.latest, device)
    raise GankitError(f"{path}: no run folder, export or checkpoint there")


def export(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Export a run's latest checkpoint (EMA generator when present) to ``out`` (default
    ``RUN/export``): config.json + <network>.safetensors."""
    from gankit.runfolder.export import export_generator

    run = RunDir(Path(run_dir))
    loaded = _load_checkpoint_generator(run.latest, "cpu")
    folder = Path(out) if out else run.export
    return export_generator(loaded.cfg, loaded.objective, loaded.network, folder)
