"""Run folders as the web page sees them: where they are, what they are, and how far along.

Nothing here talks to a trainer: everything is read from the run folder that the trainer writes
(DESIGN.md, "Runs on disk"), so a page can watch a run started anywhere, by anyone.

Status rule (what the trainer writes decides it):

- ``finished``: ``export/config.json`` is at least as new as ``config.yaml`` (the trainer writes
  ``config.yaml`` when ``fit()`` starts and the export as the very last file of a run that was
  not interrupted) and the last ``losses.jsonl`` record has reached ``train.steps``.
  ``gankit train --resume`` rewrites ``config.yaml``, so a resumed run is no longer finished.
- ``running``: not finished, and some file the trainer appends to (``losses.jsonl``,
  ``log.txt``, ``metrics.jsonl``, ``checkpoints/latest.pt``, a sample grid, ``config.yaml``)
  changed within the stale window: ``max(stale_after, 3 x the expected time between two
  losses.jsonl records)``, the latter from ``train.log_every``, ``train.batch_size`` and the
  last ``images_per_s``, so slow runs are not declared dead between two log lines.
- ``stopped``: not finished, quiet, and ``log.txt`` says the run received SIGINT/SIGTERM and
  saved a checkpoint after its last start (``gankit train --resume`` continues it).
- ``crashed``: not finished, quiet beyond the stale window, and no such stop line.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gankit.errors import GankitError
from gankit.runfolder.layout import RunDir

STALE_AFTER_S = 180.0  # a run quiet for longer than this (at least) is no longer running
MAX_DEPTH = 3  # run folders are found up to this many levels below the runs folder
MAX_POINTS = 2000  # curves sent to the page are thinned to at most this many points
_SKIPPED_FOLDERS = {"checkpoints", "export", "samples", "events", "__pycache__"}
_STOP_LINE = re.compile(r"received at step (\d+): saving and stopping")
_START_LINE = re.compile(r" INFO training \S+ on ")
_LOG_TAIL_BYTES = 64 * 1024  # the end of log.txt read for the stop line and warnings


class RunNotFound(GankitError):
    """A run id that names no run folder inside the runs folder."""


class PathRefused(GankitError):
    """A path that leaves the runs folder (``..``, an absolute path, a symlink out)."""


def resolve_inside(root: Path, relative: str) -> Path:
    """``root / relative`` resolved (symlinks followed), refused unless it stays inside ``root``.

    ``relative`` comes from a URL: absolute paths, ``..`` that climbs out, NUL bytes and
    symlinks pointing outside all raise :class:`PathRefused`.
    """
    if "\x00" in relative or relative.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", relative):
        raise PathRefused(f"{relative!r}: not a path inside the runs folder")
    base = root.resolve()
    target = (base / relative).resolve()
    if target != base and base not in target.parents:
        raise PathRefused(f"{relative!r}: not a path inside the runs folder")
    return target


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


class JsonlReader:
    """The records of JSON-lines files, re-read incrementally as trainers append to them.

    A file that grew is read from where the last read stopped (only complete lines); one that
    shrank or was replaced (``--resume`` truncates records after a crash) is read afresh.
    Thread-safe: the server answers requests from several threads.
    """

    def __init__(self) -> None:
        self._files: dict[Path, tuple[int, int, list[dict[str, Any]]]] = {}  # inode, offset
        self._lock = threading.Lock()

    def read(self, path: Path) -> list[dict[str, Any]]:
        """All complete records of ``path`` ([] when it does not exist); do not modify them."""
        try:
            stat = path.stat()
        except OSError:
            return []
        with self._lock:
            inode, offset, records = self._files.get(path, (stat.st_ino, 0, []))
            if inode != stat.st_ino or stat.st_size < offset:
                offset, records = 0, []
            if stat.st_size > offset:
                with path.open("rb") as file:
                    file.seek(offset)
                    chunk = file.read(stat.st_size - offset)
                complete = chunk[: chunk.rfind(b"\n") + 1]  # a torn last line waits
                records = records + _parse_lines(complete)
                offset += len(complete)
            self._files[path] = (stat.st_ino, offset, records)
            return records


def _parse_lines(chunk: bytes) -> list[dict[str, Any]]:
    records = []
    for line in chunk.decode("utf-8", "replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def thin(records: list[dict[str, Any]], limit: int = MAX_POINTS) -> list[dict[str, Any]]:
    """At most ``limit`` records, evenly spaced, always keeping the last one."""
    if len(records) <= limit:
        return records
    stride = math.ceil(len(records) / limit)
    kept = records[::stride]
    return kept if kept[-1] is records[-1] else [*kept, records[-1]]


@dataclass
class RunSummary:
    """What the runs page shows of one run folder."""

    id: str  # the folder relative to the runs folder, with "/" separators
    family: str
    task: str  # "generate" | "translate"
    dataset: str
    resolution: int | None
    step: int  # the last step logged to losses.jsonl (0 before the first)
    steps: int | None  # train.steps of the config
    status: str  # running | finished | stopped | crashed
    updated: float  # newest write to the run folder (seconds since the epoch)
    images_per_s: float | None
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)  # newest per metric
    sample: str | None = None  # newest sample grid, relative to the runs folder
    sample_version: int = 0  # its mtime in ns: changes when the grid is rewritten
    warning: str | None = None  # the last WARNING line of log.txt, if any

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


class RunScanner:
    """Finds run folders under ``root`` and summarises them (config, losses, metrics, status)."""

    def __init__(self, root: Path, stale_after: float = STALE_AFTER_S) -> None:
        self.root = root.resolve()
        self.stale_after = stale_after
        self.records = JsonlReader()

    def run_folders(self) -> list[Path]:
        """Every folder with a config.yaml up to :data:`MAX_DEPTH` levels below the runs folder
        (the runs folder itself too), not looking inside a run's own sub-folders."""
        found: list[Path] = []

        def walk(folder: Path, depth: int) -> None:
            if (folder / "config.yaml").is_file():
                found.append(folder)
                return
            if depth >= MAX_DEPTH:
                return
            try:
                children = sorted(p for p in folder.iterdir() if p.is_dir())
            except OSError:
                return
            for child in children:
                if not child.name.startswith(".") and child.name not in _SKIPPED_FOLDERS:
                    walk(child, depth + 1)

        walk(self.root, 0)
        return found

    def run_id(self, folder: Path) -> str:
        relative = folder.resolve().relative_to(self.root).as_posix()
        return "." if relative in ("", ".") else relative

    def folder(self, run_id: str) -> Path:
        """The run folder of ``run_id``; RunNotFound unless it is one inside the runs folder."""
        try:
            folder = resolve_inside(self.root, "" if run_id == "." else run_id)
        except PathRefused:
            raise RunNotFound(f"no run {run_id!r} in {self.root}") from None
        if not (folder / "config.yaml").is_file():
            raise RunNotFound(f"no run {run_id!r} in {self.root}")
        return folder

    def summaries(self) -> list[RunSummary]:
        """Every run, the most recently updated first."""
        runs = []
        for folder in self.run_folders():
            try:
                runs.append(self.summary(folder))
            except (OSError, ValueError):  # a folder being deleted, a torn config: skip it
                continue
        return sorted(runs, key=lambda run: -run.updated)

    def config(self, folder: Path) -> dict[str, Any]:
        """The run's config.yaml as a mapping ({} when unreadable)."""
        try:
            tree = yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError, UnicodeDecodeError):
            return {}
        return tree if isinstance(tree, dict) else {}

    def losses(self, folder: Path) -> list[dict[str, Any]]:
        return self.records.read(RunDir(folder).losses)

    def metrics(self, folder: Path) -> list[dict[str, Any]]:
        return self.records.read(RunDir(folder).metrics)

    def summary(self, folder: Path) -> RunSummary:
        """One run's summary, from its files alone."""
        run, config = RunDir(folder), self.config(folder)
        data, train = config.get("data") or {}, config.get("train") or {}
        losses = self.losses(folder)
        last = losses[-1] if losses else {}
        newest = run.newest_sample()
        family = str(config.get("family", "?"))
        summary = RunSummary(
            id=self.run_id(folder),
            family=family,
            task=_task(family),
            dataset=str(data.get("source", "?")),
            resolution=data.get("resolution"),
            step=int(last.get("step", 0)),
            steps=train.get("steps"),
            status="",
            updated=self._updated(run, newest),
            images_per_s=last.get("images_per_s"),
            metrics=latest_metrics(self.metrics(folder)),
            sample=newest.relative_to(self.root).as_posix() if newest else None,
            sample_version=newest.stat().st_mtime_ns if newest else 0,
        )
        summary.status, summary.warning = self._status(run, summary, train)
        return summary

    def _updated(self, run: RunDir, newest_sample: Path | None) -> float:
        files = [
            run.config,
            run.losses,
            run.log,
            run.metrics,
            run.latest,
            run.export / "config.json",
        ]
        times = [_mtime(path) for path in [*files, *([newest_sample] if newest_sample else [])]]
        return max((t for t in times if t is not None), default=0.0)

    def _status(
        self, run: RunDir, summary: RunSummary, train: dict[str, Any]
    ) -> tuple[str, str | None]:
        """(status, last warning) by the rule in the module docstring."""
        started, exported = _mtime(run.config), _mtime(run.export / "config.json")
        steps = summary.steps
        reached = steps is None or summary.step >= int(steps)
        if exported is not None and started is not None and exported >= started and reached:
            return "finished", _last_warning(run.log)
        if time.time() - summary.updated <= self.stale_window(summary, train):
            return "running", _last_warning(run.log)
        stopped, warning = _stop_line(run.log)
        return ("stopped" if stopped else "crashed"), warning

    def stale_window(self, summary: RunSummary, train: dict[str, Any]) -> float:
        """Seconds of silence after which a run that has not finished is no longer running."""
        try:
            expected = float(train["log_every"]) * float(train["batch_size"]) / summary.images_per_s
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            expected = 0.0
        return max(self.stale_after, 3 * expected)


def _task(family: str) -> str:
    from gankit.objectives import OBJECTIVES

    return OBJECTIVES.get(family).task if family in OBJECTIVES else "generate"


def metric_directions() -> dict[str, bool]:
    """{reported metric name: lower is better} for every registered metric (fid, precision, ...)."""
    from gankit.metrics import METRICS

    directions = {}
    for name in METRICS.names():
        metric = METRICS.get(name)
        directions |= {reported: metric.lower_is_better for reported in metric.reports}
    return directions


def latest_metrics(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The newest record of each metric, as {metric: {value, std, n, step}}."""
    latest: dict[str, dict[str, Any]] = {}
    for record in records:
        if "metric" in record and isinstance(record.get("value"), (int, float)):
            latest[str(record["metric"])] = {
                "value": record["value"],
                "std": record.get("std"),
                "n": record.get("n_generated"),
                "step": record.get("step"),
            }
    return latest


def _log_tail(path: Path) -> list[str]:
    try:
        with path.open("rb") as file:
            file.seek(max(0, file.seek(0, os.SEEK_END) - _LOG_TAIL_BYTES))
            return file.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return []


def _last_warning(path: Path) -> str | None:
    lines = [line for line in _log_tail(path) if " WARNING " in line or " ERROR " in line]
    return lines[-1].split(" ", 3)[-1] if lines else None


def _stop_line(path: Path) -> tuple[bool, str | None]:
    """(whether the run's last start ended with a saved stop, the last warning line)."""
    stopped = False
    for line in _log_tail(path):
        if _START_LINE.search(line):
            stopped = False
        elif _STOP_LINE.search(line):
            stopped = True
    return stopped, _last_warning(path)
