"""``gankit translate`` and ``LoadedGenerator.translate_image``: any size in, the same size out,
folders with bad files, and one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import gankit
from gankit.training import Trainer
from tests.conftest import run_gankit, tiny_config
from tests.test_hostile import bomb_png


@pytest.fixture(scope="module")
def translator_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("cyclegan")
    Trainer(tiny_config("cyclegan", "train.steps=2"), run).fit()
    return run


def test_translate_image_keeps_any_size_in_every_mode(translator_run):
    loaded = gankit.load(translator_run)
    rgb = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    modes = ("overlap", "grid", "whole")
    results = {mode: loaded.translate_image(rgb, mode=mode) for mode in modes}
    for result in results.values():
        assert result.shape == (37, 53, 1) and result.dtype == np.uint8  # digits: 1 channel
    # away from the borders, blended tiles agree with a single pass over the whole image (both
    # with running statistics: the tiling alone; image statistics: tests/test_tiling.py)
    middle = (slice(12, 25), slice(16, 37))
    overlap, whole = (loaded.translate_image(rgb, mode=m, stats="running") for m in modes[::2])
    difference = np.abs(overlap[middle].astype(int) - whole[middle])
    assert difference.mean() < 8


def test_the_cli_translates_an_image_and_a_folder_skipping_bad_files(translator_run, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(np.full((40, 70, 3), 90, np.uint8)).save(folder / "wide.png")
    Image.fromarray(np.full((65, 17), 200, np.uint8)).save(folder / "tall.jpg")
    (folder / "broken.png").write_bytes(b"not an image")
    (folder / "bomb.png").write_bytes(bomb_png())
    result = run_gankit("translate", str(translator_run), str(folder), "--out", str(tmp_path / "o"))
    assert result.returncode == 0, result.stderr
    assert Image.open(tmp_path / "o" / "wide.png").size == (70, 40)
    assert Image.open(tmp_path / "o" / "tall.png").size == (17, 65)
    assert "skipped" in result.stderr and "broken.png" in result.stderr
    assert "bomb.png" in result.stderr and "Traceback" not in result.stderr

    single = run_gankit("translate", str(translator_run), str(folder / "bomb.png"), "--out",
                        str(tmp_path / "o2"))  # fmt: skip
    assert single.returncode == 2 and single.stderr.count("\n") == 1, single.stderr
    assert "more than the limit" in single.stderr or "not a readable image" in single.stderr


def test_translate_refuses_what_it_cannot_do_in_one_line(translator_run, tmp_path):
    dcgan = tmp_path / "dcgan"
    Trainer(tiny_config("dcgan", "train.steps=1"), dcgan).fit()
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(image)
    cases = [
        (str(dcgan), str(image), [], "not a translator"),
        (str(translator_run), str(tmp_path / "missing.png"), [], "does not exist"),
        (str(translator_run), str(image), ["--tile", "16", "--overlap", "12"], "overlap"),
    ]
    for run, source, extra, message in cases:
        result = run_gankit("translate", run, source, "--out", str(tmp_path / "o"), *extra)
        assert result.returncode == 2, result.stderr
        [line] = result.stderr.strip().splitlines()
        assert line.startswith("gankit: error:") and message in line, line


def test_the_statistics_choice_reaches_the_api_and_the_cli(translator_run, tmp_path):
    """CycleGAN's default (auto) is the image's statistics: whole mode equals ``translate``
    (each image by itself); ``--stats running`` applies the running averages instead."""
    loaded = gankit.load(translator_run)
    gray = np.random.default_rng(1).integers(0, 256, (40, 48, 1), dtype=np.uint8)
    whole = loaded.translate_image(gray, mode="whole")
    one_pass = loaded.translate(torch.from_numpy(gray.transpose(2, 0, 1)[None] / 127.5 - 1))
    expected = ((one_pass[0].numpy().transpose(1, 2, 0) + 1) * 127.5).round().clip(0, 255)
    assert np.abs(whole.astype(int) - expected).max() <= 1
    assert np.array_equal(loaded.translate_image(gray, mode="whole", stats="image"), whole)
    source = tmp_path / "x.png"
    Image.fromarray(gray[..., 0]).save(source)
    outputs = {}
    for stats in ("image", "running"):
        result = run_gankit("translate", str(translator_run), str(source), "--stats", stats,
                            "--out", str(tmp_path / stats))  # fmt: skip
        assert result.returncode == 0, result.stderr
        outputs[stats] = np.asarray(Image.open(tmp_path / stats / "x.png"), dtype=int)
    assert np.abs(outputs["image"] - outputs["running"]).max() > 2
