"""What the benchmark scripts share: machine description, timing side by side, JSON lines."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from benchmarks.zoo import REPO, git_commit  # zoo.py must also run as a plain script

RESULTS_DIR = REPO / "benchmarks" / "results"
MNIST = REPO.parent / "shared" / "data" / "mnist"


def machine(device: str = "cpu") -> dict[str, Any]:
    """Where a number was measured: CPU/GPU, threads, torch version, commit, date."""
    info: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "device": device,
        "commit": git_commit(),
        "date": time.strftime("%Y-%m-%d"),
        "load_average": round(os.getloadavg()[0], 2),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def emit(record: dict[str, Any]) -> dict[str, Any]:
    """Print ``record`` as one JSON line (flushed) and return it."""
    print(json.dumps(record), flush=True)
    return record


def synchronize(device: str | torch.device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def side_by_side(
    contenders: dict[str, Callable[[], None]],
    steps: int,
    repeats: int,
    warmup: int = 3,
    device: str | torch.device = "cpu",
) -> dict[str, list[float]]:
    """Seconds per call of each contender in each of ``repeats`` rounds, measured in
    alternation: every round times ``steps`` calls of every contender in turn (the order flips
    every round), so that drifts of the machine's speed hit all of them alike; compare
    contenders round by round (:func:`paired_ratio`) or by their medians. Each is warmed up
    first."""
    for run in contenders.values():
        for _ in range(warmup):
            run()
    synchronize(device)
    times: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for round_ in range(repeats):
        for name in names if round_ % 2 == 0 else reversed(names):
            run = contenders[name]
            start = time.perf_counter()
            for _ in range(steps):
                run()
            synchronize(device)
            times[name].append((time.perf_counter() - start) / steps)
    return times


def paired_ratio(numerator: list[float], denominator: list[float]) -> float:
    """Median over rounds of numerator / denominator, two contenders' times from the same
    rounds of :func:`side_by_side`: a slow spell of the machine divides out within its round."""
    return statistics.median(n / d for n, d in zip(numerator, denominator, strict=True))


def matmul_peak(
    dtype: torch.dtype, device: str = "cpu", size: int = 2048, repeats: int = 5
) -> float:
    """Measured matmul throughput in FLOP/s: the best of ``repeats`` (size x size) @ (size x size)
    products in ``dtype``; the denominator of the FLOP utilisation."""
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    best = float("inf")
    for _ in range(repeats + 1):
        synchronize(device)
        start = time.perf_counter()
        a @ b
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best
