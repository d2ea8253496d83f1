"""The work behind CLI commands that is more than one call (kept out of cli.py's parsing)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

import gankit
from gankit.errors import GankitError
from gankit.metrics import METRICS, Reference, evaluate, format_result
from gankit.metrics.images import load_image_file
from gankit.train.checkpoint import load_checkpoint
from gankit.train.history import append_record
from gankit.train.images import to_uint8
from gankit.train.run_dir import RunDir


def run_eval(
    source: str | None,  # a run folder, export folder or checkpoint to sample from
    images_path: str | None,  # or images on disk
    ref: str | None,  # "dataset:split" or a folder/.zip; None = the run's own data
    data_root: str | None,
    metric_names: list[str],
    n: int,
    ref_n: int | None,
    ref_seed: int | None,
    seed: int,
    device: str,
    batch_size: int,
    resize: str,
    progress: bool = True,
) -> list[tuple[dict[str, Any], str]]:
    """Evaluate and return (record, printable line) per number; a run folder also gets the
    records appended to its metrics.jsonl."""
    if not metric_names:
        raise GankitError("--metrics names no metric")
    for name in metric_names:
        METRICS.get(name)  # unknown names fail here, listing the valid ones
    if (source is None) == (images_path is None):
        raise GankitError("eval needs either a RUN (run, export or checkpoint) or --images PATH")
    step = None
    if images_path is not None:
        images = load_image_file(images_path)[:n]
        run_data = None
    else:
        loaded = gankit.load(source, device=device)
        fake = loaded.sample(n, seed=seed, batch_size=batch_size)
        images = to_uint8(loaded.objective.metric_view(fake))
        run_data = loaded.config.data
        step = _run_step(Path(source))
    if images.shape[-1] != images.shape[-2]:
        raise GankitError(f"images must be square to evaluate, got {tuple(images.shape[-2:])}")
    reference = _reference(ref, data_root, run_data, images, ref_n or len(images), ref_seed)
    results = evaluate(images, reference, metric_names, device=device, batch_size=batch_size,
                       progress=progress, seed=seed if images_path is None else None,
                       resize=resize)  # fmt: skip
    records = [(r.record(**({"step": step} if step is not None else {})), format_result(r))
               for r in results]  # fmt: skip
    if step is not None:
        for record, _ in records:
            append_record(RunDir(Path(source)).metrics, record)  # type: ignore[arg-type]
    return records


def _reference(
    ref: str | None, data_root: str | None, run_data: Any, images: torch.Tensor, n: int,
    seed: int | None,
) -> Reference:  # fmt: skip
    fields = {"n": n, "resolution": images.shape[-1], "channels": images.shape[1], "seed": seed}
    if ref is None:
        if run_data is None:
            raise GankitError("--ref is needed with --images (e.g. --ref mnist:test)")
        return Reference(dataset=run_data.source, split=run_data.split,
                         root=data_root or run_data.root, **fields)  # fmt: skip
    reference = Reference.parse(ref, **fields)
    if data_root and reference.dataset != "folder":
        reference = dataclasses.replace(reference, root=data_root)
    return reference


def _run_step(path: Path) -> int | None:
    """The step of a run folder's latest checkpoint; None for exports and checkpoint files."""
    run = RunDir(path)
    if path.is_dir() and run.latest.is_file():
        return int(load_checkpoint(run.latest)["step"])
    return None
