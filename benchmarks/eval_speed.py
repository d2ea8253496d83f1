"""How fast gankit evaluates: Inception features per second, and one whole FID.

    python -m benchmarks.eval_speed            # n = 2,000 (~3 min on 2 CPU cores)
    python -m benchmarks.eval_speed --n 500    # quicker

1. ``inception_images_per_s``: TF-Inception pool3 features (fp32, 299 x 299 after the
   protocol's bicubic resize) of the first ``n`` MNIST training digits, after one warm-up batch; the
   resize is timed separately (``resize_images_per_s``), as it runs on the CPU whatever the
   device.
2. ``fid_seconds``: a whole ``gankit.metrics.evaluate(..., ["fid", "kid"])`` of those ``n``
   training digits against the first ``n`` MNIST test digits (``--data-root``), with a cold
   reference cache (a fresh ``GANKIT_CACHE_DIR``: both sides' features are computed) and then warm
   (the reference statistics come from the cache: only the generated side is).
One JSON line.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import MNIST, emit, machine, synchronize
from gankit.config import DataConfig
from gankit.data import load_images
from gankit.metrics import evaluate
from gankit.metrics.evaluator import DEFAULT_RESIZE, feature_network
from gankit.metrics.inception import preprocess
from gankit.metrics.reference import Reference


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data-root", default=str(MNIST))
    args = parser.parse_args(argv)
    train = DataConfig(source="mnist", root=args.data_root, split="train", resolution=28,
                       channels=1, max_images=args.n)  # fmt: skip
    digits = load_images(train).images
    network = feature_network("inception", args.device)
    network.features(digits[:8])  # warm-up
    synchronize(args.device)
    start = time.perf_counter()
    network.features(digits)
    synchronize(args.device)
    inception_seconds = time.perf_counter() - start
    start = time.perf_counter()
    for first in range(0, len(digits), 64):
        preprocess(digits[first : first + 64], DEFAULT_RESIZE)
    resize_seconds = time.perf_counter() - start

    reference = Reference(dataset="mnist", split="test", n=args.n, resolution=28, channels=1,
                          root=args.data_root)  # fmt: skip
    seconds = {}
    with tempfile.TemporaryDirectory() as cache:
        previous = os.environ.get("GANKIT_CACHE_DIR")
        os.environ["GANKIT_CACHE_DIR"] = cache
        try:
            for state in ("cold", "warm"):
                start = time.perf_counter()
                results = evaluate(digits, reference, ["fid", "kid"], args.device, progress=False)
                seconds[state] = time.perf_counter() - start
        finally:
            if previous is None:
                os.environ.pop("GANKIT_CACHE_DIR")
            else:
                os.environ["GANKIT_CACHE_DIR"] = previous
    values = {r.metric: round(r.value, 3) for r in results if r.value is not None}
    return emit({
        "benchmark": "eval_speed",
        "n": args.n,
        "inception_images_per_s": round(len(digits) / inception_seconds, 1),
        "resize_images_per_s": round(len(digits) / resize_seconds, 1),
        "fid_kid_seconds_cold_cache": round(seconds["cold"], 1),
        "fid_kid_seconds_warm_cache": round(seconds["warm"], 1),
        "train_vs_test": values,
        "data_root": str(Path(args.data_root)),
        **machine(args.device),
    })  # fmt: skip


if __name__ == "__main__":
    main()
    sys.exit(0)
