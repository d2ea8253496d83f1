"""Run every speed benchmark and regenerate ``benchmarks/RESULTS.md`` from their JSON.

    python benchmarks/run.py --quick     # < 10 min on 2 CPU cores
    python benchmarks/run.py             # full versions (~45 min; time_to_quality: 15)
    python benchmarks/run.py --only trainer_overhead,eval_speed
    python benchmarks/run.py --table-only   # rewrite RESULTS.md from benchmarks/results/*.jsonl

Each benchmark runs in a subprocess (``python -m benchmarks.<name>``) and prints JSON lines;
they are kept in ``benchmarks/results/<name>.jsonl`` (the newest run of each replaces the
older one) and ``RESULTS.md`` is written from those files, with the machine they ran on.
Timings on a shared machine are noisy: the ratios (trainer overhead, fast-path speedup) are
measured side by side in one process, which keeps them comparable.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
REPORT = REPO / "benchmarks" / "RESULTS.md"

# name -> (quick arguments, full arguments)
BENCHMARKS: dict[str, tuple[list[str], list[str]]] = {
    "trainer_overhead": (["--quick"], []),
    "throughput": (["--quick", "--families", "gan,dcgan,wgan-gp,sngan,cyclegan,siamese"], []),
    "eval_speed": (["--n", "200"], []),
    "translate_speed": (["--quick"], []),
    "time_to_quality": (["--budgets", "1", "--calibrate", "0.25"], ["--budgets", "5,10,15"]),
}


def run_benchmark(name: str, arguments: list[str], device: str) -> list[dict[str, Any]]:
    """Run one benchmark; its JSON lines (other output passes through to the terminal)."""
    command = [sys.executable, "-m", f"benchmarks.{name}", *arguments, "--device", device]
    print(f"$ {' '.join(command[1:])}", flush=True)
    start = time.perf_counter()
    child = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    sys.stderr.write(child.stderr[-2000:] if child.returncode else "")
    if child.returncode:
        raise SystemExit(f"{name} failed (exit {child.returncode})")
    records = []
    for line in child.stdout.splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))
        else:
            print(line)
    print(f"# {name}: {len(records)} records in {time.perf_counter() - start:.0f} s", flush=True)
    return records


def read_results() -> dict[str, list[dict[str, Any]]]:
    return {
        path.stem: [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        for path in sorted(RESULTS.glob("*.jsonl"))
    }


def _table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> list[str]:
    lines = ["| " + " | ".join(title for _, title in columns) + " |",
             "|" + "---|" * len(columns)]  # fmt: skip
    for row in rows:
        cells = []
        for key, _ in columns:
            value = row.get(key, "")
            cells.append(f"{value:,}" if isinstance(value, int) and value >= 10000 else str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def report(results: dict[str, list[dict[str, Any]]]) -> str:
    """RESULTS.md: one section per benchmark, each with where and when it ran."""
    out = [
        "# Benchmark results",
        "",
        "Written by `python benchmarks/run.py` from `benchmarks/results/*.jsonl`; do not edit.",
        "Each section says the machine, torch, threads and commit it was measured on.",
        "",
    ]
    sections = {
        "trainer_overhead": ("Trainer overhead (DCGAN step vs a bare loop; goal ratio >= 0.97)", [
            ("precision", "precision"), ("batch_size", "batch"),
            ("gankit_images_per_s", "gankit img/s"), ("bare_images_per_s", "bare img/s"),
            ("ratio", "ratio")]),
        "throughput": ("Training throughput per family (fp32 vs the default fast path)", [
            ("family", "family"), ("resolution", "px"), ("batch_size", "batch"),
            ("fp32_images_per_s", "fp32 img/s"), ("fast_images_per_s", "fast img/s"),
            ("fast_precision", "fast precision"), ("speedup", "speedup"),
            ("gflop_per_step", "GFLOP/step"), ("fp32_utilisation", "fp32 util."),
            ("fast_utilisation", "fast util.")]),
        "time_to_quality": ("Time to quality (DCGAN preset, full MNIST; goal at 15 min: "
                            "FID <= 18, KID x 1000 <= 8)", [
            ("budget_minutes", "minutes"), ("precision", "precision"), ("steps", "steps"),
            ("planned_steps", "planned steps"),
            ("fid", "FID (n=2,000)"), ("kid_x1000", "KID x 1000"), ("overrides", "overrides"),
            ("commit", "commit")]),
        "eval_speed": ("Evaluation speed", [
            ("n", "n"), ("inception_images_per_s", "Inception img/s"),
            ("resize_images_per_s", "resize img/s"),
            ("fid_kid_seconds_cold_cache", "FID+KID s (cold cache)"),
            ("fid_kid_seconds_warm_cache", "FID+KID s (warm cache)")]),
        "translate_speed": ("HD translation (tiling)", [
            ("size", "size"), ("mode", "mode"), ("tile", "tile"), ("overlap", "overlap"),
            ("megapixels_per_s", "MP/s"), ("peak_rss_mb", "peak MB"),
            ("seam_score", "seam score"), ("seam_score_control", "control"),
            ("network", "network")]),
    }  # fmt: skip
    for name, (title, columns) in sections.items():
        records = [r for r in results.get(name, []) if r.get("benchmark", name) == name]
        out += [f"## {title}", ""]
        if not records:
            out += ["Not run yet.", ""]
            continue
        where = next((r for r in records if "machine" in r), results.get(name, [{}])[0])
        peaks = [r for r in results.get(name, []) if r.get("benchmark") == "matmul_peak"]
        device = where.get("gpu", where.get("device", "cpu"))
        out += [
            f"`python -m benchmarks.{name}`; measured on {where.get('machine', '?')}, torch "
            f"{where.get('torch', '?')}, {where.get('threads', '?')} threads, device {device}, "
            f"commit {where.get('commit')}, {where.get('date')} "
            f"(load average {where.get('load_average', '?')}).",
            "",
        ]
        if peaks:
            p = peaks[0]
            out += [
                f"Measured matmul peak: fp32 {p['fp32_gflop_per_s']} GFLOP/s, bf16 "
                f"{p['bf16_gflop_per_s']} GFLOP/s (the utilisation denominators).",
                "",
            ]
        out += [*_table(records, columns), ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the short versions (< 10 min)")
    parser.add_argument("--only", help="comma-separated benchmark names")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--table-only", action="store_true")
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else list(BENCHMARKS)
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmarks {unknown}; valid: {', '.join(BENCHMARKS)}")
    if not args.table_only:
        RESULTS.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        for name in names:
            quick, full = BENCHMARKS[name]
            records = run_benchmark(name, quick if args.quick else full, args.device)
            lines = "".join(json.dumps(r) + "\n" for r in records)
            (RESULTS / f"{name}.jsonl").write_text(lines)
        print(f"# all benchmarks: {time.perf_counter() - start:.0f} s", flush=True)
    REPORT.write_text(report(read_results()))
    print(REPORT.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
