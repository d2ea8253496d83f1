"""Checkpoints: written atomically, read without unpickling code.

A checkpoint is one dict of tensors and plain Python values (no classes), so ``torch.load`` with
``weights_only=True`` reads it; anything else (a pickle with a code payload, a foreign file, a
truncated write) is refused with one line.
"""

from __future__ import annotations

import os
import pickle
import random
import shutil
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gankit.config import FORMAT
from gankit.errors import CheckpointError
from gankit.fileio import atomic_write
from gankit.version import __version__

# Config keys that define the networks: a resumed run must match these exactly.
ARCHITECTURE_KEYS = ("family", "model", "data.resolution", "data.channels")


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    state = {"format": FORMAT, "gankit_version": __version__, **state}
    atomic_write(path, lambda file: torch.save(state, file))


def keep_copy(latest: Path, kept: Path) -> None:
    """Keep the current ``latest`` under the name ``kept`` before it is replaced: a hard link
    (the rename of the next save leaves it pointing at the old file), else a copy."""
    kept.unlink(missing_ok=True)
    try:
        os.link(latest, kept)
    except OSError:
        shutil.copy2(latest, kept)


def prune(folder: Path, keep: int) -> None:
    """Delete all but the ``keep`` newest ``step-*.pt`` checkpoints in ``folder``."""
    kept = sorted(folder.glob("step-*.pt"))
    for old in kept[: max(len(kept) - keep, 0)]:
        old.unlink(missing_ok=True)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a gankit checkpoint safely; every failure is a one-line :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        with (
            warnings.catch_warnings()
        ):  # torch warns about foreign pickle protocols: we refuse those
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(
            f"{path}: refused: it holds Python objects other than tensors (tampered or not a gankit"
            " checkpoint); nothing in it was run"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{path}: truncated or corrupt checkpoint ({reason})") from None
    if not isinstance(state, dict) or "format" not in state or "networks" not in state:
        raise CheckpointError(f"{path}: not a gankit checkpoint")
    if state["format"] > FORMAT:
        raise CheckpointError(
            f"{path}: written by gankit {state.get('gankit_version')} (format {state['format']}); "
            f"this gankit {__version__} reads format {FORMAT} or older: upgrade gankit"
        )
    return state


def _lookup(tree: dict[str, Any], dotted: str) -> Any:
    node: Any = tree
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def _flatten(value: Any, prefix: str) -> dict[str, Any]:
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, child in value.items():
            flat.update(_flatten(child, f"{prefix}.{key}"))
        return flat
    return {prefix: value}


def architecture_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """The config keys defining the networks that differ, as "key: saved -> current"."""
    differences = []
    for key in ARCHITECTURE_KEYS:
        old, new = _flatten(_lookup(saved, key), key), _flatten(_lookup(current, key), key)
        for name in sorted(old.keys() | new.keys()):
            if old.get(name) != new.get(name):
                differences.append(f"{name}: {old.get(name)!r} -> {new.get(name)!r}")
    return differences


def capture_rng() -> dict[str, Any]:
    """Every random state the training loop may touch, as tensors and plain values."""
    numpy_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "keys": torch.from_numpy(numpy_state[1].astype(np.int64)),
            "pos": int(numpy_state[2]),
            "has_gauss": int(numpy_state[3]),
            "cached_gaussian": float(numpy_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    python_state = state["python"]
    random.setstate((python_state[0], tuple(python_state[1]), python_state[2]))
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["pos"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
