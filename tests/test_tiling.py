"""HD inference: tiling, blending, streaming and the seam score (gankit.translate)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from gankit.errors import GankitError
from gankit.translate import (
    MODES,
    StatisticsError,
    TilingError,
    border_lines,
    plan_tiles,
    reflect_indices,
    seam_score,
    taper_window,
    tiling,
    translate_image,
)

SIZES = [(1, 1), (7, 300), (300, 7), (65, 129)]


def identity(x: torch.Tensor) -> torch.Tensor:
    return x


def upsample_nearest(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="nearest")


def blur3x3(x: torch.Tensor) -> torch.Tensor:
    """A fixed 3x3 box blur per channel with reflection padding (receptive field radius 1)."""
    channels = x.shape[1]
    kernel = torch.full((channels, 1, 3, 3), 1 / 9)
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), kernel, groups=channels)


def random_image(height: int, width: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, channels), dtype=np.uint8)


def smooth_image(height: int, width: int) -> np.ndarray:
    """A smooth RGB pattern with a little noise: gradients everywhere, no edges on a grid."""
    y, x = np.mgrid[:height, :width]
    noise = np.random.default_rng(1).normal(0, 4, (height, width))
    gray = 128 + 60 * np.sin(x / 6.0) * np.cos(y / 9.0) + noise
    return np.repeat(gray.clip(0, 255).astype(np.uint8)[:, :, None], 3, axis=2)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("height", "width"), SIZES)
@pytest.mark.parametrize("channels", [1, 3])
def test_identity_reproduces_the_image_exactly(mode, height, width, channels):
    image = random_image(height, width, channels)
    assert np.array_equal(translate_image(image, identity, 16, mode=mode), image)


def test_pil_images_are_accepted_as_gray_and_rgb():
    rgb = random_image(20, 30)
    gray = rgb[:, :, :1]
    assert np.array_equal(translate_image(Image.fromarray(rgb), identity, 8), rgb)
    assert np.array_equal(translate_image(Image.fromarray(gray[:, :, 0]), identity, 8), gray)


@pytest.mark.parametrize("mode", MODES)
def test_scale_two_translator_gives_the_doubled_image(mode):
    image = random_image(65, 129)
    result = translate_image(image, upsample_nearest, 16, mode=mode, scale=2)
    assert np.array_equal(result, image.repeat(2, axis=0).repeat(2, axis=1))


def test_per_tile_offset_shows_seams_in_grid_mode_and_blends_in_overlap_mode():
    """Each tile gets its own constant added (what per-tile normalisation does). Grid mode
    shows a step at every tile edge; overlap mode spreads it over the overlap band with
    weights that are ~0 at the tile edges, so the edges are as smooth as elsewhere and even
    the band centres, where the ramp is steepest, score far below grid mode."""
    image = smooth_image(96, 128)
    generator = torch.Generator().manual_seed(0)

    def offset_per_tile(x):
        return (x + 0.2 * torch.randn(len(x), 1, 1, 1, generator=generator)).clamp(-1, 1)

    assert seam_score(image, 16, 16) == pytest.approx(1.0, abs=0.1)  # the image has no seams
    grid = translate_image(image, offset_per_tile, 16, mode="grid")
    grid_score = seam_score(grid, 16, 16)
    plan = plan_tiles(96, 128, tile=16, overlap=8)
    blended = translate_image(image, offset_per_tile, 16, mode="overlap", overlap=8)
    edges = seam_score(blended, plan.tile, plan.stride, offset=-plan.margin)
    centre = -plan.margin + plan.tile - plan.overlap // 2  # the middle of the first band
    centres = seam_score(blended, plan.stride, plan.stride, offset=centre)
    assert grid_score > 5
    assert edges < 1.05
    assert centres < grid_score / 5


@pytest.mark.parametrize(("height", "width"), [(1, 1), (5, 3), (16, 16), (17, 50), (65, 129)])
@pytest.mark.parametrize(("tile", "overlap", "scale"), [(16, 4, 1), (16, 8, 2), (9, 3, 3)])
def test_blending_weights_sum_to_one_everywhere(height, width, tile, overlap, scale):
    """Brute force over every tile of the plan: the windows alone already sum to one on the
    image (raised-cosine ramps pair up), and after division by the normaliser the effective
    weights sum to one on the whole padded area, padding included."""
    plan = plan_tiles(height, width, tile, overlap)
    window = taper_window(tile, overlap, scale)
    side = tile * scale
    total = np.zeros((plan.padded_height * scale, plan.padded_width * scale))
    for y in plan.row_origins * scale:
        for x in plan.col_origins * scale:
            total[y : y + side, x : x + side] += np.outer(window, window)
    rows = tiling.axis_weight_sum(0, total.shape[0], plan.row_origins * scale, window)
    columns = tiling.axis_weight_sum(0, total.shape[1], plan.col_origins * scale, window)
    np.testing.assert_allclose(total / np.outer(rows, columns), 1.0, atol=1e-12)
    first = plan.margin * scale
    on_image = total[first : first + height * scale, first : first + width * scale]
    np.testing.assert_allclose(on_image, 1.0, atol=1e-12)
    assert window.min() > 0  # so no pixel of the padding has a zero weight sum either


@pytest.mark.parametrize(("height", "width"), [(1, 1), (7, 300), (65, 129)])
def test_constant_translator_gives_that_constant_everywhere_in_float(height, width):
    """End to end with float32 ``out`` (no quantisation): any failure of the weights to sum
    to one, at the border or inside, would show as a value other than the constant."""
    image = random_image(height, width)
    out = np.full((height * 2, width * 2, 2), np.nan, np.float32)
    translate_image(image, lambda x: torch.full((len(x), 2, 32, 32), 0.37), 16, scale=2, out=out)
    np.testing.assert_allclose(out, 0.37, atol=1e-6)


def test_division_by_the_weight_sums_makes_any_positive_window_sum_to_one(monkeypatch):
    """The raised-cosine ramps sum to one by themselves; the normalisation must not rely on
    it. With a Gaussian window, which sums to nothing in particular, a constant translator
    still gives its constant and the identity the image."""

    def gaussian(tile, overlap, scale=1):
        centre = (tile * scale - 1) / 2
        return np.exp(-(((np.arange(tile * scale) - centre) / (tile * scale / 4)) ** 2))

    monkeypatch.setattr(tiling, "taper_window", gaussian)
    image = random_image(37, 61)
    out = np.zeros((37, 61, 1), np.float32)
    translate_image(image, lambda x: torch.full((len(x), 1, 16, 16), -0.6), 16, out=out)
    np.testing.assert_allclose(out, -0.6, atol=1e-6)
    assert np.array_equal(translate_image(image, identity, 16, overlap=8), image)


def test_pointwise_translator_gives_the_same_result_in_every_mode():
    def pointwise(x):
        return torch.tanh(2 * x)

    image = random_image(65, 129)
    results = {mode: translate_image(image, pointwise, 16, mode=mode) for mode in MODES}
    assert np.array_equal(results["grid"], results["whole"])
    assert np.array_equal(results["overlap"], results["whole"])


def test_small_receptive_field_convolution_matches_the_whole_pass_in_overlap_mode():
    """A 3x3 blur differs from the whole-image pass only on each tile's outer pixel ring, where
    the blend weight is sin^2(pi / (4 * overlap)) = 0.038 for overlap 4; a reflected ring is
    off by at most ~85 grey levels, so overlap mode is off by at most ~3.3: tolerance max 4,
    mean 0.3 grey levels. Grid mode keeps the ring's full error."""
    image = random_image(65, 129)
    whole = translate_image(image, blur3x3, 16, mode="whole").astype(int)
    overlap = translate_image(image, blur3x3, 16, mode="overlap", overlap=4).astype(int)
    grid = translate_image(image, blur3x3, 16, mode="grid").astype(int)
    error, grid_error = np.abs(overlap - whole), np.abs(grid - whole)
    assert error.max() <= 4 and error.mean() <= 0.3
    assert grid_error.mean() > 10 * error.mean()


def _numpy_peak_bytes(height: int, width: int, tile: int) -> int:
    image = np.zeros((height, width, 3), np.uint8)
    out = np.empty_like(image)  # the result itself is not extra memory
    tracemalloc.start()
    try:
        translate_image(image, identity, tile, out=out)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_streaming_keeps_a_band_of_rows_not_the_whole_image():
    """tracemalloc sees every NumPy buffer (accumulators, strips, tiles). On a tall thin image
    the peak must not grow with the height, and must be far below one float32 copy."""
    width, tile = 64, 16
    _numpy_peak_bytes(64, width, tile)  # first call: one-time allocations
    short, tall = _numpy_peak_bytes(256, width, tile), _numpy_peak_bytes(4096, width, tile)
    band = 3 * tile * (width + 2 * tile) * 4  # C x tile rows x padded width, float32
    assert tall <= short + 8192  # allocator noise; one float32 per row would add 15,360 bytes
    assert tall < 16 * band
    assert tall < 4096 * width * 3 * 4 / 20  # one float32 copy of the image


def test_output_channels_may_differ_from_input_channels():
    image = random_image(20, 33)
    gray = translate_image(image, lambda x: x.mean(dim=1, keepdim=True), 8)
    assert gray.shape == (20, 33, 1)
    expected = np.rint((image / 127.5 - 1).mean(axis=2) * 127.5 + 127.5)
    assert np.abs(gray[:, :, 0].astype(int) - expected).max() <= 1
    color = translate_image(image[:, :, :1], lambda x: x.repeat(1, 3, 1, 1), 8, mode="grid")
    assert np.array_equal(color, image[:, :, :1].repeat(3, axis=2))


def test_writes_into_a_memmap_and_returns_it(tmp_path):
    image = random_image(40, 70)
    out = np.lib.format.open_memmap(tmp_path / "out.npy", "w+", np.uint8, (80, 140, 3))
    result = translate_image(image, upsample_nearest, 16, scale=2, out=out)
    assert result is out
    out.flush()
    reread = np.load(tmp_path / "out.npy")
    assert np.array_equal(reread, image.repeat(2, axis=0).repeat(2, axis=1))


def test_tiles_go_through_the_translator_in_batches():
    sizes = []

    def recording(x):
        sizes.append(len(x))
        return x

    plan = plan_tiles(100, 60, tile=16, overlap=4)
    translate_image(random_image(100, 60), recording, 16, overlap=4, batch_size=3)
    assert sum(sizes) == plan.rows * plan.cols
    assert max(sizes) == 3


def test_whole_mode_pads_to_the_multiple_the_translator_needs():
    def needs_multiples_of_8(x):
        assert x.shape[2] % 8 == 0 and x.shape[3] % 8 == 0
        return x

    image = random_image(65, 129)
    result = translate_image(image, needs_multiples_of_8, None, mode="whole", multiple=8)
    assert np.array_equal(result, image)


def test_whole_mode_that_runs_out_of_memory_says_to_use_overlap():
    def out_of_memory(x):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried 99 GB")

    with pytest.raises(TilingError, match="use mode='overlap'"):
        translate_image(random_image(8, 8), out_of_memory, None, mode="whole")


def _normed_pointwise(seed: int = 0) -> nn.Module:
    """1x1 convolutions around an instance norm without running statistics and a batch norm
    with them (moved away from (0, 1)): tiling changes nothing but the statistics."""
    torch.manual_seed(seed)
    batch_norm = nn.BatchNorm2d(4)
    batch_norm.running_mean.uniform_(-1, 1)
    batch_norm.running_var.uniform_(0.5, 2)
    network = nn.Sequential(
        nn.Conv2d(3, 4, 1), nn.InstanceNorm2d(4, affine=True), nn.ReLU(), nn.Conv2d(4, 4, 1),
        batch_norm, nn.ReLU(), nn.Conv2d(4, 3, 1), nn.Tanh(),
    )  # fmt: skip
    return network.eval()


def _float_out(image: np.ndarray) -> np.ndarray:
    return np.empty(image.shape, np.float32)


@pytest.mark.parametrize("mode", ["grid", "overlap"])
@pytest.mark.parametrize(("height", "width"), [(45, 70), (33, 20)])
def test_tiles_with_image_statistics_equal_one_pass_over_the_whole_image(mode, height, width):
    """Every tile is normalised with the whole image's statistics, estimated from the tiles'
    owned parts: with no receptive field to cut, tiles and one pass agree to float rounding,
    for the instance norm and (stats="image") the batch norm alike."""
    network, image = _normed_pointwise(), smooth_image(height, width)
    whole = translate_image(image, network, None, mode="whole", stats="image",
                            out=_float_out(image))  # fmt: skip
    tiled = translate_image(image, network, 16, mode=mode, stats="image", out=_float_out(image))
    np.testing.assert_allclose(tiled, whole, atol=2e-5)
    # The check can fail: each tile's own statistics differ from the image's.
    with torch.no_grad():
        tile = network[:5](torch.from_numpy(tiling._to_float(image[:16, :16]))[None])
        per_tile = translate_image(image, lambda x: network(x), 16, mode=mode,
                                   out=_float_out(image))  # fmt: skip
    assert tile.shape == (1, 4, 16, 16) and np.abs(per_tile - whole).max() > 1e-2


def test_whole_mode_normalises_each_image_by_itself_and_running_statistics_differ():
    network, image = _normed_pointwise(), smooth_image(24, 30)
    network[1] = nn.InstanceNorm2d(4, affine=True, track_running_stats=True).eval()
    x = torch.from_numpy(tiling._to_float(image))[None]
    with torch.no_grad():
        expected = network.train()(x)[0].numpy().transpose(1, 2, 0)  # batch of one: its own
    network.eval()
    whole = translate_image(image, network, None, mode="whole", stats="image",
                            out=_float_out(image))  # fmt: skip
    np.testing.assert_allclose(whole, expected, atol=1e-5)
    running = translate_image(image, network, 8, stats="running", out=_float_out(image))
    assert np.abs(running - whole).max() > 1e-2


def test_auto_keeps_running_statistics_where_evaluation_uses_them():
    """auto: the instance norm (no running statistics) takes the image's, the batch norm in
    evaluation mode its running averages, in every mode."""
    network, image = _normed_pointwise(), smooth_image(40, 36)
    x = torch.from_numpy(tiling._to_float(image))[None]
    with torch.no_grad():
        expected = network(x)[0].numpy().transpose(1, 2, 0)  # eval: what auto reproduces
    for mode, tile in (("whole", None), ("overlap", 16), ("grid", 8)):
        result = translate_image(image, network, tile, mode=mode, out=_float_out(image))
        np.testing.assert_allclose(result, expected, atol=2e-5)


def test_image_statistics_reach_layers_behind_a_downsampling():
    """Owned regions are mapped to each layer's resolution: a stride-2 convolution, a norm at
    half resolution, nearest upsampling; tiles of 16 with overlap 4 (owned parts on even
    pixels) give the one-pass statistics exactly."""
    torch.manual_seed(0)
    network = nn.Sequential(
        nn.Conv2d(3, 4, 2, stride=2), nn.InstanceNorm2d(4), nn.Upsample(scale_factor=2),
        nn.Conv2d(4, 3, 1),
    ).eval()  # fmt: skip
    image = smooth_image(48, 64)
    whole = translate_image(image, network, None, mode="whole", stats="image",
                            out=_float_out(image))  # fmt: skip
    tiled = translate_image(image, network, 16, overlap=4, multiple=2, out=_float_out(image))
    np.testing.assert_allclose(tiled, whole, atol=2e-5)


def test_statistics_choices_that_cannot_work_are_one_line_errors():
    image = random_image(20, 20)
    with pytest.raises(StatisticsError, match="no running statistics: use stats='image'"):
        translate_image(image, nn.InstanceNorm2d(3).eval(), 8, stats="running")
    with pytest.raises(StatisticsError, match=r"stats='mean': choose one of auto, image"):
        translate_image(image, identity, 8, stats="mean")
    with pytest.raises(TilingError, match=r"own statistics in 0 \(group norm\)"):
        translate_image(image, nn.Sequential(nn.GroupNorm(1, 3)), 8)
    assert translate_image(image, nn.GroupNorm(1, 3), 8, mode="whole").shape == image.shape


def test_the_layers_are_restored_after_translating():
    network, image = _normed_pointwise(), smooth_image(20, 20)
    translate_image(image, network, 8)
    assert all("forward" not in vars(m) for m in network.modules())


def test_progress_bar_counts_tiles(capsys):
    translate_image(random_image(30, 30), identity, 16, progress=True)
    assert "9/9" in capsys.readouterr().err  # 30 + 2 * 4 px to cover, stride 12: 3 x 3 tiles


@pytest.mark.parametrize(
    ("image", "kwargs", "message"),
    [
        (random_image(8, 8), {"tile": 0}, "tile=0"),
        (random_image(8, 8), {"tile": 16, "overlap": 9}, "overlap=9"),
        (random_image(8, 8), {"tile": 16, "overlap": 0}, "overlap=0"),
        (random_image(8, 8), {"tile": 16, "mode": "grid", "overlap": 4}, "overlap=4"),
        (random_image(8, 8), {"tile": 1}, "tile=1"),
        (random_image(8, 8), {"tile": 16, "mode": "tiles"}, "mode='tiles'"),
        (random_image(8, 8), {"tile": 12, "multiple": 8}, "tile=12"),
        (random_image(8, 8), {"tile": 16, "scale": 0}, "scale=0"),
        (random_image(8, 8), {"tile": 16, "batch_size": 0}, "batch_size=0"),
        (random_image(8, 8).astype(np.float32), {"tile": 16}, "dtype float32"),
        (random_image(8, 8)[:, :, 0], {"tile": 16}, "shape (8, 8)"),
        (random_image(8, 8)[None], {"tile": 16}, "shape (1, 8, 8, 3)"),
        (np.zeros((0, 8, 3), np.uint8), {"tile": 16}, "shape (0, 8, 3)"),
        (random_image(8, 8), {"tile": 16, "out": np.zeros((8, 9, 3), np.uint8)}, "out"),
        (random_image(8, 8), {"tile": 16, "out": np.zeros((8, 8, 2), np.uint8)}, "out"),
        (random_image(8, 8), {"tile": 16, "scale": 2}, "output shape"),
    ],
)
def test_bad_arguments_raise_a_one_line_value_error(image, kwargs, message):
    tile = kwargs.pop("tile")
    with pytest.raises(ValueError, match=r"^[^\n]*$") as caught:
        translate_image(image, identity, tile, **kwargs)
    assert message in str(caught.value)
    assert isinstance(caught.value, GankitError)  # the CLI prints it and exits 2


def test_reflect_indices_match_numpy_reflect_and_repeat_for_large_pads():
    for size in (2, 3, 7):
        for pad in (1, size - 1):
            positions = np.arange(-pad, size + pad)
            expected = np.pad(np.arange(size), pad, mode="reflect")
            assert np.array_equal(reflect_indices(positions, size), expected)
    assert list(reflect_indices(np.arange(-2, 6), 3)) == [2, 1, 0, 1, 2, 1, 0, 1]
    assert not reflect_indices(np.arange(-5, 6), 1).any()


def test_seam_score_counts_exactly_the_pairs_across_tile_edges():
    """Columns 0..7, tile = stride = 4: the only border line is x = 4, so the pair (3, 4)
    is the border pair (difference 3) and the six others are off it (difference 1)."""
    row = np.array([0, 1, 2, 3, 6, 7, 8, 9], float)
    assert seam_score(row[None, :], 4, 4) == pytest.approx(9.0)
    # Transposed, the same pairs are vertical; two channels count the same as one.
    column = np.repeat(row[:, None, None], 2, axis=2)
    assert seam_score(column, 4, 4) == pytest.approx(9.0)
    # Scale 2 doubles the line positions; overlapping tiles give both edges of each band.
    assert list(border_lines(16, 4, 4, scale=2)) == [8]
    assert list(border_lines(20, 8, 6, offset=-2)) == [4, 6, 10, 12, 16, 18]
    assert np.isnan(seam_score(row[None, :], 16, 16))  # no border inside the image


def test_seam_score_period_compares_only_pairs_of_the_same_phase():
    """Differences of 3 into even columns and 1 into odd ones (a period-2 pattern, like a
    network's upsampling) and lines at 4, 8, 12: all other pairs mean (4 * 9 + 8 * 1) / 12, so
    the plain score says 9 / (44 / 12) with no seam at all; with period 2 it says 1."""
    row = np.cumsum([0] + [3 if x % 2 == 0 else 1 for x in range(1, 16)]).astype(float)
    assert seam_score(row[None, :], 4, 4) == pytest.approx(9 / (44 / 12))
    assert seam_score(row[None, :], 4, 4, period=2) == pytest.approx(1.0)


def test_seam_score_in_row_chunks_equals_the_direct_computation():
    image = random_image(1100, 9, channels=2).astype(float)  # crosses two 512-row chunks
    lines_y, lines_x = border_lines(1100, 5, 5), border_lines(9, 5, 5)
    dx = (np.diff(image, axis=1) ** 2).sum(axis=2)
    dy = (np.diff(image, axis=0) ** 2).sum(axis=2)
    on_x, on_y = np.isin(np.arange(1, 9), lines_x), np.isin(np.arange(1, 1100), lines_y)
    border = np.concatenate([dx[:, on_x].ravel(), dy[on_y].ravel()]).mean()
    other = np.concatenate([dx[:, ~on_x].ravel(), dy[~on_y].ravel()]).mean()
    assert seam_score(image, 5, 5) == pytest.approx(border / other, rel=1e-12)


def test_a_progress_callback_counts_every_tile_and_can_stop_the_work():
    calls = []
    translate_image(random_image(40, 50), identity, 16, overlap=4, batch_size=3,
                    progress=lambda done, total: calls.append((done, total)))  # fmt: skip
    total = plan_tiles(40, 50, 16, 4).rows * plan_tiles(40, 50, 16, 4).cols
    assert calls[0] == (0, total) and calls[-1] == (total, total)
    assert [done for done, _ in calls] == sorted({done for done, _ in calls})  # increasing

    class Stop(Exception):
        pass

    def stop_after_first_batch(done: int, total: int) -> None:
        if done:
            raise Stop

    with pytest.raises(Stop):
        translate_image(random_image(40, 50), identity, 16, progress=stop_after_first_batch)
