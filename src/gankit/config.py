"""The typed run config: validated here and nowhere else.

A run config has five parts: ``family`` (which objective), ``data``, ``model`` (the family's own
typed settings), ``train`` and ``output``. It is built from a YAML preset plus dotted overrides
(``train.lr_g=1e-4``); unknown keys and bad values raise :class:`ConfigError` with one line that
names the key and what is allowed.

This module knows no family and no metric: :mod:`gankit.resolve`, the layer above it, looks the
family's settings class and the metric names up in the registries and passes them to
:func:`validate_config` (docs/design.md, "Layers").
"""

from __future__ import annotations

import contextlib
import datetime as _dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from gankit.errors import ConfigError

PRESETS_DIR = Path(__file__).parent / "configs"
# The layout of the configs and checkpoints this version writes; older ones are migrated when
# read (gankit.runfolder.migrate). 2: the families made faithful to their papers (issue 18).
FORMAT = 2


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(Section):
    source: str = (
        "mnist-bundled"  # dataset registry name: mnist, fashion-mnist, cifar10, folder, ...
    )
    root: str | None = None  # data root (mnist/cifar10 files) or the folder/.zip for `folder`
    split: Literal["train", "test"] = "train"
    resolution: int = Field(32, ge=4, le=4096)  # side of the square training images
    resize: int | None = Field(None, ge=4)  # shorter side before cropping; None = resolution
    crop: Literal["center", "random"] = "center"  # "random": a random crop per batch from `resize`
    flip: bool = False  # random horizontal flips per batch
    hue: bool = False  # RGB: a random hue rotation per image and batch (luma kept; see loader)
    channels: Literal[1, 3] = 1  # 1 = grayscale, 3 = RGB
    labels: bool = False  # `folder`: class labels from sub-folder names
    download: bool = True  # fetch missing standard datasets (checksum-verified) when online
    max_images: int | None = Field(None, ge=1)  # use only the first N images
    paired: bool = True  # two-domain sources that can be either: rows of A and B are pairs
    # Translation sources (`unpaired`, `paired`; see gankit.data.translation). With `resize` unset
    # and crop=random they keep every image at its own size and crop at random per batch.
    direction: Literal["AtoB", "BtoA"] = "AtoB"  # BtoA: what the files call B is domain A
    a_kind: Literal["image", "labels"] = "image"  # labels: domain A is class-index maps (SPADE)
    channels_a: Literal[1, 3] | None = None  # domain A's channels; None = `channels`; labels: 1
    max_side: int | None = Field(None, ge=4)  # kept sizes: longer side at most this; None = any

    @property
    def stored_size(self) -> int:
        """Side of the images kept in memory: ``resize`` if set, else ``resolution``."""
        return self.resize or self.resolution

    @property
    def variable_size(self) -> bool:
        """Translation sources keep each image at its own size (random crops per batch)."""
        return self.resize is None and self.crop == "random"

    @property
    def domain_a_channels(self) -> int:
        """Channels of domain A: 1 for label maps, else ``channels_a`` or ``channels``."""
        return 1 if self.a_kind == "labels" else self.channels_a or self.channels

    @model_validator(mode="after")
    def _resize_covers_resolution(self) -> DataConfig:
        if self.resize is not None and self.resize < self.resolution:
            raise ValueError(
                f"data.resize ({self.resize}) must be >= data.resolution ({self.resolution})"
            )
        if self.max_side is not None and self.max_side < self.resolution:
            raise ValueError(
                f"data.max_side ({self.max_side}) must be >= data.resolution ({self.resolution})"
            )
        if self.hue and (self.channels != 3 or self.domain_a_channels != 3):
            raise ValueError(
                "data.hue rotates the hue of colour images: it needs data.channels=3 and RGB "
                "images in domain A too (no label maps)"
            )
        if self.a_kind == "labels" and self.channels_a == 3:
            raise ValueError(
                "data.channels_a=3 with data.a_kind=labels: label maps are one channel of class "
                "indices (leave channels_a unset or 1)"
            )
        return self


class ModelConfig(Section):
    """Base of each family's own settings; every objective declares a subclass."""


class TrainConfig(Section):
    steps: int = Field(2000, ge=1)  # generator steps (one step = every phase that is due)
    batch_size: int = Field(64, ge=1)
    lr_g: float = Field(2e-4, gt=0)
    lr_d: float = Field(2e-4, gt=0)
    betas: tuple[float, float] = (0.5, 0.999)  # Adam's (beta1, beta2)
    # Every learning rate decays linearly to 0 from this fraction of train.steps to the last
    # step (1.0 = constant), on top of a family's own schedule (e.g. CycleGAN's decay_start).
    lr_decay_start: float = Field(1.0, ge=0, le=1)
    optimizer: Literal["adam", "adamw", "rmsprop", "sgd"] = "adam"
    seed: int = 0
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"  # auto: cuda when available, else cpu
    # The fast paths (gankit.training.fastpath): autocast dtype (auto: bf16 on GPUs and CPUs that
    # have it, else fp16 on CUDA / fp32); NHWC networks (auto: on CUDA, and on CPUs in bf16);
    # torch.compile of every network (pays back only on long runs); fused optimiser kernels on
    # CPU and CUDA (else torch's default foreach implementation).
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    channels_last: bool | Literal["auto"] = "auto"
    compile: bool = False
    fused_optimizer: bool = True  # one fused kernel per optimiser step (Adam, AdamW, SGD)
    ema: bool = False  # keep an exponential moving average of the generator for sampling
    ema_decay: float = Field(0.999, gt=0, lt=1)
    grid_size: int = Field(5, ge=1, le=32)  # fixed-noise sample grids are grid_size x grid_size
    sample_every: int = Field(250, ge=0)  # steps between sample grids (0 = only at the end)
    checkpoint_every: int = Field(500, ge=0)  # steps between checkpoints (0 = only at the end)
    keep_checkpoints: int = Field(1, ge=1)  # latest.pt + the N - 1 before it (step-XXXXXX.pt)
    log_every: int = Field(25, ge=1)  # steps between reading losses back (a host sync)
    # A step whose loss or gradients are NaN/Inf is always skipped (not applied) and counted.
    # After `nonfinite_patience` such steps in a row: "rollback" reloads the latest checkpoint
    # with the learning rates halved (at most 3 times, then stops); "stop" stops at once.
    nonfinite: Literal["rollback", "stop"] = "rollback"
    nonfinite_patience: int = Field(10, ge=1)
    progress: bool = True  # tqdm progress bar
    # DiffAugment (Zhao et al. 2020) on every discriminator input, real and fake, in D and G
    # steps: any of color, translation, cutout (the paper's choice for small data: all three).
    diffaugment: list[Literal["color", "translation", "cutout"]] = []
    # Several processes (torchrun): batch norm normalises with the statistics of the global
    # batch (all ranks) instead of each rank's share; no effect in a single process.
    sync_batchnorm: bool = False

    @model_validator(mode="after")
    def _fp16_needs_cuda(self) -> TrainConfig:
        if self.precision == "fp16" and self.device not in ("cuda", "auto"):
            raise ValueError("train.precision=fp16 needs train.device=cuda (use bf16 on CPU)")
        if len(set(self.diffaugment)) != len(self.diffaugment):
            raise ValueError(f"train.diffaugment lists a policy twice: {self.diffaugment}")
        return self


class EvalConfig(Section):
    metrics: list[str] = []  # periodic metrics, e.g. [digit-fd] or [fid, kid]; [] = none
    every: int = Field(0, ge=0)  # steps between evaluations (0 = only at the end of training)
    n: int = Field(2000, ge=2)  # images generated; reference: n training images, seeded draw
    track: str | None = None  # the metric checkpoints/best.pt is kept for; None = the first one
    batch_size: int = Field(200, ge=1)  # images per feature-network batch

    @model_validator(mode="after")
    def _known_metrics(self, info: ValidationInfo) -> EvalConfig:
        """Metric names against ``context["metrics"]`` (name -> the numbers it reports), which
        the resolving layer (:mod:`gankit.resolve`) passes; without it (an assignment) the
        names are not checked here."""
        reports: Mapping[str, Sequence[str]] | None = (info.context or {}).get("metrics")
        if reports is None or (not self.metrics and self.track is None):
            return self
        for name in self.metrics:
            if name not in reports:
                raise ValueError(
                    f"eval.metrics: unknown metric {name!r}; valid: {', '.join(reports)}"
                )
        tracked = [number for name in self.metrics for number in reports[name]]
        if self.track is not None and self.track not in tracked:
            shown = ", ".join(tracked)
            raise ValueError(f"eval.track={self.track!r} is none of the reported {shown}")
        return self


class OutputConfig(Section):
    dir: str | None = None  # run folder; None = runs/<family>-<dataset>-<timestamp>
    tensorboard: bool = True


class RunConfig(Section):
    family: str
    format: int = Field(FORMAT, ge=FORMAT, le=FORMAT)  # older files: gankit.runfolder.migrate
    data: DataConfig = DataConfig()
    model: SerializeAsAny[ModelConfig] = ModelConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    output: OutputConfig = OutputConfig()

    @model_validator(mode="before")
    @classmethod
    def _typed_model_section(cls, values: Any, info: ValidationInfo) -> Any:
        """Validate ``model`` with ``context["model_class"]``, the settings class of the
        family's objective (passed by :mod:`gankit.resolve`; this module knows no family)."""
        model_class = (info.context or {}).get("model_class")
        if model_class is not None and isinstance(values, dict):
            model = values.get("model") or {}
            if not isinstance(model, model_class):
                if isinstance(model, BaseModel):
                    model = model.model_dump()
                values = {**values, "model": model_class.model_validate(model)}
        return values

    def default_run_dir(self) -> Path:
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        return Path("runs") / f"{self.family}-{self.data.source}-{stamp}"

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


# --------------------------------------------------------------------------------------------------
# Building a config: preset + overrides, with one-line errors


def _format_validation_error(
    error: ValidationError,
    root: type[BaseModel],
    prefix: str = "",
) -> str:
    first = error.errors()[0]
    loc = [str(part) for part in first["loc"]]
    key = ".".join([prefix, *loc] if prefix else loc)
    if first["type"] == "extra_forbidden":
        return f"config: unknown key {key!r}" + _valid_keys_hint(root, loc)
    value = first.get("input")
    shown = "" if isinstance(value, dict) else f" (got {value!r})"
    return f"config: {key or '<root>'}: {first['msg']}{shown}"


def _valid_keys_hint(root: type[BaseModel], loc: list[str]) -> str:
    section: type[BaseModel] | None = root
    for part in loc[:-1]:
        field = section.model_fields.get(part) if section else None
        annotation = getattr(field, "annotation", None)
        is_section = isinstance(annotation, type) and issubclass(annotation, BaseModel)
        section = annotation if is_section else None
    if section is None or section is ModelConfig:
        return ""
    return f"; valid keys here: {', '.join(section.model_fields)}"


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.lr_g=1e-4"`` -> (["train", "lr_g"], 0.0001). Values are parsed as YAML scalars."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key=value (e.g. train.lr_g=1e-4)")
    key, raw = text.split("=", 1)
    path = _dotted_path(key, text)
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str) and "e" in value.lower():
        with contextlib.suppress(
            ValueError
        ):  # YAML 1.1 reads 1e-4 as a string; a user means a float
            value = float(value)
    return path, value


def _dotted_path(key: str, override: str | None = None) -> list[str]:
    """``"train.lr_g"`` -> ["train", "lr_g"]; an empty key is a one-line error."""
    path = [part for part in key.strip().split(".") if part]
    if not path:
        raise ConfigError(f"override {override or key!r} has an empty key")
    return path


def _set_dotted(tree: dict[str, Any], path: list[str], value: Any) -> None:
    node = tree
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"config: {'.'.join(path)}: {part!r} is a value, not a section")
        node = child
    node[path[-1]] = value


def load_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping safely (no Python objects), with one-line errors."""
    try:
        loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"config {path}{where}: not valid YAML") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(
            f"config {path}: must be a mapping of sections, got {type(loaded).__name__}"
        )
    return loaded


def preset_path(family: str, dataset: str) -> Path | None:
    """The preset ``configs/<family>/<dataset>.yaml`` if it exists."""
    path = PRESETS_DIR / family / f"{dataset}.yaml"
    return path if path.is_file() else None


def list_presets() -> dict[str, list[str]]:
    return {
        family_dir.name: sorted(p.stem for p in family_dir.glob("*.yaml"))
        for family_dir in sorted(PRESETS_DIR.iterdir())
        if family_dir.is_dir()
    }


Overrides = Sequence[str] | Mapping[str, Any]  # ["train.steps=20"] or {"train.steps": 20}


def config_tree(
    base: dict[str, Any] | None = None,
    overrides: Overrides = (),
    **sections: Any,
) -> dict[str, Any]:
    """``base`` (a preset's mapping) with ``sections`` and dotted ``overrides`` on top, not yet
    validated. ``sections`` are top-level keys (``family="dcgan"``, ``data={...}``) merged into
    ``base``; ``overrides`` are ``key=value`` strings (values parsed as YAML scalars) or a
    mapping of dotted keys to values."""
    tree: dict[str, Any] = {
        key: dict(v) if isinstance(v, dict) else v for key, v in (base or {}).items()
    }
    for key, value in sections.items():
        if isinstance(value, dict):
            tree.setdefault(key, {}).update(value)
        else:
            tree[key] = value
    if isinstance(overrides, Mapping):
        pairs = [(_dotted_path(str(key)), value) for key, value in overrides.items()]
    else:
        pairs = [parse_override(override) for override in overrides]
    for path, value in pairs:
        _set_dotted(tree, path, value)
    return tree


def validate_config(
    tree: dict[str, Any],
    model_class: type[ModelConfig],
    metrics: Mapping[str, Sequence[str]],
) -> RunConfig:
    """Validate a whole config mapping: the only place config values are checked.

    ``model_class`` is the family's settings class and ``metrics`` maps each metric name to the
    numbers it reports; :func:`gankit.resolve.validate_config` looks both up in the registries.
    """
    if "family" not in tree:
        raise ConfigError("config: missing key 'family'")
    model = tree.get("model") or {}
    if not isinstance(model, dict):
        raise ConfigError(f"config: model: must be a mapping, got {model!r}")
    try:
        typed_model = model_class.model_validate(model)
        return RunConfig.model_validate(
            {**tree, "model": typed_model},
            context={"model_class": model_class, "metrics": metrics},
        )
    except ValidationError as exc:
        in_model = exc.title == model_class.__name__
        root = model_class if in_model else RunConfig
        raise ConfigError(
            _format_validation_error(exc, root, "model" if in_model else "")
        ) from None
