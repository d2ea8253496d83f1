"""Write the checkpoint fixtures of this gankit version: tests/fixtures/format-<N>/<family>/.

Each fixture is a tiny run folder as this version writes it (config.yaml, checkpoints/latest.pt,
export/) plus ``expected.safetensors``: the generator's output for fixed inputs. Every later
gankit version must load both (migrating them if the format changed) and compute the same images
(tests/test_checkpoint_fixtures.py). Write a new set only when ``FORMAT`` changes; never rewrite an
old one. Run from the repository root: ``python scripts/write_checkpoint_fixture.py``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import gankit  # noqa: E402
from gankit.runfolder.checkpoint import FORMAT  # noqa: E402
from gankit.training import Trainer  # noqa: E402
from tests.conftest import tiny_config  # noqa: E402

# One family per kind of change a format migration may have to handle: DCGAN (plain conv G with
# batch norm), ProGAN (equalised learning rate), CycleGAN (instance norm), SPADE (spectral norm).
FAMILIES = ("dcgan", "progan", "cyclegan", "spade")
KEEP = ("config.yaml", "checkpoints/latest.pt", "export")


def expected_images(run: Path) -> dict[str, torch.Tensor]:
    """Fixed inputs and the loaded export's output for them, on the CPU."""
    generator = gankit.load(run / "export")
    torch.manual_seed(0)
    if generator.is_translator:
        channels = generator.config.data.domain_a_channels
        size = generator.config.data.resolution
        inputs = torch.rand(2, channels, size, size) * 2 - 1
        return {"inputs": inputs, "images": generator.translate(inputs)}
    return {"images": generator.sample(2, seed=0)}


def write(family: str, out: Path) -> None:
    work = out / f".{family}-work"
    shutil.rmtree(work, ignore_errors=True)
    Trainer(tiny_config(family, "train.steps=2", "train.ema=false"), work).fit()
    target = out / family
    shutil.rmtree(target, ignore_errors=True)
    for name in KEEP:
        source, dest = work / name, target / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, dest)
    save_file(expected_images(target), str(target / "expected.safetensors"))
    shutil.rmtree(work)
    print(f"wrote {target}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_out = REPO / "tests" / "fixtures" / f"format-{FORMAT}"
    parser.add_argument("--out", type=Path, default=default_out)
    parser.add_argument("--families", nargs="*", default=list(FAMILIES))
    args = parser.parse_args()
    for family in args.families:
        write(family, args.out)


if __name__ == "__main__":
    main()
