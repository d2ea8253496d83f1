"""The resolving layer: a config from a family, a dataset, a preset and overrides.

It sits above :mod:`gankit.config` (the typed sections, which know no family), the objectives and
the metrics: it looks up the family's settings class and the metric names in their registries,
finds the preset, and validates the whole config once. The CLI, the Python API
(:func:`gankit.build_config`, :func:`gankit.train`) and the benchmarks all build configs here, by
the same code path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gankit import config
from gankit.config import EvalConfig, ModelConfig, Overrides, RunConfig, load_yaml, preset_path
from gankit.errors import ConfigError, GankitError
from gankit.metrics import METRICS
from gankit.objectives import OBJECTIVES
from gankit.runfolder.layout import RunDir
from gankit.runfolder.migrate import migrate_config


def model_class(family: str) -> type[ModelConfig]:
    """The settings class of ``family``'s objective; an unknown name is one line listing the
    valid ones."""
    try:
        return OBJECTIVES.get(str(family)).Config
    except GankitError as exc:
        raise ConfigError(f"config: family: {exc}") from None


def metric_reports() -> dict[str, tuple[str, ...]]:
    """Every registered metric and the numbers it reports (``pr``: precision and recall)."""
    return {name: tuple(METRICS.get(name).reports) for name in METRICS.names()}


def tracked_metrics(eval_cfg: EvalConfig) -> list[str]:
    """The numbers ``eval.metrics`` report, in order (the first is tracked by default)."""
    return [number for name in eval_cfg.metrics for number in METRICS.get(name).reports]


def validate_config(tree: dict[str, Any]) -> RunConfig:
    """Validate a whole config mapping (a preset, a saved config.yaml) with one-line errors."""
    if "family" not in tree:
        raise ConfigError("config: missing key 'family'")
    return config.validate_config(tree, model_class(tree["family"]), metric_reports())


def build_config(
    base: dict[str, Any] | None = None,
    overrides: Overrides = (),
    **sections: Any,
) -> RunConfig:
    """:func:`validate_config` of ``base`` with ``sections`` and dotted ``overrides`` on top
    (see :func:`gankit.config.config_tree`)."""
    return validate_config(config.config_tree(base, overrides, **sections))


def resolve_config(
    family: str,
    data: str | None = None,  # data source; None: the preset's, else mnist-bundled
    data_root: str | None = None,  # where the dataset's files are
    overrides: Overrides = (),  # ["train.steps=20"] or {"train.steps": 20}
    config_file: str | Path | None = None,  # a YAML config instead of the preset
    out: str | Path | None = None,  # the run folder (output.dir)
) -> RunConfig:
    """The validated config of a training run.

    The base is ``config_file``, else the preset configs/<family>/<data>.yaml, else
    configs/<family>/default.yaml; ``data``, ``data_root``, ``out`` and ``overrides`` go on top.
    """
    model_class(family)  # an unknown family fails first, listing the valid ones
    if config_file:
        base = load_yaml(Path(config_file))
    else:
        preset = preset_path(family, data or "mnist-bundled") or preset_path(family, "default")
        base = load_yaml(preset) if preset else {}
    sections: dict[str, Any] = {"family": family, "data": {}, "output": {}}
    if data:
        sections["data"]["source"] = data
    if data_root:
        sections["data"]["root"] = str(data_root)
    if out:
        sections["output"]["dir"] = str(out)
    return build_config(base, overrides, **sections)


def load_run_config(run_dir: str | Path, overrides: Overrides = ()) -> RunConfig:
    """The config saved in ``run_dir`` (migrated if an older format wrote it) with dotted
    ``overrides`` applied (for resuming)."""
    path = RunDir(Path(run_dir)).config
    if not path.is_file():
        raise GankitError(f"{run_dir} is not a run folder (no config.yaml)")
    return build_config(migrate_config(load_yaml(path), str(path)), overrides)


def saved_config(tree: dict[str, Any], source: str) -> RunConfig:
    """A config read from a checkpoint or an export (``source``, for errors), migrated to this
    format and validated."""
    return validate_config(migrate_config(tree, source))
