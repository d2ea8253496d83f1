"""The GAN zoo on MNIST: every family trained from its MNIST preset for a fixed CPU budget.

    python benchmarks/zoo.py                        # all families, ~45 min on 2 CPU cores
    python benchmarks/zoo.py --families dcgan,cgan  # some of them (the others keep their rows)
    python benchmarks/zoo.py --table-only           # rewrite the README table from the JSON
    python benchmarks/zoo.py --families lsgan --seed 1 --set model.g_activation=leaky_relu

Each family trains on full MNIST (``--data-root``, default ``../shared/data/mnist``) with the
overrides and step count of :data:`BUDGETS`, chosen so that one family takes at most about ten
minutes on 2 CPU cores. It is then judged by ``digit-fd`` (n = 2,000 generated images vs 2,000
training digits drawn with a fixed seed; real test digits score about 40 at 32 px and 16 at 28 px,
an untrained generator thousands) and, for conditional families, by how often the bundled digit
classifier agrees with the class asked for (50 samples per class). The table shows CPU time (all
threads: about twice the wall time on 2 idle cores), which other jobs on the machine disturb far
less than wall time; the records keep both, with the load average. Records go to
``benchmarks/results/zoo.json`` (one per family, the newest kept), a 10 x 10 sample grid per family
to ``docs/zoo/<family>.png``, and the table between the ``zoo`` markers of ``README.md`` is
regenerated from the records. The slow learning tests (``tests/test_learning.py``) train the same
budgets and assert thresholds on the same numbers.

Each row is one run at ``train.seed`` 0; runs are deterministic on one machine and precision, but
at these budgets another seed moves a family's digit-fd by up to about 20%. ``--seed`` and
``--set`` (dotted overrides on top of the budget, e.g. an option the preset does not use) train
variants for such comparisons: their records are appended to
``benchmarks/results/zoo-variants.jsonl`` and leave ``zoo.json``, the grids and the README table
alone.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from gankit.config import RunConfig, preset_path
from gankit.objectives import OBJECTIVES
from gankit.resolve import build_config
from gankit.runfolder.images import save_grid, to_uint8
from gankit.training import Trainer

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "zoo.json"
VARIANTS = REPO / "benchmarks" / "results" / "zoo-variants.jsonl"
GRIDS = REPO / "docs" / "zoo"
README = REPO / "README.md"
TABLE_BEGIN, TABLE_END = "<!-- zoo:begin -->", "<!-- zoo:end -->"
SEEDS_BEGIN, SEEDS_END = "<!-- zoo-seeds:begin -->", "<!-- zoo-seeds:end -->"


@dataclass(frozen=True)
class Budget:
    """What a family trains in the benchmark: its MNIST preset with these overrides."""

    steps: int
    model: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)


# Narrower networks than the presets where the preset would not fit ~10 CPU-minutes; ema off
# where a few thousand steps are too few for the EMA to catch up (BigGAN, ProGAN); a constant
# learning rate for SNGAN, whose preset decays it to 0 over the run as the reference does over
# 50k+ iterations: over a 1,000-step budget that halves the mean rate (digit-fd 517 with the
# decay, 243 without, both measured in issue 18). LSGAN's and WGAN's narrow generators use
# LeakyReLU (model.g_activation; the presets keep the papers' ReLU): at these widths and step
# counts ReLU learned more slowly (on average over three seeds: the README's seeds table).
BUDGETS: dict[str, Budget] = {
    "gan": Budget(4000, {"latent_dim": 64}),
    "dcgan": Budget(3000),
    "cgan": Budget(3000),
    "lsgan": Budget(1500, {"g_width": 32, "d_width": 32, "g_activation": "leaky_relu"}),
    "wgan": Budget(1500, {"g_width": 32, "critic_width": 32, "g_activation": "leaky_relu"}),
    "wgan-gp": Budget(1000, {"g_width": 32, "critic_width": 32}),
    "sngan": Budget(1000, {"g_width": 16, "d_width": 16}, {"lr_decay_start": 1.0}),
    "sagan": Budget(4000, {"g_width": 16, "d_width": 16}),
    "biggan": Budget(3500, {"g_width": 16, "d_width": 16}, {"ema": False}),
    "progan": Budget(
        2500,
        {
            "latent_dim": 128,
            "g_width": 16,
            "d_width": 16,
            "max_channels": 128,
            "steps_per_phase": 300,
        },
        {"ema": False},
    ),
    "cogan": Budget(1500),
}
EVAL_N = 2000
SAMPLES_PER_CLASS = 50


def zoo_config(
    family: str, data_root: str | Path, seed: int = 0, overrides: list[str] | None = None
) -> RunConfig:
    """The family's MNIST preset with its :data:`BUDGETS` overrides (and dotted ``overrides``
    on top), trained from ``seed``, evaluated by digit-fd."""
    budget = BUDGETS[family]
    preset = yaml.safe_load(preset_path(family, "mnist").read_text())
    return build_config(
        preset,
        overrides or [],
        family=family,
        data={"source": "mnist", "root": str(data_root)},
        model=budget.model,
        train={**budget.train, "steps": budget.steps, "seed": seed, "progress": False,
               "sample_every": 0, "checkpoint_every": 0},
        eval={"metrics": ["digit-fd"], "n": EVAL_N},
        output={"tensorboard": False},
    )  # fmt: skip


def is_conditional(trainer: Trainer) -> bool:
    """Whether the trained generator takes class labels (CGAN, or ``model.conditional``)."""
    return trainer.cfg.family == "cgan" or bool(getattr(trainer.cfg.model, "conditional", False))


def class_agreement(trainer: Trainer, per_class: int = SAMPLES_PER_CLASS) -> float:
    """The fraction of ``per_class`` samples of each of the 10 digits (from the sampling
    network, EMA when on) that the bundled digit classifier assigns to the class asked for."""
    from gankit.metrics.digits import DigitFeatures

    labels = torch.arange(10).repeat_interleave(per_class)
    images = trainer.objective.sample(len(labels), trainer.sampling_network(), seed=0,
                                      labels=labels)  # fmt: skip
    predicted = DigitFeatures().classify(to_uint8(images))
    return (predicted == labels).float().mean().item()


def train_family(
    family: str,
    data_root: str | Path,
    run_dir: Path,
    seed: int = 0,
    overrides: list[str] | None = None,
) -> tuple[Trainer, dict]:
    """Train one family for its budget (from ``seed``, with dotted ``overrides`` on top);
    returns the trainer and its JSON record."""
    cfg = zoo_config(family, data_root, seed, overrides)
    if run_dir.exists():
        shutil.rmtree(run_dir)  # a scratch folder: each benchmark run starts afresh
    trainer = Trainer(cfg, run_dir)
    start, cpu_start = time.perf_counter(), time.process_time()
    result = trainer.fit()
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    [digit_fd] = result.metrics
    budget = BUDGETS[family]
    record: dict[str, Any] = {
        "family": family,
        "preset": f"configs/{family}/mnist.yaml",
        "steps": budget.steps,
        "batch_size": cfg.train.batch_size,
        "overrides": {"model": budget.model, "train": budget.train},
        **({"seed": seed} if seed else {}),
        **({"variant": list(overrides)} if overrides else {}),
        "metric": "digit-fd",
        "value": round(digit_fd.value, 2),
        "n": EVAL_N,
        "seconds": round(seconds, 1),  # wall time of training and the final evaluation
        "cpu_seconds": round(cpu_seconds, 1),  # CPU time of the same, all threads
        "precision": trainer.precision,  # train.precision resolved on this machine
        "load_average": round(os.getloadavg()[0], 2),  # other work on the machine at the end
        "class_agreement": round(class_agreement(trainer), 4) if is_conditional(trainer) else None,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads",
        "commit": git_commit(),
        "date": time.strftime("%Y-%m-%d"),
    }
    return trainer, record


def save_family_grid(trainer: Trainer, path: Path) -> None:
    """A 10 x 10 grid from the sampling network: a row per class when conditional."""
    conditions = {}
    if is_conditional(trainer):
        conditions["labels"] = torch.arange(10).repeat_interleave(10)
    images = trainer.objective.sample(100, trainer.sampling_network(), seed=0, **conditions)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_grid(images, path, columns=10)


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, text=True,
                             capture_output=True, check=True)  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip()


def read_records(path: Path = RESULTS) -> dict[str, dict]:
    return json.loads(path.read_text()) if path.exists() else {}


def readme_table(records: dict[str, dict]) -> str:
    """The README's family table, in :data:`BUDGETS` order, from the objectives' descriptions
    and the records."""
    lines = [
        "| family | paper | what is distinctive | benchmark budget | digit-fd (n=2,000) "
        "| class agreement | CPU time |",
        "|---|---|---|---|---|---|---|",
    ]
    for family in BUDGETS:
        paper, _, distinctive = OBJECTIVES.get(family).description.partition(": ")
        record = records.get(family)
        if record is None:
            budget = value = agreement = seconds = "not run"
        else:
            changes = {**record["overrides"]["model"], **record["overrides"]["train"]}
            changed = ", ".join(f"{k}={v}" for k, v in changes.items())
            budget = f"[preset](configs/{family}/mnist.yaml), {record['steps']:,} steps x " \
                     f"{record['batch_size']}" + (f"; {changed}" if changed else "")  # fmt: skip
            value = f"{record['value']:.0f}"
            agreement = (
                "-" if record["class_agreement"] is None else f"{record['class_agreement']:.0%}"
            )
            seconds = f"{record.get('cpu_seconds', record['seconds']) / 60:.1f} min"
            # records from before train.precision existed were fp32
            seconds += f" ({record.get('precision', 'fp32')})"
        grid = GRIDS / f"{family}.png"
        if grid.exists():
            value = f"[{value}](docs/zoo/{family}.png)"
        lines.append(f"| `{family}` | {paper} | {distinctive} | {budget} | {value} | {agreement} "
                     f"| {seconds} |")  # fmt: skip
    return "\n".join(lines)


def read_variants(path: Path = VARIANTS) -> list[dict]:
    """The variant records (``--seed``/``--set`` runs), oldest first."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def settings(record: dict) -> str:
    """What a record trained beyond the preset: its budget's overrides and its variant."""
    changes = {**record["overrides"]["model"], **record["overrides"]["train"]}
    parts = [*(f"{k}={v}" for k, v in changes.items()), *record.get("variant", [])]
    return ", ".join(parts) or "the preset"


def seeds_table(records: dict[str, dict], variants: list[dict]) -> str:
    """Digit-fd per seed of every family with variant records: a row per (family, settings),
    the table's own seed-0 records included, the newest record of each seed kept, the mean over
    the seeds run, and the commits the row's runs recorded (a variant naming other code, like
    ``code at db528b5``, differs in its settings)."""
    rows: dict[tuple[str, str], dict[int, tuple[float, str]]] = {}
    families = {v["family"] for v in variants}
    for record in [*(r for f, r in records.items() if f in families), *variants]:
        key = (record["family"], settings(record))
        commit = record.get("commit") or "?"
        rows.setdefault(key, {})[record.get("seed", 0)] = (record["value"], commit)
    seeds = sorted({seed for values in rows.values() for seed in values})
    lines = [
        "| family | settings | " + " | ".join(f"seed {s}" for s in seeds) + " | mean | commits |",
        "|---|---|" + "---|" * (len(seeds) + 2),
    ]
    order = list(BUDGETS)

    def family_order(row: tuple[tuple[str, str], dict]) -> int:
        return order.index(row[0][0])

    def number(value: float) -> str:  # a decimal where a unit is a large step (DCGAN's ~20)
        return f"{value:.1f}" if value < 100 else f"{value:.0f}"

    for (family, label), values in sorted(rows.items(), key=family_order):
        cells = [number(values[s][0]) if s in values else "-" for s in seeds]
        mean = sum(value for value, _ in values.values()) / len(values)
        commits = ", ".join(sorted({commit for _, commit in values.values()}))
        lines.append(f"| `{family}` | {label} | {' | '.join(cells)} | {number(mean)} | {commits} |")
    return "\n".join(lines)


def update_readme(
    table: str, path: Path = README, markers: tuple[str, str] = (TABLE_BEGIN, TABLE_END)
) -> None:
    """Replace what lies between ``markers`` in ``path`` with ``table``."""
    begin_marker, end_marker = markers
    text = path.read_text()
    head, begin, rest = text.partition(begin_marker)
    _, end, tail = rest.partition(end_marker)
    if not begin or not end:
        raise SystemExit(f"{path} has no {begin_marker} ... {end_marker} markers")
    path.write_text(f"{head}{begin_marker}\n{table}\n{end_marker}{tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=str(REPO.parent / "shared" / "data" / "mnist"))
    parser.add_argument("--families", default=",".join(BUDGETS), help="comma-separated")
    parser.add_argument("--runs", default=str(REPO / "runs" / "zoo"), help="run folders")
    parser.add_argument("--table-only", action="store_true", help="only rewrite the README table")
    parser.add_argument("--seed", type=int, default=0, help="train.seed (not 0: a variant)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="dotted override on top of the budget (a variant)")  # fmt: skip
    args = parser.parse_args(argv)
    variant = bool(args.seed or args.set)
    records = read_records()
    if not args.table_only:
        families = [f.strip() for f in args.families.split(",") if f.strip()]
        unknown = sorted(set(families) - set(BUDGETS))
        if unknown:
            parser.error(f"unknown families {unknown}; valid: {', '.join(BUDGETS)}")
        for family in families:
            trainer, record = train_family(family, args.data_root, Path(args.runs) / family,
                                           args.seed, args.set)  # fmt: skip
            print(json.dumps(record), flush=True)
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            if variant:  # a comparison: appended, the table's rows stay as they are
                with VARIANTS.open("a") as out:
                    out.write(json.dumps(record) + "\n")
                continue
            save_family_grid(trainer, GRIDS / f"{family}.png")
            records[family] = record
            RESULTS.write_text(json.dumps(records, indent=1) + "\n")
    table = readme_table(records)
    update_readme(table)
    print(table)
    if variants := read_variants():
        update_readme(seeds_table(records, variants), markers=(SEEDS_BEGIN, SEEDS_END))
    return 0


if __name__ == "__main__":
    sys.exit(main())
