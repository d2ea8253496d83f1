"""The work behind CLI commands that is more than one call (kept out of cli.py's parsing)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch

import gankit
from gankit.errors import GankitError
from gankit.metrics import METRICS, Reference, evaluate, format_result
from gankit.metrics.images import load_image_file
from gankit.runfolder.checkpoint import load_checkpoint
from gankit.runfolder.history import append_record
from gankit.runfolder.images import to_uint8
from gankit.runfolder.layout import RunDir


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


# --------------------------------------------------------------------------------------------
# gankit translate

TRANSLATE_MAX_PIXELS = 1 << 28  # 268 megapixels (16384 x 16384): larger inputs are refused


@dataclasses.dataclass
class Translated:
    source: Path
    output: Path
    size: tuple[int, int]  # input (width, height)
    seconds: float


def read_translation_input(path: Path, labels: bool, max_pixels: int) -> Any:
    """Open one input image for a translator as a PIL image (EXIF orientation applied); label
    maps (``labels``) stay 1-channel class indices. Raises GankitError with the reason."""
    import warnings

    from PIL import Image, ImageOps

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as opened:
                width, height = opened.size
                if width * height > max_pixels:
                    raise GankitError(f"{path}: {width} x {height} pixels is more than the "
                                      f"limit of {max_pixels:,} (--max-pixels)")  # fmt: skip
                opened.load()
                image = opened if labels else ImageOps.exif_transpose(opened)
                if labels:
                    if image.mode not in ("P", "L"):
                        raise GankitError(f"{path}: a {image.mode} image; this translator takes "
                                          "label maps (indexed or 8-bit gray PNG)")  # fmt: skip
                    return Image.fromarray(np.asarray(image))
                return image.convert("RGB") if image.mode not in ("L", "RGB") else image.copy()
    except GankitError:
        raise
    except (OSError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning,
            SyntaxError) as exc:  # fmt: skip
        reason = " ".join(str(exc).split())[:100] or type(exc).__name__
        raise GankitError(f"{path}: not a readable image ({reason})") from None


def run_translate(
    run: str,
    source: str,
    out_dir: str,
    mode: str = "overlap",
    tile: int | None = None,
    overlap: int | None = None,
    batch_size: int = 8,
    device: str = "cpu",
    max_pixels: int = TRANSLATE_MAX_PIXELS,
    progress: bool = True,
    stats: str = "auto",  # auto | image | running (gankit.translate.statistics)
) -> tuple[list[Translated], list[tuple[Path, str]]]:
    """Translate an image or every image in a folder with the translator of ``run``; outputs are
    ``out_dir/<name>.png``. Returns (done, skipped as (path, reason)); a single image that fails
    raises GankitError, as does a folder where nothing could be translated."""
    import time

    from PIL import Image

    from gankit.data.folder import IMAGE_EXTENSIONS, is_hidden

    loaded = gankit.load(run, device=device)
    if not loaded.is_translator:
        raise GankitError(f"{run} holds a {loaded.family} generator, not a translator")
    path = Path(source)
    if path.is_dir():
        inputs = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS
                        and p.is_file() and not any(is_hidden(part) for part in
                                                    p.relative_to(path).parts))  # fmt: skip
        if not inputs:
            raise GankitError(f"{path}: no image files in this folder")
    elif path.is_file():
        inputs = [path]
    else:
        raise GankitError(f"{path} does not exist")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    labels = loaded.config.data.a_kind == "labels"
    done, skipped = [], []
    for image_path in inputs:
        try:
            image = read_translation_input(image_path, labels, max_pixels)
            start = time.perf_counter()
            result = loaded.translate_image(image, mode=mode, tile=tile, overlap=overlap,
                                            batch_size=batch_size, progress=progress,
                                            stats=stats)  # fmt: skip
            seconds = time.perf_counter() - start
        except GankitError as exc:
            if len(inputs) == 1:
                raise
            skipped.append((image_path, str(exc)))
            continue
        target = out / f"{image_path.stem}.png"
        pixels = result[..., 0] if result.shape[2] == 1 else result
        Image.fromarray(pixels).save(target)
        done.append(Translated(image_path, target, image.size, seconds))
    if not done:
        raise GankitError(f"no image in {path} could be translated: {skipped[0][1]}")
    return done, skipped
