"""Shared fixtures: tiny configs that train in seconds on a CPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gankit.config import RunConfig
from gankit.objectives import OBJECTIVES
from gankit.resolve import build_config
from tests.tiny_models import TINY

REPO = Path(__file__).resolve().parents[1]
SHARED_MNIST = REPO.parent / "shared" / "data" / "mnist"


def tiny_config(family: str = "dcgan", *overrides: str, **sections: dict) -> RunConfig:
    """A config of tiny networks on 256 bundled digits at 16x16 (see tests/tiny_models.py)."""
    tiny = TINY.get(family, {})
    data = {"source": "mnist-bundled", "resolution": 16, "channels": 1, "max_images": 256}
    data |= tiny.get("data", {})
    latent = {"latent_dim": 8} if "latent_dim" in OBJECTIVES.get(family).Config.model_fields else {}
    model = {**latent, **tiny.get("model", {})}
    train = {
        "steps": 4, "batch_size": 8, "seed": 0, "device": "cpu", "progress": False,
        "sample_every": 0, "checkpoint_every": 0, "log_every": 2, "grid_size": 2,
    }  # fmt: skip
    base = {"family": family, "data": data, "model": model, "train": train,
            "output": {"tensorboard": False}}  # fmt: skip
    for key, value in sections.items():
        base[key] = {**base.get(key, {}), **value}
    return build_config(base, overrides)


def run_gankit(
    *args: str, cwd: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """Run ``python -m gankit ARGS`` in a fresh process, capturing its output."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "gankit", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env=env,
    )


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Reference features go to a temporary cache, never ~/.cache (subprocesses inherit it)."""
    monkeypatch.setenv("GANKIT_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "gankit-cache"))
