"""Exports: ``config.json`` + ``<network>.safetensors``, all that sampling needs.

An export holds no pickle: it is rebuilt from the config (the objective's constructor) and the
weights are read with safetensors.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safetensors.torch import save_file
from torch import nn

from gankit.version import __version__

if TYPE_CHECKING:
    from gankit.config import RunConfig
    from gankit.objectives import Objective

EXPORT_FORMAT = 1


def export_generator(
    cfg: RunConfig, objective: Objective, network: nn.Module, folder: Path
) -> Path:
    """Write ``network`` (the generator, or its EMA copy) and the run config ``cfg`` (with the
    global batch size, whatever the process count) to ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    name = objective.sample_network
    tensors = {k: v.detach().cpu().contiguous() for k, v in network.state_dict().items()}
    weights = folder / f"{name}.safetensors"
    temporary = weights.with_name(weights.name + ".tmp")
    save_file(tensors, str(temporary), metadata={"gankit_version": __version__})
    temporary.replace(weights)
    manifest: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "gankit_version": __version__,
        "family": cfg.family,
        "network": name,
        "num_classes": objective.num_classes,
        "config": cfg.to_dict(),
    }
    (folder / "config.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return folder
