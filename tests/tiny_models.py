"""Per family: model settings small enough that a training step takes milliseconds on a CPU,
and data settings the family needs (resolution, labels). One entry per registered family."""

from __future__ import annotations

from typing import Any

# family -> {"model": {...}, "data": {...}} merged over tests.conftest.tiny_config's defaults
TINY: dict[str, dict[str, Any]] = {
    "gan": {"model": {"g_hidden": [32], "d_hidden": [32]}, "data": {"resolution": 8}},
    "dcgan": {"model": {"g_width": 8, "d_width": 8, "g_fc": 16, "d_fc": 16}},  # FC: as the preset
    "cgan": {
        "model": {"g_hidden": [8, 8, 16], "d_hidden": [16, 8, 16]},
        "data": {"resolution": 8},
    },
    "wgan": {"model": {"g_width": 8, "critic_width": 8, "critic_steps": 2}},
    "wgan-gp": {"model": {"g_width": 8, "critic_width": 8, "critic_steps": 2}},
    "lsgan": {"model": {"g_width": 8, "d_width": 8}},
    "sngan": {"model": {"g_width": 4, "d_width": 4, "d_steps": 2}},
    # Self-attention off here: its gamma starts at 0, so one step leaves f, g, h, v untouched;
    # tests/test_family_sagan.py checks that two steps train them.
    "sagan": {"model": {"g_width": 4, "d_width": 4, "attention_at": None}},
    "biggan": {"model": {"g_width": 4, "d_width": 4, "shared_dim": 4, "attention_at": None}},
    "progan": {"model": {"g_width": 4, "d_width": 4, "max_channels": 8, "steps_per_phase": 2}},
    "cogan": {"model": {"g_width": 4, "d_width": 4}},
    # translators: two-domain digits (A) and their edge maps (B)
    "cyclegan": {
        "model": {"g_width": 4, "d_width": 4, "n_blocks": 1, "d_layers": 2, "pool_size": 6},
        "data": {"source": "digits-edges", "paired": False},
    },
    "pix2pix": {
        "model": {"g_width": 4, "d_width": 4, "d_layers": 2},
        "data": {"source": "digits-edges"},
    },
    "siamese": {
        "model": {
            "patch": 8,
            "vector_length": 8,
            "g_width": 4,
            "g_residual_blocks": 1,
            "d_width": 4,
            "max_channels": 8,
        },
        "data": {"source": "digits-edges", "paired": False, "resolution": 16},
    },
    "spade": {
        "model": {
            "num_labels": 2,
            "label_source": "threshold",
            "g_width": 4,
            "num_upsampling": 2,
            "spade_hidden": 8,
            "d_width": 4,
            "d_layers": 3,
        },
        "data": {"source": "digits-edges"},
    },
    "srgan": {
        "model": {"g_width": 4, "num_blocks": 2, "d_width": 4, "d_dense": 8, "d_pool": 1},
        "data": {"source": "mnist-bundled", "resolution": 16},
    },
}

# Families whose generator step may leave some generator parameters untouched (e.g. ProGAN's
# not-yet-grown blocks); all other phases must update every parameter of their networks.
PARTIAL_UPDATES: set[str] = {"progan"}
