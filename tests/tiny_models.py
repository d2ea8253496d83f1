"""Per family: model settings small enough that a training step takes milliseconds on a CPU,
and data settings the family needs (resolution, labels). One entry per registered family."""

from __future__ import annotations

from typing import Any

# family -> {"model": {...}, "data": {...}} merged over tests.conftest.tiny_config's defaults
TINY: dict[str, dict[str, Any]] = {
    "gan": {"model": {"g_hidden": [32], "d_hidden": [32]}, "data": {"resolution": 8}},
    "dcgan": {"model": {"g_width": 8, "d_width": 8}},
    "cgan": {},
    "wgan": {},
    "wgan-gp": {},
    "lsgan": {},
    "sngan": {},
    "sagan": {},
    "biggan": {},
    "progan": {},
    "cogan": {},
}

# Families whose generator step may leave some generator parameters untouched (e.g. ProGAN's
# not-yet-grown blocks); all other phases must update every parameter of their networks.
PARTIAL_UPDATES: set[str] = {"progan"}
