"""Checkpoints and exports written by earlier gankit versions load, and compute what they did.

tests/fixtures/format-<N>/<family>/ were written by scripts/write_checkpoint_fixture.py with the
gankit of checkpoint format N (never rewritten): a tiny run folder and ``expected.safetensors``,
the generator's output then for fixed inputs. Each later version must read them (migrating the
format where it changed) and give the same images.
"""

from __future__ import annotations

import shutil
from contextlib import nullcontext
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import gankit
from gankit.resolve import load_run_config
from gankit.runfolder.checkpoint import FORMAT, load_checkpoint
from gankit.training import Trainer
from gankit.translate.statistics import normalisation

FIXTURES = Path(__file__).parent / "fixtures"
RUNS = sorted(p for p in FIXTURES.glob("format-*/*") if p.is_dir())


# Format 1 evaluated CycleGAN's instance norm with running statistics; format 2 normalises each
# image by itself, as training did (issue 18). The old function stays one option away.
STATS_OF_FORMAT = {("format-1", "cyclegan"): "running"}


def _images(
    generator: gankit.LoadedGenerator, expected: dict[str, torch.Tensor], run: Path
) -> torch.Tensor:
    if not generator.is_translator:
        return generator.sample(2, seed=0)
    stats = STATS_OF_FORMAT.get((run.parent.name, run.name))
    with normalisation(generator.network, stats) if stats else nullcontext():
        return generator.translate(expected["inputs"])


def test_there_is_a_fixture_of_every_format_up_to_this_one():
    assert {int(p.parent.name.split("-")[1]) for p in RUNS} == set(range(1, FORMAT + 1))


@pytest.mark.parametrize("run", RUNS, ids=lambda p: f"{p.parent.name}-{p.name}")
@pytest.mark.parametrize("what", ["export", "checkpoints/latest.pt"])
def test_an_old_export_or_checkpoint_loads_and_generates_the_same_images(run, what):
    expected = load_file(str(run / "expected.safetensors"))
    generator = gankit.load(run / what)
    torch.testing.assert_close(_images(generator, expected, run), expected["images"])


@pytest.mark.parametrize("run", RUNS, ids=lambda p: f"{p.parent.name}-{p.name}")
def test_an_old_run_resumes_and_writes_the_current_format(run, tmp_path):
    folder = tmp_path / run.name
    shutil.copytree(run, folder)
    cfg = load_run_config(folder, ["train.steps=3"])
    result = Trainer(cfg, folder, resume=True).fit()
    assert result.step == 3
    assert load_checkpoint(folder / "checkpoints" / "latest.pt")["format"] == FORMAT
