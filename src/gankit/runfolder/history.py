"""Loss history on disk (``losses.jsonl``) and the loss-curve plot drawn from it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def append_record(path: Path, record: dict[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as file:
        file.write(json.dumps(record) + "\n")


def read_records(path: Path) -> list[dict[str, Any]]:
    """All complete JSON lines of ``path`` (a torn last line from a crash is ignored)."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def truncate_after(path: Path, step: int) -> None:
    """Drop records newer than ``step``: after a crash they describe steps that will be redone."""
    if path.is_file():
        kept = [r for r in read_records(path) if r.get("step", 0) <= step]
        path.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")


def plot_losses(records: list[dict[str, Any]], path: Path, title: str = "") -> Path | None:
    """One panel per statistic (loss_d, loss_g, d_real, ...) against the step, as a PNG."""
    keys = [k for k in (records[0] if records else {}) if k not in ("step", "images_per_s", "time")]
    if not keys:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    losses = [k for k in keys if k.startswith("loss")]
    others = [k for k in keys if k not in losses]
    panels = [group for group in (losses, others) if group]
    figure, axes = plt.subplots(len(panels), 1, figsize=(7, 3.2 * len(panels)), squeeze=False)
    steps = [r["step"] for r in records]
    for axis, group in zip(axes[:, 0], panels, strict=True):
        for key in group:
            axis.plot(steps, [r.get(key, float("nan")) for r in records], label=key)
        axis.set_xlabel("step")
        axis.legend(loc="upper right")
        axis.grid(alpha=0.3)
    axes[0, 0].set_title(title)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
