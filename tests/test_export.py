from __future__ import annotations

import io
import json
import pickle
import zipfile

import pytest
import torch

import gankit
from gankit.api import export
from gankit.errors import CheckpointError
from gankit.training import Trainer
from tests.conftest import run_gankit, tiny_config


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    Trainer(tiny_config("dcgan", "train.steps=3", "train.ema=true"), run).fit()
    return run


def test_export_and_load_give_identical_samples_for_a_seed(trained_run, tmp_path):
    from_run = gankit.load(trained_run).sample(6, seed=3)
    from_export = gankit.load(export(trained_run, tmp_path / "export")).sample(6, seed=3)
    from_checkpoint = gankit.load(trained_run / "checkpoints" / "latest.pt").sample(6, seed=3)
    assert from_run.shape == (6, 1, 16, 16)
    assert from_run.min() >= -1 and from_run.max() <= 1
    assert torch.equal(from_run, from_export) and torch.equal(from_run, from_checkpoint)
    assert not torch.equal(from_run, gankit.load(trained_run).sample(6, seed=4))


def test_export_holds_the_ema_generator(trained_run):
    from safetensors.torch import load_file

    from gankit.runfolder.checkpoint import load_checkpoint

    weights = load_file(str(trained_run / "export" / "generator.safetensors"))
    state = load_checkpoint(trained_run / "checkpoints" / "latest.pt")
    assert all(torch.equal(weights[k], v) for k, v in state["ema"].items())
    assert not all(torch.equal(weights[k], v) for k, v in state["networks"]["generator"].items())
    manifest = json.loads((trained_run / "export" / "config.json").read_text())
    assert manifest["family"] == "dcgan" and manifest["network"] == "generator"


def test_sample_command_writes_a_grid(trained_run, tmp_path):
    result = run_gankit(
        "sample", str(trained_run), "--n", "9", "--seed", "1", "--out", str(tmp_path / "g.png")
    )
    assert result.returncode == 0, result.stderr
    from PIL import Image

    with Image.open(tmp_path / "g.png") as grid:
        assert grid.size == (3 * 18 + 2, 3 * 18 + 2)


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_tampered_checkpoint_is_refused_without_running_its_code(trained_run, tmp_path):
    marker = tmp_path / "payload-ran"
    evil = tmp_path / "evil.pt"
    torch.save({"format": 1, "networks": {}, "x": _Payload(str(marker))}, evil)
    with pytest.raises(CheckpointError, match="refused"):
        gankit.load(evil)
    assert not marker.exists()
    result = run_gankit("sample", str(evil), "--out", str(tmp_path / "x.png"))
    assert result.returncode == 2 and not marker.exists()
    assert result.stderr.count("\n") == 1 and "refused" in result.stderr


def test_truncated_and_foreign_checkpoints_are_refused(trained_run, tmp_path):
    data = (trained_run / "checkpoints" / "latest.pt").read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        gankit.load(truncated)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(CheckpointError, match="not a gankit checkpoint"):
        gankit.load(foreign)
    not_zip = tmp_path / "plain.pt"
    not_zip.write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(CheckpointError):
        gankit.load(not_zip)
    assert zipfile.is_zipfile(io.BytesIO(data))


def test_a_checkpoint_from_a_newer_gankit_is_refused(trained_run, tmp_path):
    state = torch.load(trained_run / "checkpoints" / "latest.pt", weights_only=True)
    state["format"] = 99
    newer = tmp_path / "newer.pt"
    torch.save(state, newer)
    with pytest.raises(CheckpointError, match="upgrade gankit"):
        gankit.load(newer)


def test_interpolate_writes_strips_and_a_gif(trained_run, tmp_path):
    from PIL import Image

    strip_path, gif_path = str(tmp_path / "strip.png"), str(tmp_path / "walk.gif")
    result = run_gankit("interpolate", str(trained_run), "--steps", "5", "--paths", "2",
                        "--out", strip_path, "--gif", gif_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    with Image.open(tmp_path / "strip.png") as strip:
        assert strip.size == (5 * 18 + 2, 2 * 18 + 2)
    with Image.open(tmp_path / "walk.gif") as gif:
        assert gif.n_frames == 5 + 3  # forwards, then back without repeating the ends


def test_interpolation_ends_at_the_two_seeds(trained_run):
    generator = gankit.load(trained_run)
    path = generator.interpolate(3, 4, steps=6)
    assert torch.allclose(path[0], generator.sample(1, seed=3)[0], atol=1e-5)
    assert torch.allclose(path[-1], generator.sample(1, seed=4)[0], atol=1e-5)
    assert not torch.allclose(path[2], path[3])


def test_class_options_need_a_conditional_family(trained_run, tmp_path):
    result = run_gankit(
        "sample", str(trained_run), "--class", "3", "--out", str(tmp_path / "x.png")
    )
    assert result.returncode == 2
    assert result.stderr.strip() == "gankit: error: dcgan does not support labels when sampling"
    result = run_gankit(
        "sample", str(trained_run), "--truncation", "0.5", "--out", str(tmp_path / "x.png")
    )
    assert result.returncode == 2 and "does not support truncation" in result.stderr
