"""The README's HD translation example, from the offline demo data (scikit-image photos/textures).

    python scripts/hd_example.py                     # train (~10 min on 2 cores), then translate
    python scripts/hd_example.py --run runs/hd-example --skip-training

1. Trains the Siamese GAN preset ``configs/siamese/photos-textures.yaml`` (photos -> brick, grass
   and gravel textures) into ``--run`` with ``gankit train``, unless ``--skip-training``.
2. Makes a 4096 x 3072 input: a 3 x 2 collage of the six demo photos, each scaled to fill its
   1365 x 1536 cell (about 2-4x their size: scikit-image ships no larger photo).
3. Runs ``gankit translate`` on it in a fresh process per mode, overlap (``--tile 256
   --overlap 64``) and grid (the seed method: ``--tile 256``, no overlap), and records each
   one's wall time, megapixels/s and peak resident memory (``os.wait4``'s ``ru_maxrss`` of that
   process: runtime, network, input and output images and the tiles in flight).
4. Scores seams on each output (:func:`gankit.translate.seam_score`, plain, on the mode's own
   tile edges) and writes ``docs/hd/``: ``before.jpg`` and ``after.jpg`` (the whole images,
   1024 px wide), ``crops.png`` (one 384 px crop at 1:1 around a tile corner: input | grid |
   overlap) and ``example.json`` (the numbers).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from hd_measure import GANKIT, save_reduced, strip, translate_measured
from PIL import Image

from gankit.data.domains import PHOTOS, skimage_data_dir

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs" / "hd"
SIZE = (4096, 3072)  # width, height
TILE, OVERLAP = 256, 64
CROP = 384


def collage(width: int, height: int) -> Image.Image:
    """The six demo photos in a 3 x 2 grid, each scaled (bicubic) to cover its cell and
    centre-cropped to it."""
    canvas = Image.new("RGB", (width, height))
    columns, rows = 3, 2
    folder = skimage_data_dir()
    for i, name in enumerate(PHOTOS):
        left, right = width * (i % columns) // columns, width * (i % columns + 1) // columns
        top, bottom = height * (i // columns) // rows, height * (i // columns + 1) // rows
        cell_w, cell_h = right - left, bottom - top
        with Image.open(folder / name) as photo:
            photo = photo.convert("RGB")
            scale = max(cell_w / photo.width, cell_h / photo.height)
            size = (round(photo.width * scale), round(photo.height * scale))
            photo = photo.resize(size, Image.Resampling.BICUBIC)
            x, y = (photo.width - cell_w) // 2, (photo.height - cell_h) // 2
            canvas.paste(photo.crop((x, y, x + cell_w, y + cell_h)), (left, top))
    return canvas


def translate(run: Path, source: Path, out: Path, mode: str) -> dict[str, Any]:
    """``gankit translate`` of ``source`` in ``mode`` (overlap: ``--overlap 64``), measured
    (:func:`hd_measure.translate_measured`)."""
    return translate_measured(run, source, out, mode, TILE, OVERLAP)


def save_figures(source: Path, results: dict[str, dict[str, Any]]) -> None:
    DOCS.mkdir(parents=True, exist_ok=True)
    with Image.open(source) as before, Image.open(results["overlap"]["result"]) as after:
        save_reduced(before, DOCS / "before.jpg")
        save_reduced(after, DOCS / "after.jpg")
        # around the tile corner nearest the centre of the first photo's cell
        x = y = (1365 // 2 // TILE) * TILE - CROP // 2
        panels = [before.convert("RGB").crop((x, y, x + CROP, y + CROP))]
    for mode in ("grid", "overlap"):
        with Image.open(results[mode]["result"]) as img:
            panels.append(img.convert("RGB").crop((x, y, x + CROP, y + CROP)))
    strip(panels).save(DOCS / "crops.png")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default=str(REPO / "runs" / "hd-example"))
    parser.add_argument("--skip-training", action="store_true")
    args = parser.parse_args()
    run = Path(args.run)
    train_seconds = None
    if not args.skip_training:
        started = time.perf_counter()
        subprocess.run([GANKIT, "train", "siamese", "--data", "photos-textures", "--out",
                        str(run)], check=True)  # fmt: skip
        train_seconds = round(time.perf_counter() - started, 1)
    source = run / "hd-input" / "collage-4096x3072.png"
    source.parent.mkdir(parents=True, exist_ok=True)
    collage(*SIZE).save(source)
    results = {
        mode: translate(run, source, run / f"hd-{mode}", mode) for mode in ("overlap", "grid")
    }
    save_figures(source, results)
    record = {
        "run": str(run),
        "preset": "configs/siamese/photos-textures.yaml",
        "train_seconds": train_seconds,
        "input": f"{SIZE[0]}x{SIZE[1]} collage of the scikit-image demo photos",
        "threads": int(os.environ.get("OMP_NUM_THREADS", 0)) or os.cpu_count(),
        "results": {mode: {k: v for k, v in r.items() if k != "result"}
                    for mode, r in results.items()},
        "date": time.strftime("%Y-%m-%d"),
    }  # fmt: skip
    (DOCS / "example.json").write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
