"""The HD painting experiment's scores and report (scripts/hd_scores.py, scripts/hd_painting.py):
on small images written here, and one end-to-end run of the script on small photos (2 training
steps of the Siamese preset, every mode)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gankit.data.hd_photos import SPLIT, paint
from gankit.metrics import fidelity
from tests.test_hd_photos import small_photos  # noqa: F401  (a fixture)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import hd_painting
import hd_scores
from hd_measure import tile_seam


def _texture(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A photo-like (H, W, 3) uint8 image: smooth colour fields plus fine grain."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (height // 16 + 2, width // 16 + 2, 3)).astype(np.uint8)
    smooth = np.array(Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC))
    grain = rng.normal(0, 12, (height, width, 3))
    return np.clip(smooth + grain, 0, 255).astype(np.uint8)


def _as_batch(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1)[None].double()


# --------------------------------------------------------------------------------------------------
# Scores


def test_psnr_and_ssim_are_gankit_fidelity_definitions():
    truth = _texture(48, 64)
    image = np.clip(truth + np.random.default_rng(1).normal(0, 9, truth.shape), 0, 255)
    image = image.astype(np.uint8)
    ours = fidelity.psnr(_as_batch(image), _as_batch(truth), (0.0, 255.0)).item()
    assert hd_scores.psnr(image, truth) == pytest.approx(ours, abs=1e-9)
    ours = fidelity.ssim(_as_batch(image), _as_batch(truth), (0.0, 255.0)).item()
    assert hd_scores.ssim(image, truth) == pytest.approx(ours, abs=1e-6)
    assert hd_scores.ssim(image, truth) < 0.99
    assert hd_scores.psnr(truth, truth) == float("inf") and hd_scores.ssim(truth, truth) == 1
    with pytest.raises(ValueError, match="one shape"):
        hd_scores.psnr(image[:-1], truth)


def test_style_distance_is_zero_on_the_truth_and_sees_what_the_filter_changes():
    photo = _texture(96, 128)
    truth = paint(photo)
    assert hd_scores.style_distance(truth, truth) == {
        "style_distance": 0.0, "colour": 0.0, "edges": 0.0, "strokes": 0.0,
    }  # fmt: skip
    identity = hd_scores.style_distance(photo, truth)
    assert 0 < identity["style_distance"] < 1
    # the filter flattens grain into patches: the edge histogram is what tells the photo apart
    assert identity["edges"] > max(identity["colour"], identity["strokes"])
    noise = np.random.default_rng(2).normal(0, 1, truth.shape)
    edges = [hd_scores.style_distance(np.clip(truth + sigma * noise, 0, 255).astype(np.uint8),
                                      truth)["edges"] for sigma in (2, 6, 18)]  # fmt: skip
    assert 0 < edges[0] < edges[1] < edges[2]  # grain on the flat patches: further and further
    flat = np.full_like(truth, 128)  # no edges at all: every stroke histogram is uniform
    assert hd_scores.style_distance(flat, flat)["strokes"] == 0


def test_style_distance_is_taken_per_block_and_weighted_by_pixels():
    block = hd_scores.STYLE_BLOCK
    truth = paint(_texture(block, 2 * block))
    other = paint(_texture(block, 2 * block, seed=5))
    half = truth.copy()
    half[:, block:] = other[:, block:]  # the left block is the truth's, the right one is not
    right = hd_scores.style_distance(other[:, block:], truth[:, block:])
    assert hd_scores.style_distance(half, truth)["colour"] == pytest.approx(right["colour"] / 2)
    # globally the two halves could match; per block they do not
    swapped = np.concatenate([truth[:, block:], truth[:, :block]], axis=1)
    assert hd_scores.style_distance(swapped, truth)["style_distance"] > 0.05


def test_the_border_mask_and_border_psnr_count_only_pixels_near_grid_tile_edges():
    mask = hd_scores.border_mask(300, 600, 256)  # lines: row 256; columns 256, 512
    assert mask.sum() == 4 * 600 + 8 * 300 - 4 * 8
    assert mask[254:258, 0].all() and not mask[253, 0] and not mask[258, 0]
    assert mask[0, 510:514].all() and not mask[0, 509]
    truth = _texture(300, 600)
    off_border = truth.copy()
    off_border[:100, :100] ^= 8
    assert hd_scores.border_psnr(off_border, truth, 256) == float("inf")
    on_border = truth.copy()
    on_border[mask] ^= 8
    assert hd_scores.border_psnr(on_border, truth, 256) < hd_scores.psnr(on_border, truth)


def test_seams_show_on_grid_lines_and_are_also_taken_over_the_whole_pass():
    image = _texture(256, 256)
    tiled = image.astype(np.int16)
    tiled[:128, :128] += 30  # one 128 px tile brighter than its neighbours
    tiled = np.clip(tiled, 0, 255).astype(np.uint8)
    period = hd_painting.SEAM_PERIOD
    assert tile_seam(tiled, 128, 0, period) > 2 * tile_seam(tiled, 128, 32, period)
    assert 0.8 < tile_seam(image, 128, 0, period) < 1.2
    rows = {"overlap": {"seam_score": 1.1}, "grid": {"seam_score": 3.0},
            "whole": {"seam_score": 1.0, "seam_score_grid": 1.5}}  # fmt: skip
    hd_painting.add_seam_ratios(rows)  # each over the whole pass on its own lines
    assert rows["overlap"]["seam_over_whole"] == 1.1 and rows["grid"]["seam_over_whole"] == 2.0
    rows = {"overlap": {"seam_score": 1.1}, "whole": {"mode": "whole", "skipped": "too big"}}
    hd_painting.add_seam_ratios(rows)
    assert "seam_over_whole" not in rows["overlap"]


# --------------------------------------------------------------------------------------------------
# The report


def _row(psnr: float, style: float, seam: float, border: float, rss: float = 600.0) -> dict:
    return {"psnr_db": psnr, "style_distance": style, "seam_score": seam, "seam_over_whole": seam,
            "border_psnr_db": border, "peak_rss_mb": rss, "tile": 256}  # fmt: skip


def _photos(overlap_psnr: float = 33.0) -> dict:
    identity = {"psnr_db": 31.0, "style_distance": 0.22, "seam_score": 1.0}
    return {
        "Dune": {"identity": identity,
                 "siamese": {"overlap": _row(overlap_psnr, 0.15, 1.01, 32.5),
                             "grid": _row(32.0, 0.16, 1.9, 28.0),
                             "whole": {"mode": "whole", "skipped": "does not fit"}}},
        "Storm": {"identity": identity,
                  "siamese": {"overlap": _row(34.0, 0.12, 1.00, 34.0),
                              "grid": _row(33.0, 0.13, 1.7, 30.0),
                              "whole": _row(34.5, 0.12, 1.0, 34.5, rss=3000.0)}},
    }  # fmt: skip


def test_summary_means_and_smallest_margins_over_the_photo():
    models = (hd_painting.MODELS[0],)
    summary = hd_painting.summarise(_photos(), models)
    overlap = summary["siamese/overlap"]
    assert overlap["photos"] == 2 and overlap["psnr_db"] == pytest.approx(33.5)
    assert overlap["min_psnr_gain_db"] == pytest.approx(2.0)
    assert overlap["min_style_gain"] == pytest.approx(0.07)
    assert "tile" not in overlap
    assert summary["siamese/whole"]["photos"] == 1  # the skipped photo is left out
    worse = hd_painting.summarise(_photos(overlap_psnr=30.0), models)["siamese/overlap"]
    assert worse["min_psnr_gain_db"] == pytest.approx(-1.0)


def test_acceptance_fails_when_one_photo_misses_a_point():
    passed = hd_painting.acceptance(_photos())
    assert tuple(passed) == hd_painting.CHECKS and all(passed.values())
    assert hd_painting.acceptance(_photos(overlap_psnr=30.0))["closer_than_photo_psnr"] is False
    seamy = _photos()
    seamy["Storm"]["siamese"]["overlap"]["seam_score"] = 1.05
    checks = hd_painting.acceptance(seamy)
    assert checks["overlap_seam_at_most_1.02"] is False and checks["grid_worse_at_borders"]
    assert checks["overlap_seam_over_whole_at_most_1.02"]  # the content, not the tiles
    del seamy["Dune"]["siamese"]["overlap"]["seam_over_whole"]  # whole mode was skipped
    assert hd_painting.acceptance(seamy)["overlap_seam_over_whole_at_most_1.02"] is None
    heavy = _photos()
    heavy["Dune"]["siamese"]["grid"]["peak_rss_mb"] = 1100.0
    assert hd_painting.acceptance(heavy)["tiled_peak_rss_under_1gb"] is False
    assert set(hd_painting.acceptance(_photos(), model="cyclegan").values()) == {None}


def test_the_corner_crop_is_centred_on_a_grid_tile_corner_inside_the_image():
    assert hd_painting.corner_box(2560, 1600, 256, 256) == (1152, 640, 1408, 896)
    assert hd_painting.corner_box(1680, 1050, 256, 256) == (640, 384, 896, 640)
    assert hd_painting.corner_box(300, 300, 256, 128) == (172, 172, 300, 300)  # moved inside
    assert hd_painting.corner_box(100, 80, 256, 256) == (0, 0, 100, 80)


def test_photo_names_take_stems_or_file_names_in_the_splits_order():
    assert hd_painting.photo_names(None) == SPLIT.test
    assert hd_painting.photo_names(["Storm,Dune.jpg"]) == ("Dune.jpg", "Storm.jpg")
    with pytest.raises(SystemExit, match="Aqua is not a held-out photo"):
        hd_painting.photo_names(["Aqua"])
    nested = {"a": {"result": "x.png", "psnr_db": 1.0}, "b": [1]}
    assert hd_painting.without_paths(nested) == {"a": {"psnr_db": 1.0}, "b": [1]}


def test_the_command_line_picks_models_modes_and_training_overrides(tmp_path):
    args = ["--run-dir", str(tmp_path), "--model", "siamese-downscaled", "--mode", "whole",
            "--set", "model.lowpass_window=4", "--set", "data.hue=false",
            "--steps", "7"]  # fmt: skip
    exp = hd_painting.experiment(hd_painting.parse_args(args))
    assert [m.name for m in exp.models] == ["siamese-downscaled"] and exp.modes == ("whole",)
    command = hd_painting.training_command(exp, exp.models[0])
    assert command[-6:] == ["--set", "train.steps=7", "--set", "model.lowpass_window=4",
                            "--set", "data.hue=false"]  # fmt: skip
    assert str(tmp_path / "crops-x2") in command and str(tmp_path / "siamese-downscaled") in command
    every = hd_painting.experiment(hd_painting.parse_args(["--run-dir", str(tmp_path)]))
    assert every.models == hd_painting.MODELS and every.modes == hd_painting.MODES
    assert "--set" not in hd_painting.training_command(every, every.models[2])
    with pytest.raises(SystemExit):
        hd_painting.parse_args(["--model", "pix2pix"])


# --------------------------------------------------------------------------------------------------
# End to end, on small photos


def test_the_script_trains_translates_scores_and_reports(small_photos, tmp_path):  # noqa: F811
    siamese = hd_painting.MODELS[0]
    exp = hd_painting.Experiment(
        run_dir=tmp_path / "run", docs=tmp_path / "docs", photos=(SPLIT.test[0],),
        models=(siamese,), steps=2, crop_size=64, crops_per_photo=2, tile=32, overlap=8,
        corner_crop=32,
    )  # fmt: skip
    record = hd_painting.run(exp)
    assert record == json.loads((exp.docs / "example.json").read_text())
    assert record["models"]["siamese"]["training"]["steps"] == 2
    stem = Path(SPLIT.test[0]).stem
    rows = record["photos"][stem]
    assert rows["size"] == "120x90" and set(rows["siamese"]) == {"overlap", "grid", "whole"}
    for row in rows["siamese"].values():
        assert row["output_size"] == "120x90" and np.isfinite(row["psnr_db"])
        assert 0 <= row["style_distance"] <= 1 and row["peak_rss_mb"] > 0
    assert rows["identity"]["psnr_db"] > 10 and "result" not in rows["siamese"]["grid"]
    assert rows["siamese"]["overlap"]["seam_over_whole"] > 0 and rows["truth"]["seam_score"] > 0
    assert set(record["acceptance"]) == set(hd_painting.CHECKS)
    for name in ("before.jpg", "after.jpg", "truth.jpg", "corner.png", "models.png"):
        assert (exp.docs / f"{stem}-{name}").is_file()
    with Image.open(exp.docs / f"{stem}-corner.png") as corner:
        assert corner.size == (4 * 32 + 3 * 8, 32)
