"""The ``gankit`` command line. Each command parses, validates and calls one function.

Errors a user can cause print one line (``gankit: error: ...``) and exit with status 2.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import click
from tqdm import tqdm

from gankit.cli_data import data_group
from gankit.config import list_presets
from gankit.errors import GankitError
from gankit.resolve import load_run_config, resolve_config

log = logging.getLogger("gankit")


class _TqdmHandler(logging.Handler):
    """Console log lines that do not break the progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        tqdm.write(f"gankit: {self.format(record)}", file=sys.stderr)


def _setup_logging(verbose: bool) -> None:
    if not any(isinstance(h, _TqdmHandler) for h in log.handlers):
        log.addHandler(_TqdmHandler())
    log.setLevel(logging.DEBUG if verbose else logging.INFO)
    log.propagate = False


class GankitGroup(click.Group):
    """Turns a :class:`GankitError` anywhere below into one line on stderr and exit status 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except GankitError as exc:
            click.echo(f"gankit: error: {exc}", err=True)
            ctx.exit(2)
        except KeyboardInterrupt:
            click.echo("gankit: interrupted", err=True)
            ctx.exit(130)


@click.group(cls=GankitGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
@click.version_option(package_name="gankit")
def cli(verbose: bool) -> None:
    """Train, evaluate and use generative adversarial networks."""
    _setup_logging(verbose)


# Options shared by several commands, declared once.
device_option = click.option(
    "--device", default="cpu", show_default=True, help="Where the generator runs (cpu, cuda)."
)
overrides_option = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config value, e.g. --set train.lr_g=1e-4 (repeatable).",
)
truncation_option = click.option(
    "--truncation",
    type=click.FloatRange(0, min_open=True),
    default=None,
    help="Truncation trick, any t > 0 (families that support it, e.g. biggan).",
)


@cli.command()
@click.argument("family", required=False)
@click.option(
    "--data",
    "data",
    metavar="SOURCE",
    help="Dataset: mnist, fashion-mnist, cifar10, mnist-bundled, folder (see `gankit list`).",
)
@click.option(
    "--data-root", metavar="DIR", help="Where the dataset's files are (or the folder/.zip)."
)
@overrides_option
@click.option(
    "--config", "config_file", type=click.Path(), help="A YAML config instead of the preset."
)
@click.option("--out", metavar="RUN_DIR", help="Run folder (default runs/<family>-<data>-<time>).")
@click.option(
    "--resume", "resume", metavar="RUN_DIR", help="Continue this run from its checkpoint."
)
@click.option("--dry-run", is_flag=True, help="Print the resolved config and exit.")
def train(
    family: str | None,
    data: str | None,
    data_root: str | None,
    overrides: tuple[str, ...],
    config_file: str | None,
    out: str | None,
    resume: str | None,
    dry_run: bool,
) -> None:
    """Train FAMILY (gan, dcgan, ...) on a dataset, or --resume a run."""
    from gankit.training import Trainer

    if resume:
        cfg = load_run_config(Path(resume), overrides)
        run_dir = Path(resume)
    elif family:
        cfg = resolve_config(family, data, data_root, overrides, config_file, out)
        run_dir = Path(cfg.output.dir) if cfg.output.dir else cfg.default_run_dir()
    else:
        raise GankitError("train needs a FAMILY (see `gankit list`) or --resume RUN_DIR")
    if dry_run:
        click.echo(cfg.to_yaml(), nl=False)
        return
    result = Trainer(cfg, run_dir, resume=bool(resume)).fit()
    _report(result)


def _report(result: Any) -> None:
    if not result.is_main:  # one summary per torchrun job, from rank 0
        return
    state = "stopped early (resume with --resume)" if result.interrupted else "finished"
    click.echo(f"gankit: {state} at step {result.step}; run folder: {result.run_dir}")
    if result.last_grid:
        click.echo(f"  sample grid:  {result.last_grid}")
    click.echo(f"  loss curves:  {result.run_dir / 'loss_curves.png'}")
    if result.export_dir:
        click.echo(f"  generator:    {result.export_dir}")
    if result.metrics:
        from gankit.metrics import format_result

        click.echo(f"  metrics:      {result.run_dir / 'metrics.jsonl'}")
        for metric in result.metrics:
            click.echo(f"    {format_result(metric)}")


@cli.command()
@click.argument("run", type=click.Path())
@click.option("--n", "count", default=64, show_default=True, type=click.IntRange(1, 4096))
@click.option("--out", default="samples.png", show_default=True, help="PNG grid to write.")
@click.option("--seed", type=int, default=None, help="Same seed, same images.")
@click.option("--columns", type=click.IntRange(1, 256), default=None, help="Grid columns.")
@click.option(
    "--class",
    "label",
    type=click.IntRange(0),
    default=None,
    help="Conditional families: every image of this class.",
)
@click.option(
    "--per-class",
    is_flag=True,
    help="Conditional families: one row per class (--columns images each).",
)
@truncation_option
@device_option
def sample(
    run: str, count: int, out: str, seed: int | None, columns: int | None, label: int | None,
    per_class: bool, truncation: float | None, device: str,
) -> None:  # fmt: skip
    """Write a grid of COUNT images from RUN (a run folder, export folder or checkpoint)."""
    import gankit
    from gankit.runfolder.images import save_grid

    generator = gankit.load(run, device=device)
    labels = _sample_labels(generator.objective.num_classes, count, label, per_class, columns)
    if per_class:
        columns = columns or 8
        count = len(labels)
    images = generator.sample(count, seed=seed, labels=labels, truncation=truncation)
    click.echo(f"gankit: wrote {save_grid(images, out, columns)}")


def _sample_labels(
    num_classes: int, count: int, label: int | None, per_class: bool, columns: int | None
) -> Any:
    """The labels argument of a sampling call: None, (count,) of one class, or rows per class."""
    import torch

    if label is None and not per_class:
        return None
    if num_classes == 0:
        raise GankitError("--class and --per-class need a conditional family (e.g. cgan)")
    if label is not None and label >= num_classes:
        raise GankitError(
            f"--class {label} is out of range: the run has classes 0..{num_classes - 1}"
        )
    if per_class:
        return torch.arange(num_classes).repeat_interleave(columns or 8)
    return torch.full((count,), label, dtype=torch.int64)


@cli.command()
@click.argument("run", type=click.Path())
@click.option(
    "--steps",
    type=click.IntRange(2, 256),
    default=8,
    show_default=True,
    help="Images along each path.",
)
@click.option(
    "--paths",
    type=click.IntRange(1, 64),
    default=4,
    show_default=True,
    help="Rows: paths between seeds seed, seed+1, ..., seed+paths.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--class",
    "label",
    type=click.IntRange(0),
    default=None,
    help="Conditional families: the class held fixed along the paths.",
)
@truncation_option
@click.option("--out", default="interpolation.png", show_default=True, help="PNG strip grid.")
@click.option("--gif", default=None, help="Also write an animated GIF walking the paths.")
@device_option
def interpolate(
    run: str, steps: int, paths: int, seed: int, label: int | None, truncation: float | None,
    out: str, gif: str | None, device: str,
) -> None:  # fmt: skip
    """Latent interpolation strips (one row per path) from RUN, optionally as a GIF."""
    import torch

    import gankit
    from gankit.runfolder.images import save_gif, save_grid

    generator = gankit.load(run, device=device)
    labels = _sample_labels(generator.objective.num_classes, 1, label, False, None)
    rows = [
        generator.interpolate(seed + row, seed + row + 1, steps, labels=labels,
                              truncation=truncation)
        for row in range(paths)
    ]  # fmt: skip
    click.echo(f"gankit: wrote {save_grid(torch.cat(rows), out, columns=steps)}")
    if gif:
        frames = torch.stack(rows, dim=1)  # (steps, paths, C, H, W): one frame per step
        click.echo(f"gankit: wrote {save_gif(frames, gif)}")


@cli.command("eval")
@click.argument("source", required=False, metavar="[RUN]")
@click.option("--images", metavar="PATH", help="Evaluate these images (.npy, .npz, folder, .zip).")
@click.option(
    "--ref",
    metavar="DATASET:SPLIT|PATH",
    help="Reference: e.g. mnist:test, or a folder/.zip. Default for a RUN: its data.",
)
@click.option("--data-root", metavar="DIR", help="Where the reference dataset's files are.")
@click.option(
    "--metrics",
    "metric_names",
    default="fid",
    show_default=True,
    help="Comma-separated: " + "fid, kid, pr, is, digit-fd.",
)
@click.option(
    "--n",
    "count",
    type=click.IntRange(2),
    default=10000,
    show_default=True,
    help="Images to generate (or the first n of --images).",
)
@click.option("--ref-n", type=click.IntRange(2), default=None, help="Reference size [default: n].")
@click.option("--ref-seed", type=int, default=None, help="Draw the reference at random (seeded).")
@click.option("--seed", type=int, default=0, show_default=True, help="Generation seed.")
@device_option
@click.option("--batch-size", type=click.IntRange(1), default=50, show_default=True)
@click.option(
    "--resize",
    type=click.Choice(["pil-bicubic-float", "torch-bilinear"]),
    default="pil-bicubic-float",
    show_default=True,
    help="How images reach Inception's 299 x 299 (recorded with every number).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per number on stdout.")
def eval_command(
    source: str | None, images: str | None, ref: str | None, data_root: str | None,
    metric_names: str, count: int, ref_n: int | None, ref_seed: int | None, seed: int,
    device: str, batch_size: int, resize: str, as_json: bool,
) -> None:  # fmt: skip
    """Evaluate a run / export / checkpoint (RUN) or --images against a reference."""
    from gankit.commands import run_eval

    records = run_eval(
        source, images, ref, data_root, [m.strip() for m in metric_names.split(",") if m.strip()],
        count, ref_n, ref_seed, seed, device, batch_size, resize, progress=not as_json,
    )  # fmt: skip
    for record, line in records:
        click.echo(json.dumps(record) if as_json else line)


@cli.command()
@click.argument("run", type=click.Path())
@click.argument("source", type=click.Path())
@click.option("--out", "out_dir", default="translated", show_default=True, help="Output folder.")
@click.option(
    "--mode",
    type=click.Choice(["overlap", "grid", "whole"]),
    default="overlap",
    show_default=True,
    help="Blended overlapping tiles, tiles side by side, or one pass.",
)
@click.option(
    "--tile",
    type=click.IntRange(1),
    default=None,
    help="Tile side in input pixels [default: the training size].",
)
@click.option(
    "--overlap",
    type=click.IntRange(1),
    default=None,
    help="Pixels neighbouring tiles share in overlap mode [default: tile // 4].",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1),
    default=8,
    show_default=True,
    help="Tiles per generator call.",
)
@click.option(
    "--stats",
    type=click.Choice(["auto", "image", "running"]),
    default="auto",
    show_default=True,
    help="Norm layer statistics: the whole image's (tiles share them), the running averages "
    "of training, or auto (image for CycleGAN/pix2pix, running for the others).",
)
@click.option(
    "--max-pixels",
    type=click.IntRange(1),
    default=1 << 28,
    show_default=True,
    help="Refuse larger inputs (decompression bombs).",
)
@device_option
def translate(
    run: str, source: str, out_dir: str, mode: str, tile: int | None, overlap: int | None,
    batch_size: int, stats: str, max_pixels: int, device: str,
) -> None:  # fmt: skip
    """Translate SOURCE (an image, or a folder of images) of any size with the translator of
    RUN, tile by tile; writes OUT/<name>.png."""
    from gankit.commands import run_translate

    done, skipped = run_translate(run, source, out_dir, mode, tile, overlap, batch_size, device,
                                  max_pixels, progress=sys.stderr.isatty(),
                                  stats=stats)  # fmt: skip
    for item in done:
        width, height = item.size
        rate = width * height / 1e6 / max(item.seconds, 1e-9)
        source, output = _printable(item.source), _printable(item.output)
        click.echo(f"gankit: {source} ({width} x {height}) -> {output} in {item.seconds:.1f} s "
                   f"({rate:.2f} MP/s)")  # fmt: skip
    for path, reason in skipped:
        log.warning("skipped %s: %s", _printable(path), _printable(reason))


def _printable(path: Any) -> str:
    """A path (or text holding one) safe to print: undecodable bytes of non-UTF-8 file names
    as backslash escapes."""
    return os.fsencode(str(path)).decode("utf-8", "backslashreplace")


@cli.command("export")
@click.argument("run", type=click.Path())
@click.option("--out", default=None, help="Export folder (default RUN/export).")
def export_command(run: str, out: str | None) -> None:
    """Write RUN's generator as config.json + safetensors."""
    from gankit.api import export

    click.echo(f"gankit: exported to {export(run, out)}")


@cli.command("list")
def list_command() -> None:
    """Show the families, datasets and presets."""
    from gankit.data import DATASETS
    from gankit.objectives import OBJECTIVES

    presets = list_presets()
    click.echo("families:")
    for name in OBJECTIVES.names():
        shown = ", ".join(presets.get(name, [])) or "-"
        click.echo(f"  {name:<10} {OBJECTIVES.get(name).description}  [presets: {shown}]")
    click.echo("datasets:")
    for name in DATASETS.names():
        doc = (DATASETS.get(name).__doc__ or "").strip().splitlines()
        click.echo(f"  {name:<14} {doc[0] if doc else ''}")


@cli.command()
@click.argument("runs_dir", default="runs", required=False, type=click.Path())
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; the default lets only this machine in.",
)
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--device", default="cpu", show_default=True, help="Where generators run.")
@click.option(
    "--max-upload-mb",
    type=click.FloatRange(0, min_open=True),
    default=32,
    show_default=True,
    help="Refuse larger uploads.",
)
@click.option(
    "--max-pixels",
    type=click.IntRange(1),
    default=24_000_000,
    show_default=True,
    help="Refuse uploads with more pixels (decompression bombs).",
)
@click.option(
    "--stale-after",
    type=click.FloatRange(1),
    default=180,
    show_default=True,
    help="Seconds of silence after which an unfinished run is no longer running.",
)
def serve(
    runs_dir: str, host: str, port: int, device: str, max_upload_mb: float, max_pixels: int,
    stale_after: float,
) -> None:  # fmt: skip
    """A web page for the runs in RUNS_DIR: watch training, sample, interpolate, translate."""
    from gankit.serve import is_loopback
    from gankit.serve import serve as run_server

    if not Path(runs_dir).is_dir():
        raise GankitError(f"{runs_dir}: no such folder (the folder of your runs)")
    if not is_loopback(host):
        log.warning("listening on %s: anyone who can reach this machine can use the page", host)
    click.echo(f"gankit: serving {Path(runs_dir).resolve()} at http://{host}:{port}/ "
               "(Ctrl-C stops)")  # fmt: skip
    run_server(runs_dir, host, port, device, max_upload_mb, max_pixels, stale_after)


@cli.command()
@click.option("--out", default="runs/demo", show_default=True, help="Run folder.")
@overrides_option
def demo(out: str, overrides: tuple[str, ...]) -> None:
    """Train DCGAN on the bundled MNIST digits (a few minutes on a laptop CPU)."""
    from gankit.training import Trainer

    cfg = resolve_config("dcgan", "mnist-bundled", None, overrides, out=out)
    run_dir = Path(out)
    if (run_dir / "config.yaml").is_file():  # an earlier demo run: start it afresh
        shutil.rmtree(run_dir)
    result = Trainer(cfg, run_dir, resume=False).fit()
    _report(result)


cli.add_command(data_group)


def main() -> None:
    cli(prog_name="gankit")
