"""Train DigitNet, the feature network of gankit's fast digit metric, and write its weights.

    python scripts/train_digit_classifier.py [--data-root ../shared/data/mnist] [--epochs 3]

Trains on the MNIST training split (60k) only, evaluates on the 10k test split, and writes
``src/gankit/metrics/weights/digitnet-v1.safetensors`` (safetensors, with the accuracies, seed,
epochs and date as metadata). Deterministic for a given seed, thread count and torch build (the
file's bytes still differ between runs by the date in the metadata).

Augmentation is light, so that generated digits that are a little off still map sensibly: a random
affine warp per image with shifts up to +-2 px, rotations up to +-10 degrees and scales 0.9-1.1
(bilinear, zero padding). Inputs go through the same :func:`images_to_input` as at evaluation.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from gankit.data.idx import read_idx
from gankit.metrics.digits import WEIGHTS_PATH, DigitNet, images_to_input

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA_ROOT = REPO.parent / "shared" / "data" / "mnist"
MAX_SHIFT_PIXELS = 2.0
MAX_ROTATION_DEGREES = 10.0
SCALE_RANGE = (0.9, 1.1)


def load_split(root: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """split "train" or "t10k" -> images (N, 1, 28, 28) uint8, labels (N,) int64."""
    images = read_idx(root / f"{split}-images-idx3-ubyte.gz")
    labels = read_idx(root / f"{split}-labels-idx1-ubyte.gz")
    return torch.from_numpy(images).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))


def random_affine(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Warp each image by a random small shift, rotation and scale.

    x: (N, 1, 28, 28) float in [0, 1] -> same shape, values in [0, 1].
    """
    n, _, height, _ = x.shape
    uniform = torch.rand(n, 4, generator=generator) * 2 - 1  # in [-1, 1)
    angle = uniform[:, 0] * math.radians(MAX_ROTATION_DEGREES)
    low, high = SCALE_RANGE
    scale = low + (uniform[:, 1] + 1) / 2 * (high - low)
    shift = uniform[:, 2:] * MAX_SHIFT_PIXELS * 2 / height  # grid coordinates span 2 per side
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def train_epoch(
    net: DigitNet,
    images: torch.Tensor,
    labels: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    batch_size: int,
    generator: torch.Generator,
) -> float:
    """One pass over the shuffled training split with augmentation; returns the mean loss."""
    net.train()
    order = torch.randperm(len(images), generator=generator)
    total, batches = 0.0, 0
    for start in range(0, len(images), batch_size):
        index = order[start : start + batch_size]
        x = random_affine(images_to_input(images[index]), generator)
        loss = F.cross_entropy(net(x.contiguous(memory_format=torch.channels_last)), labels[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        total, batches = total + loss.item(), batches + 1
    return total / batches


@torch.no_grad()
def accuracy(net: DigitNet, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of images (N, 1, 28, 28) uint8 classified as their labels (N,), eval mode."""
    net.eval()
    correct = 0
    for start in range(0, len(images), 1000):
        x = images_to_input(images[start : start + 1000])
        predicted = net(x.contiguous(memory_format=torch.channels_last)).argmax(dim=1)
        correct += int((predicted == labels[start : start + 1000]).sum())
    return correct / len(images)


def save_weights(net: DigitNet, path: Path, metadata: dict[str, str]) -> None:
    """Write the state dict as fp32 safetensors, atomically (temp file, then rename)."""
    state = {
        k: v.detach().contiguous(memory_format=torch.contiguous_format).clone()
        for k, v in net.state_dict().items()
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    save_file(state, str(temporary), metadata=metadata)
    os.chmod(temporary, 0o644)  # package data: readable by everyone
    os.replace(temporary, path)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    generator = torch.Generator().manual_seed(args.seed)
    train_images, train_labels = load_split(args.data_root, "train")
    test_images, test_labels = load_split(args.data_root, "t10k")
    print(f"train {tuple(train_images.shape)}, test {tuple(test_images.shape)}")

    net = DigitNet().to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(net.parameters(), lr=args.lr)
    steps = args.epochs * math.ceil(len(train_images) / args.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=steps)
    started = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        loss = train_epoch(
            net, train_images, train_labels, optimizer, schedule, args.batch_size, generator
        )
        test_accuracy = accuracy(net, test_images, test_labels)
        elapsed = time.perf_counter() - started
        print(f"epoch {epoch}: loss {loss:.4f}, test accuracy {test_accuracy:.4f} ({elapsed:.0f}s)")
    train_accuracy = accuracy(net, train_images, train_labels)
    print(f"final: train accuracy {train_accuracy:.4f}, test accuracy {test_accuracy:.4f}")
    metadata = {
        "model": "DigitNet v1",
        "train_data": "MNIST train split (60000 images)",
        "train_accuracy": f"{train_accuracy:.4f}",
        "test_accuracy": f"{test_accuracy:.4f}",
        "seed": str(args.seed),
        "epochs": str(args.epochs),
        "batch_size": str(args.batch_size),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "torch": torch.__version__,
    }
    save_weights(net, args.out, metadata)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB)")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data-root",
        type=Path,
        default=DEFAULT_DATA_ROOT,
        help="folder with the four MNIST .gz files (default: %(default)s)",
    )
    parser.add_argument("--out", type=Path, default=WEIGHTS_PATH, help="weights file to write")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3, help="peak Adam learning rate")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


if __name__ == "__main__":
    main()
