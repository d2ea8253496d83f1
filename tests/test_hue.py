"""data.hue: a random hue rotation per image that keeps the luma (gankit.data.loader.rotate_hue)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gankit.config import DataConfig
from gankit.data import load_images
from gankit.data.loader import InfiniteLoader, rotate_hue
from gankit.errors import ConfigError
from gankit.resolve import build_config

LUMA = torch.tensor([0.299, 0.587, 0.114])


def luma(images: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) -> (..., H, W): BT.601 luma."""
    return torch.einsum("c,...chw->...hw", LUMA, images)


def soft_colours(n: int = 4, seed: int = 0) -> torch.Tensor:
    """(n, 3, 5, 6) colours near grey (in gamut under any hue rotation), in [-1, 1]."""
    generator = torch.Generator().manual_seed(seed)
    grey = torch.rand(n, 1, 5, 6, generator=generator) - 0.5
    return grey + 0.15 * (torch.rand(n, 3, 5, 6, generator=generator) - 0.5)


def test_the_rotation_keeps_luma_and_greys_and_a_full_turn_is_the_identity():
    images = soft_colours()
    angles = torch.tensor([0.5, 1.0, 2.0, 3.0])
    turned = rotate_hue(images, angles)
    assert torch.allclose(luma(turned), luma(images), atol=1e-5)
    assert (turned - images).abs().amax() > 0.02  # the colours did move
    greys = torch.linspace(-1, 1, 4).view(4, 1, 1, 1).expand(4, 3, 5, 6)
    assert torch.allclose(rotate_hue(greys, angles), greys, atol=1e-5)
    for turn in (0.0, 2 * math.pi):
        assert torch.allclose(rotate_hue(images, torch.full((4,), turn)), images, atol=1e-5)
    thirds = images
    for _ in range(3):
        thirds = rotate_hue(thirds, torch.full((4,), 2 * math.pi / 3))
    assert torch.allclose(thirds, images, atol=1e-5)


def test_half_a_turn_makes_red_cyan_and_every_value_stays_in_range():
    red = torch.tensor([0.6, -0.6, -0.6]).view(1, 3, 1, 1)
    r, g, b = rotate_hue(red, torch.tensor([math.pi])).flatten().tolist()
    assert g > r and b > r  # the opposite hue
    extreme = torch.randint(0, 2, (8, 3, 4, 4)).float() * 2 - 1  # the gamut's corners
    out = rotate_hue(extreme, torch.rand(8) * 6.3)
    assert out.min() >= -1 and out.max() <= 1


def _photos(root: Path, count: int = 3) -> None:
    """The same 16 x 16 colour image in A and B of a paired folder, ``count`` times."""
    rng = np.random.default_rng(0)
    for index in range(count):
        pixels = rng.integers(40, 216, (16, 16, 3), dtype=np.uint8)
        for side in ("A", "B"):
            (root / side).mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(root / side / f"{index}.png")


def test_the_loader_turns_each_image_by_its_own_angle_and_both_images_of_a_pair_alike(tmp_path):
    _photos(tmp_path)
    cfg = DataConfig(source="paired", root=str(tmp_path), resolution=16, channels=3)
    images = load_images(cfg)
    plain = next(InfiniteLoader(images, cfg, 6, seed=0))
    hued_cfg = cfg.model_copy(update={"hue": True})
    loader = InfiniteLoader(images, hued_cfg, 6, seed=0)
    state = loader.state_dict()
    batch = next(loader)
    assert torch.equal(batch["a"], batch["b"])  # B == A: one angle per pair
    assert not torch.allclose(batch["a"], plain["a"], atol=0.05)
    inside = (batch["a"].abs() < 0.999).all(1)  # pixels the clamp to [-1, 1] left alone
    assert torch.allclose(luma(batch["a"])[inside], luma(plain["a"])[inside], atol=1e-4)
    [again] = [j for j in range(1, 6) if torch.equal(plain["a"][j], plain["a"][0])]
    assert not torch.allclose(batch["a"][0], batch["a"][again])  # 3 images, a batch of 6
    loader.load_state_dict(state)
    assert torch.equal(next(loader)["a"], batch["a"])  # the angles resume with the state


@pytest.mark.parametrize(
    "data",
    [{"channels": 1}, {"channels": 3, "a_kind": "labels"}, {"channels": 3, "channels_a": 1}],
)
def test_hue_on_what_is_not_an_rgb_image_is_a_one_line_config_error(data):
    with pytest.raises(ConfigError, match=r"data\.hue rotates the hue of colour images") as error:
        build_config({"family": "dcgan", "data": {"hue": True, **data}})
    assert "\n" not in str(error.value)
