"""The HD painting experiment (issue 19): real HD photos into an oil-painting style, scored.

    make hd-painting                          # train 3 models (~20 min each on 2 cores), score
    python scripts/hd_painting.py --skip-training          # translate and score again
    python scripts/hd_painting.py --steps 5 --photos Dune --run-dir /tmp/hdp --docs /tmp/hdp/d
    python scripts/hd_painting.py --model siamese-downscaled --mode whole \
        --set model.lowpass_window=4 --run-dir /tmp/try --docs /tmp/try/d   # one model, a change

1. Data (:mod:`gankit.data.hd_photos`, photos from ``make hd-photos``): ``RUN_DIR/crops-x1/``
   and ``RUN_DIR/crops-x2/`` hold :data:`CROPS_PER_PHOTO` random :data:`CROP_SIZE` px crops
   of every A photo (``trainA/``) and painted B photo (``trainB/``), from the photos at their
   size and shrunk :data:`DOWNSCALE` times; ``RUN_DIR/held-out/`` the held-out photos
   (``testA/``) and their true paintings (``testB/``) at full size.
2. Training (unless ``--skip-training``), ``gankit train`` in a fresh process per model, into
   ``RUN_DIR/<model>/``: :data:`MODELS`, the Siamese GAN preset
   ``configs/siamese/hd-painting.yaml`` on the full-size crops, the same preset on the shrunk
   ones (the seed's remedy for near-empty patches: train on downscaled HD images, translate at
   full size) and CycleGAN, ``configs/cyclegan/hd-painting.yaml``, on the full-size crops. The
   presets' ``train.steps`` are set so that each trains in about :data:`TRAIN_BUDGET_S` on
   2 cores; the record gives each run's seconds and the steps that would fill the budget.
3. Translation of every held-out photo at its full size by every model, in a fresh
   ``gankit translate`` process per mode (:func:`hd_measure.translate_measured`: wall time,
   megapixels/s, peak RSS): overlap (``--tile 256 --overlap 64``), grid (``--tile 256``, tiles
   side by side) and whole (one pass). Whole mode runs under an address-space limit
   (``--whole-memory-mb``, at most half the memory available at the start): a pass that does
   not fit fails inside its process and is recorded and logged as skipped with its reason.
4. Scores against the true painting (:mod:`hd_scores`): PSNR, PSNR at grid mode's tile
   borders, SSIM, the style distance and its parts. Seam scores
   (:func:`gankit.translate.seam_score` with ``period`` :data:`SEAM_PERIOD`): ``seam_score`` on
   the mode's own tile borders (identity, truth and whole mode: overlap mode's),
   ``seam_score_grid`` on grid mode's and, for the tiled modes, ``seam_over_whole``: the seam
   score over the same model's whole-mode pass on the same lines. On real photos the plain
   score is not 1 without seams: the held-out photos are JPEGs, whose 8 px blocks lie on every
   tile border (tile, stride and margin are multiples of 8), and the content near a few border
   lines moves it (Dune's true painting scores 0.88 to 1.23 on overlap mode's lines shifted by
   0 to 40 px). The period (8: JPEG's block and a multiple of the generators' stride 4)
   compares border pairs only with pairs of the same phase; the whole pass is the seam-free
   reference of the same generator on the same content. Baselines: the identity (the photo
   itself) and grid mode.
5. ``DOCS`` (default ``docs/hd-painting/``): ``<photo>-before.jpg``, ``<photo>-after.jpg``
   (Siamese, overlap) and ``<photo>-truth.jpg`` at 1024 px wide; ``<photo>-corner.png``, 1:1
   crops of :data:`CORNER_CROP` px around the grid tile corner nearest the centre (input | grid
   | overlap | true painting, Siamese); ``<photo>-models.png``, the same crop of every model's
   overlap output and the truth; ``example.json``, every number.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from hd_measure import (
    GANKIT,
    read_rgb,
    run_measured,
    save_reduced,
    strip,
    tile_seam,
    translate_measured,
)
from hd_scores import score
from PIL import Image

from gankit.data.hd_photos import SPLIT, PhotoSplit, hd_photos_dir, write_crops, write_held_out
from gankit.errors import GankitError

REPO = Path(__file__).resolve().parents[1]
PRESETS = REPO / "configs"
TRAIN_BUDGET_S = 1200  # CPU budget of every model: about 20 minutes on 2 cores (issue 19)
CROP_SIZE = 256  # px: the crops written; the loader takes a random 64 px square of one a batch
CROPS_PER_PHOTO = 64  # 64 x 256^2 px: about one photo's worth of pixels per photo
DOWNSCALE = 2.0  # the downscaled variant's photos are shrunk this many times
TILE, OVERLAP = 256, 64  # translation tiles, px, and the pixels overlap mode's tiles share
MODES = ("overlap", "grid", "whole")
WHOLE_MEMORY_MB = 8192  # default address-space limit of a whole-mode translation
CORNER_CROP = 256  # px: side of the 1:1 crops around a tile corner
SEED = 0  # of the crops' positions
SEAM_PERIOD = 8  # seam pairs compared with pairs of the same phase mod 8 (point 4 above)
CHECKS = (  # the acceptance points of issue 19 that example.json decides (see acceptance())
    "overlap_seam_at_most_1.02",
    "overlap_seam_over_whole_at_most_1.02",
    "closer_than_photo_psnr",
    "closer_than_photo_style",
    "grid_worse_at_borders",
    "tiled_peak_rss_under_1gb",
)


@dataclass(frozen=True)
class Model:
    """One trained translator of the experiment."""

    name: str  # its folder under the run dir and its key in example.json
    family: str
    preset: Path
    downscale: float  # the training photos were shrunk this many times (1: full size)
    description: str


MODELS = (
    Model("siamese", "siamese", PRESETS / "siamese" / "hd-painting.yaml", 1.0,
          "Siamese GAN (Combo), crops of the photos at full size"),
    Model("siamese-downscaled", "siamese", PRESETS / "siamese" / "hd-painting.yaml", DOWNSCALE,
          f"the same preset on crops of the photos shrunk {DOWNSCALE:g}x, translated at full size"),
    Model("cyclegan", "cyclegan", PRESETS / "cyclegan" / "hd-painting.yaml", 1.0,
          "CycleGAN at the same CPU budget, crops of the photos at full size"),
)  # fmt: skip


@dataclass(frozen=True)
class Experiment:
    """What one run of the script does; the defaults are the README's experiment."""

    run_dir: Path
    docs: Path
    photos: tuple[str, ...] = SPLIT.test  # held-out photos translated (file names)
    models: tuple[Model, ...] = MODELS
    train: bool = True
    steps: int | None = None  # overrides every preset's train.steps (smoke runs)
    sets: tuple[str, ...] = ()  # KEY=VALUE overrides of every model's training (experiments)
    crop_size: int = CROP_SIZE
    crops_per_photo: int = CROPS_PER_PHOTO
    tile: int = TILE
    overlap: int = OVERLAP
    corner_crop: int = CORNER_CROP
    whole_memory_mb: int = WHOLE_MEMORY_MB
    modes: tuple[str, ...] = MODES


# --------------------------------------------------------------------------------------------------
# Data and training


def crops_dir(run_dir: Path, downscale: float) -> Path:
    """Where the crops of photos shrunk ``downscale`` times are written."""
    return run_dir / f"crops-x{downscale:g}"


def prepare_data(exp: Experiment) -> Path:
    """Write the training crops each model needs (when training and not there yet) and the
    held-out photos with their true paintings (unless all of them are there). Returns the
    held-out folder (``testA/``, ``testB/``)."""
    folder = hd_photos_dir()
    if exp.train:
        for downscale in sorted({model.downscale for model in exp.models}):
            root = crops_dir(exp.run_dir, downscale)
            if not (root / "trainA").is_dir():
                write_crops(root, crops_per_photo=exp.crops_per_photo, crop_size=exp.crop_size,
                            downscale=downscale, seed=SEED, folder=folder)  # fmt: skip
    held_out = exp.run_dir / "held-out"
    if any(
        not (held_out / side / f"{Path(name).stem}.png").is_file()
        for name in exp.photos
        for side in ("testA", "testB")
    ):
        split = PhotoSplit(a=SPLIT.a, b=SPLIT.b, test=exp.photos)
        for side in ("testA", "testB"):  # written again as a whole: one consistent set
            for stale in (held_out / side).glob("*.png"):
                stale.unlink()
        write_held_out(held_out, split=split, folder=folder)
    return held_out


def training_command(exp: Experiment, model: Model) -> list[str]:
    """The ``gankit train`` command line of ``model`` (its preset, crops, steps and sets)."""
    crops, out = crops_dir(exp.run_dir, model.downscale), exp.run_dir / model.name
    command = [GANKIT, "train", model.family, "--config", str(model.preset),
               "--data-root", str(crops), "--out", str(out)]  # fmt: skip
    if exp.steps is not None:
        command += ["--set", f"train.steps={exp.steps}"]
    return command + [item for override in exp.sets for item in ("--set", override)]


def train(exp: Experiment, model: Model) -> dict[str, Any]:
    """``gankit train`` of ``model`` into ``RUN_DIR/<model>``, measured; the record is also
    saved there (``hd-painting-train.json``) for later ``--skip-training`` runs."""
    out = exp.run_dir / model.name
    measured = run_measured(training_command(exp, model))
    steps = yaml.safe_load((out / "config.yaml").read_text())["train"]["steps"]
    record = {
        "preset": str(model.preset.relative_to(REPO)),
        "downscale": model.downscale,
        "steps": steps,
        "seconds": round(measured.seconds, 1),
        "peak_rss_mb": round(measured.peak_rss_mb, 1),
        "steps_for_budget": int(steps * TRAIN_BUDGET_S / measured.seconds),
        "sets": list(exp.sets),
    }
    (out / "hd-painting-train.json").write_text(json.dumps(record, indent=1) + "\n")
    return record


def training_record(exp: Experiment, model: Model) -> dict[str, Any] | None:
    """The saved training record of ``model`` (None when it was trained otherwise)."""
    path = exp.run_dir / model.name / "hd-painting-train.json"
    return json.loads(path.read_text()) if path.is_file() else None


# --------------------------------------------------------------------------------------------------
# Translation and scores


def whole_memory_limit(requested_mb: int) -> int:
    """The whole-mode address-space limit in MB: ``requested_mb``, at most half of the memory
    available now (``MemAvailable`` of /proc/meminfo, where there is one)."""
    try:
        lines = Path("/proc/meminfo").read_text().splitlines()
        available_kb = next(int(line.split()[1]) for line in lines if line.startswith("MemAv"))
    except (OSError, StopIteration, ValueError, IndexError):
        return requested_mb
    return min(requested_mb, available_kb // 1024 // 2)


def reference_rows(photo: np.ndarray, truth: np.ndarray, tile: int, overlap: int) -> dict:
    """The baselines that need no model: ``identity`` (the photo scored as the translation) and
    ``truth`` (the true painting's own seam scores: what a seam-free painting gives)."""
    rows = {}
    for name, image in (("identity", photo), ("truth", truth)):
        rows[name] = {
            "seam_score": round(tile_seam(image, tile, overlap, SEAM_PERIOD), 4),
            "seam_score_grid": round(tile_seam(image, tile, 0, SEAM_PERIOD), 4),
        }
    rows["identity"] |= score(photo, truth, tile)
    return rows


def add_seam_ratios(rows: dict[str, dict[str, Any]]) -> None:
    """Give the grid and overlap rows of one model and photo ``seam_over_whole``: their
    seam_score over the whole-mode row's on the same lines (nothing where whole is skipped)."""
    whole = rows.get("whole", {"skipped": "not run"})
    for mode, same_lines in (("overlap", "seam_score"), ("grid", "seam_score_grid")):
        if "skipped" not in whole and "skipped" not in rows.get(mode, {"skipped": "not run"}):
            rows[mode]["seam_over_whole"] = round(rows[mode]["seam_score"] / whole[same_lines], 4)


def translate_and_score(
    exp: Experiment, model: Model, source: Path, truth: np.ndarray, mode: str, memory_mb: int
) -> dict[str, Any]:
    """One translation of ``source`` by ``model`` in ``mode``, measured and scored against
    ``truth`` (H, W, 3) uint8. Whole mode: under ``memory_mb``; a skip is logged."""
    out = exp.run_dir / model.name / f"hd-{mode}"
    limit = memory_mb if mode == "whole" else None
    row = translate_measured(exp.run_dir / model.name, source, out, mode, exp.tile, exp.overlap,
                             memory_limit_mb=limit, seam_period=SEAM_PERIOD)  # fmt: skip
    if "skipped" in row:
        print(
            f"hd_painting: {model.name} {source.stem} whole mode skipped under a {memory_mb} "
            f"MB limit: {row['skipped']}",
            file=sys.stderr,
        )
        return row
    pixels = read_rgb(Path(row["result"]))
    grid = row["seam_score"] if mode == "grid" else tile_seam(pixels, exp.tile, 0, SEAM_PERIOD)
    return {**row, "seam_score_grid": round(grid, 4), **score(pixels, truth, exp.tile)}


def evaluate(exp: Experiment, held_out: Path) -> dict[str, Any]:
    """Every held-out photo: size, baselines and each model's rows per mode (example.json's
    ``photos``)."""
    memory_mb = whole_memory_limit(exp.whole_memory_mb)
    photos = {}
    for name in exp.photos:
        stem = Path(name).stem
        source, truth_path = held_out / "testA" / f"{stem}.png", held_out / "testB" / f"{stem}.png"
        photo, truth = read_rgb(source), read_rgb(truth_path)
        record: dict[str, Any] = {
            "size": f"{photo.shape[1]}x{photo.shape[0]}",
            **reference_rows(photo, truth, exp.tile, exp.overlap),
        }
        for model in exp.models:
            record[model.name] = {
                mode: translate_and_score(exp, model, source, truth, mode, memory_mb)
                for mode in exp.modes
            }
            add_seam_ratios(record[model.name])
        photos[stem] = record
    return photos


# --------------------------------------------------------------------------------------------------
# The report


def summarise(photos: dict[str, Any], models: tuple[Model, ...]) -> dict[str, Any]:
    """Per model and mode over the photos: the mean of every number, and the smallest margins
    over the identity baseline (psnr_gain_db: PSNR minus the photo's; style_gain: the photo's
    style distance minus the translation's; both > 0 where the translation is closer)."""
    summary: dict[str, Any] = {}
    for model in models:
        for mode in MODES:
            rows = [
                (p[model.name][mode], p["identity"])
                for p in photos.values()
                if "skipped" not in p.get(model.name, {}).get(mode, {"skipped": "not run"})
            ]
            if not rows:
                continue
            numbers = [
                k
                for k, v in rows[0][0].items()
                if isinstance(v, int | float) and k not in ("tile", "overlap")
            ]
            mean = {k: round(float(np.mean([r[k] for r, _ in rows])), 4) for k in numbers}
            margins = {
                "min_psnr_gain_db": min(r["psnr_db"] - i["psnr_db"] for r, i in rows),
                "min_style_gain": min(i["style_distance"] - r["style_distance"] for r, i in rows),
            }
            margins = {k: round(v, 4) for k, v in margins.items()}
            summary[f"{model.name}/{mode}"] = {"photos": len(rows), **mean, **margins}
    return summary


def acceptance(photos: dict[str, Any], model: str = "siamese") -> dict[str, bool | None]:
    """The issue's acceptance points that these numbers decide (:data:`CHECKS`), for ``model``
    on every photo, None where a row is missing: overlap seam <= 1.02, plain and over the whole
    pass; closer to the truth than the photo on PSNR and on the style distance (overlap mode);
    grid mode worse at the tile borders than overlap mode (seam score on its borders and border
    PSNR); peak RSS < 1 GB in the tiled modes."""
    try:
        rows = [(p[model]["overlap"], p[model]["grid"], p["identity"]) for p in photos.values()]
    except KeyError:
        return dict.fromkeys(CHECKS)
    ratios = [o.get("seam_over_whole") for o, _, _ in rows]
    return {
        "overlap_seam_at_most_1.02": all(o["seam_score"] <= 1.02 for o, _, _ in rows),
        "overlap_seam_over_whole_at_most_1.02": (
            None if None in ratios else all(r <= 1.02 for r in ratios)
        ),
        "closer_than_photo_psnr": all(o["psnr_db"] > i["psnr_db"] for o, _, i in rows),
        "closer_than_photo_style": all(
            o["style_distance"] < i["style_distance"] for o, _, i in rows
        ),
        "grid_worse_at_borders": all(
            g["seam_score"] > o["seam_score"] and g["border_psnr_db"] < o["border_psnr_db"]
            for o, g, _ in rows
        ),
        "tiled_peak_rss_under_1gb": all(
            max(o["peak_rss_mb"], g["peak_rss_mb"]) < 1024 for o, g, _ in rows
        ),
    }


def corner_box(width: int, height: int, tile: int, side: int) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of a ``side`` px square centred on the grid tile corner
    nearest the middle of a width x height image, moved inside it where it would stick out."""
    x = min(max(round(width / 2 / tile), 1) * tile, width)
    y = min(max(round(height / 2 / tile), 1) * tile, height)
    left = min(max(x - side // 2, 0), max(width - side, 0))
    top = min(max(y - side // 2, 0), max(height - side, 0))
    return left, top, left + min(side, width), top + min(side, height)


def save_figures(exp: Experiment, held_out: Path, photos: dict[str, Any]) -> list[Path]:
    """The figures of module docstring point 5 for every photo; returns the files written."""
    exp.docs.mkdir(parents=True, exist_ok=True)
    lead = exp.models[0].name
    written = []
    for stem, record in photos.items():
        source = Image.open(held_out / "testA" / f"{stem}.png").convert("RGB")
        truth = Image.open(held_out / "testB" / f"{stem}.png").convert("RGB")
        result = {
            (m.name, mode): Image.open(row["result"]).convert("RGB")
            for m in exp.models
            for mode, row in record[m.name].items()
            if "result" in row
        }
        after = result.get((lead, "overlap"))
        for image, kind in ((source, "before"), (after, "after"), (truth, "truth")):
            if image is not None:
                written.append(exp.docs / f"{stem}-{kind}.jpg")
                save_reduced(image, written[-1])
        box = corner_box(source.width, source.height, exp.tile, exp.corner_crop)
        figures = {
            "corner": [source, result.get((lead, "grid")), after, truth],
            "models": [*(result.get((m.name, "overlap")) for m in exp.models), truth],
        }
        for kind, panels in figures.items():
            written.append(exp.docs / f"{stem}-{kind}.png")
            strip([p.crop(box) for p in panels if p is not None]).save(written[-1])
    return written


def without_paths(value: Any) -> Any:
    """``value`` with every ``result`` key (the path of a translated file) left out, nested."""
    if isinstance(value, dict):
        return {k: without_paths(v) for k, v in value.items() if k != "result"}
    return value


def report(
    exp: Experiment, photos: dict[str, Any], training: dict[str, dict[str, Any] | None]
) -> dict[str, Any]:
    """example.json's content: settings, training records, per-photo rows (without the paths
    of the translated files), the summary and the acceptance checks."""
    cleaned = without_paths(photos)
    return {
        "issue": 19,
        "run_dir": str(exp.run_dir),
        "photos_folder": str(hd_photos_dir()),
        "held_out": list(exp.photos),
        "models": {
            m.name: {
                "family": m.family,
                "description": m.description,
                "training": training.get(m.name),
            }
            for m in exp.models
        },
        "train_budget_s": TRAIN_BUDGET_S,
        "crops": {"size": exp.crop_size, "per_photo": exp.crops_per_photo, "seed": SEED},
        "tiling": {"tile": exp.tile, "overlap": exp.overlap},
        "threads": int(os.environ.get("OMP_NUM_THREADS", 0)) or os.cpu_count(),
        "photos": cleaned,
        "summary": summarise(cleaned, exp.models),
        "acceptance": acceptance(cleaned),
        "date": time.strftime("%Y-%m-%d"),
    }


def run(exp: Experiment) -> dict[str, Any]:
    """The whole experiment (module docstring); writes ``exp.docs`` and returns the record."""
    held_out = prepare_data(exp)
    training = {}
    for model in exp.models:
        training[model.name] = train(exp, model) if exp.train else training_record(exp, model)
    photos = evaluate(exp, held_out)
    record = report(exp, photos, training)
    save_figures(exp, held_out, photos)
    (exp.docs / "example.json").write_text(json.dumps(record, indent=1) + "\n")
    return record


def photo_names(arguments: list[str] | None) -> tuple[str, ...]:
    """``--photos`` values (stems or file names, comma-separated or repeated) as held-out file
    names in the split's order; SystemExit naming the valid ones for any other name."""
    if not arguments:
        return SPLIT.test
    wanted = {Path(name).stem for value in arguments for name in value.split(",") if name}
    known = {Path(name).stem: name for name in SPLIT.test}
    if unknown := sorted(wanted - known.keys()):
        raise SystemExit(
            f"--photos: {', '.join(unknown)} is not a held-out photo (one of {', '.join(known)})"
        )
    return tuple(name for stem, name in known.items() if stem in wanted)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", default=str(REPO / "runs" / "hd-painting"))
    parser.add_argument(
        "--docs",
        default=str(REPO / "docs" / "hd-painting"),
        help="where the figures and example.json go",
    )
    parser.add_argument(
        "--skip-training", action="store_true", help="use the models already in --run-dir"
    )
    parser.add_argument("--steps", type=int, help="train.steps of every model (smoke runs)")
    parser.add_argument("--photos", action="append", help="held-out photos to translate")
    parser.add_argument("--whole-memory-mb", type=int, default=WHOLE_MEMORY_MB)
    parser.add_argument("--model", action="append", choices=[m.name for m in MODELS],
                        help="only these models (repeat; default: all)")  # fmt: skip
    parser.add_argument("--mode", action="append", choices=MODES, help="only these modes")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override of every model's training (repeat)")  # fmt: skip
    return parser.parse_args(argv)


def experiment(args: argparse.Namespace) -> Experiment:
    """The :class:`Experiment` that the command line asks for."""
    models = tuple(m for m in MODELS if not args.model or m.name in args.model)
    return Experiment(run_dir=Path(args.run_dir), docs=Path(args.docs),
                      photos=photo_names(args.photos), models=models, train=not args.skip_training,
                      steps=args.steps, sets=tuple(args.set), whole_memory_mb=args.whole_memory_mb,
                      modes=tuple(args.mode or MODES))  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    exp = experiment(parse_args(argv))
    try:
        record = run(exp)
    except GankitError as error:  # missing photos, a crops folder of other settings, ...
        print(f"hd_painting: {error}", file=sys.stderr)
        return 2
    print(json.dumps({"summary": record["summary"], "acceptance": record["acceptance"]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
