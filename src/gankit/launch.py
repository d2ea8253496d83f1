"""Training from Python: ``gankit.train(family, data=..., overrides=...)``, the CLI's path."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from gankit.config import Overrides, RunConfig
from gankit.resolve import load_run_config, resolve_config

if TYPE_CHECKING:  # the training package loads only when a run starts
    from gankit.training import TrainResult


def build_config(
    family: str,
    data: str | None = None,  # data source (mnist-bundled, mnist, cifar10, folder, ...)
    data_root: str | Path | None = None,  # where its files are (or the folder/.zip)
    overrides: Overrides = (),  # {"train.steps": 20} or ["train.steps=20"]
    config_file: str | Path | None = None,  # a YAML config instead of the preset
    out: str | Path | None = None,  # the run folder
) -> RunConfig:
    """The validated config ``gankit train FAMILY --data DATA ...`` would run: the preset
    configs/<family>/<data>.yaml (else default.yaml) with the arguments on top."""
    return resolve_config(family, data, data_root, overrides, config_file, out)


def train(
    family: str | None = None,  # None: resume ``resume``
    data: str | None = None,
    data_root: str | Path | None = None,
    overrides: Overrides = (),
    config_file: str | Path | None = None,
    out: str | Path | None = None,  # the run folder; None: runs/<family>-<data>-<time>
    resume: str | Path | None = None,  # a run folder to continue (overrides apply on top)
) -> TrainResult:
    """Train as ``gankit train`` does and return its :class:`~gankit.training.TrainResult`
    (run folder, step, last grid, export folder, last metrics)."""
    from gankit.training import Trainer

    if resume is not None:
        cfg = load_run_config(resume, overrides)
        return Trainer(cfg, Path(resume), resume=True).fit()
    if family is None:
        raise TypeError("gankit.train needs a family (see `gankit list`) or resume=RUN_DIR")
    cfg = build_config(family, data, data_root, overrides, config_file, out)
    run_dir = Path(cfg.output.dir) if cfg.output.dir else cfg.default_run_dir()
    return Trainer(cfg, run_dir).fit()
