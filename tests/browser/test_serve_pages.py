"""The pages of ``gankit serve`` in headless Chromium against a real server on tiny trained runs:
the runs page, sampling, the interpolation slider, translating an upload, refusals, the live
view and the comparison. Each test saves a screenshot in the session's screenshots folder."""

from __future__ import annotations

import json
import shutil
import time

import numpy as np
from PIL import Image

from tests.browser.conftest import MAX_UPLOAD_MB

# The pixels an <img> or <canvas> shows, as a data URL: equal URLs, equal pictures.
PIXELS_JS = """(selector) => {
  const node = document.querySelector(selector);
  if (node instanceof HTMLCanvasElement) return node.toDataURL();
  const canvas = document.createElement("canvas");
  canvas.width = node.naturalWidth; canvas.height = node.naturalHeight;
  canvas.getContext("2d").drawImage(node, 0, 0);
  return canvas.toDataURL();
}"""
LOADED_JS = (
    "(selector) => { const i = document.querySelector(selector); "
    "return !!i && i.complete && i.naturalWidth > 0; }"
)


def test_the_runs_page_lists_the_runs(page, screenshots):
    page.goto("/")
    row = page.locator('tr[data-run="gen"]')
    row.wait_for()
    assert "cgan" in row.inner_text() and "finished" in row.inner_text()
    assert "digit-fd" in row.inner_text()
    assert page.locator('tr[data-run="translator"]').get_attribute("data-run") == "translator"
    page.wait_for_function(LOADED_JS, arg='tr[data-run="gen"] img.thumb')
    page.screenshot(path=screenshots / "runs.png", full_page=True)


def test_the_sample_button_produces_a_new_grid(page, screenshots):
    page.goto("/explore?run=gen")
    page.wait_for_function(LOADED_JS, arg="#grid")
    page.wait_for_selector("#class-box:not(.hidden)")  # cgan: a class to choose
    before = page.evaluate(PIXELS_JS, "#grid")
    seed_before = page.get_attribute("#grid", "data-seed")
    page.click("#sample-new")
    page.wait_for_function(
        "(seed) => document.querySelector('#grid').dataset.seed !== seed", arg=seed_before
    )
    page.wait_for_function(LOADED_JS, arg="#grid")
    after = page.evaluate(PIXELS_JS, "#grid")
    assert after != before
    page.select_option("#class", "3")
    page.click("#sample")
    page.wait_for_function(
        "() => document.querySelector('#grid-caption').textContent.includes('class 3')"
    )
    page.screenshot(path=screenshots / "explore-sample.png", full_page=True)


def test_the_truncation_slider_reaches_above_one(page):
    page.goto("/explore?run=big")  # biggan: truncation, which the API takes for any t > 0
    page.wait_for_selector("#trunc-box:not(.hidden)")
    page.check("#trunc-on")
    page.locator("#truncation").fill("1.5")
    page.click("#sample")
    page.wait_for_function(
        "() => document.querySelector('#grid-caption').textContent.includes('truncation 1.5')"
    )
    page.wait_for_function(LOADED_JS, arg="#grid")


def test_the_interpolation_slider_changes_the_image(page, screenshots):
    page.goto("/explore?run=gen")
    page.wait_for_selector("#frame[data-frame='0']")
    first = page.evaluate(PIXELS_JS, "#frame")
    page.locator("#t").fill("15")  # the last of 16 frames
    page.wait_for_selector("#frame[data-frame='15']")
    last = page.evaluate(PIXELS_JS, "#frame")
    assert last != first
    page.locator("#t").fill("7")
    page.wait_for_selector("#frame[data-frame='7']")
    assert page.evaluate(PIXELS_JS, "#frame") not in (first, last)
    page.screenshot(path=screenshots / "explore-interpolate.png", full_page=True)


def test_an_upload_returns_a_translated_image_of_the_same_size(page, screenshots, tmp_path):
    photo = tmp_path / "photo.png"
    rgb = np.random.default_rng(1).integers(0, 256, (45, 70, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(photo)
    page.goto("/translate?run=translator")
    page.wait_for_selector("#run option[value='translator']", state="attached")
    page.set_input_files("#file", str(photo))
    page.wait_for_selector("#result-card:not(.hidden)")
    page.wait_for_function(LOADED_JS, arg="#result")
    size = page.evaluate(
        "() => [document.querySelector('#result').naturalWidth, "
        "document.querySelector('#result').naturalHeight]"
    )
    assert size == [70, 45]
    assert "Done" in page.inner_text("#job-status")
    assert page.get_attribute("#download", "href").endswith("result.png?download=1")
    with page.expect_download() as download:
        page.click("#download")
    saved = tmp_path / "result.png"
    download.value.save_as(saved)
    assert Image.open(saved).size == (70, 45)
    page.locator("#split").fill("20")
    page.screenshot(path=screenshots / "translate.png", full_page=True)


def test_an_oversized_upload_is_refused(page, screenshots, tmp_path):
    big = tmp_path / "big.png"
    noise = np.random.default_rng(2).integers(0, 256, (400, 400, 3), dtype=np.uint8)
    Image.fromarray(noise).save(big)
    assert big.stat().st_size > MAX_UPLOAD_MB * 2**20
    page.goto("/translate?run=translator")
    page.wait_for_selector("#run option[value='translator']", state="attached")
    page.set_input_files("#file", str(big))
    error = page.locator("#error")
    error.wait_for(state="visible")
    assert "refused" in error.inner_text() and "limit" in error.inner_text()
    assert page.locator("#result-card").is_hidden()
    page.screenshot(path=screenshots / "translate-refused.png", full_page=True)


def test_a_path_traversal_url_is_refused(page, server, screenshots):
    # Chromium itself resolves %2e%2e segments before sending (the server then sees /etc/passwd,
    # which is no route); encoded slashes reach the server, which refuses them.
    for url, status in [
        ("/files/%2e%2e/%2e%2e/%2e%2e/etc/passwd", (403, 404)),
        ("/files/gen/%2e%2e%2F%2e%2e%2F%2e%2e%2Fetc/passwd", (403,)),
        ("/files/..%2F..%2F..%2Fetc%2Fpasswd", (403,)),
    ]:
        answer = page.goto(server + url)
        assert answer.status in status, (url, answer.status)
        assert "root:" not in page.content()
    assert "not a path inside the runs folder" in page.content()
    assert page.request.get("/files/gen/checkpoints/latest.pt").status == 404
    page.screenshot(path=screenshots / "traversal-refused.png")


def test_the_live_view_follows_a_training_run(page, runs_root, screenshots):
    live = runs_root / "live"
    shutil.rmtree(live, ignore_errors=True)
    live.mkdir()
    shutil.copy(runs_root / "gen" / "config.yaml", live / "config.yaml")
    (live / "samples").mkdir()
    shutil.copy(runs_root / "gen" / "samples" / "step-000003.png", live / "samples")

    def log(steps):
        with (live / "losses.jsonl").open("a") as file:
            for step in steps:
                record = {
                    "step": step,
                    "loss_d": 1.4 - 0.1 * step,
                    "loss_g": 0.7 + 0.05 * step,
                    "d_real": 0.5,
                    "images_per_s": 200.0 + step,
                }
                file.write(json.dumps(record) + "\n")

    log([1, 2, 3])
    page.goto("/run?run=live")
    page.wait_for_selector("[data-status='running']")
    page.wait_for_function(
        "() => document.querySelector('[data-stat=\"step\"]').textContent.startsWith('3 /')"
    )
    path = page.get_attribute("path[data-series='loss_d']", "d")
    log([4, 5])
    page.wait_for_function(
        "() => document.querySelector('[data-stat=\"step\"]').textContent.startsWith('5 /')",
        timeout=15_000,
    )
    assert page.get_attribute("path[data-series='loss_d']", "d") != path
    page.wait_for_function(LOADED_JS, arg="#grid")
    page.screenshot(path=screenshots / "live.png", full_page=True)
    time.sleep(0.1)


def test_the_compare_page_puts_metrics_side_by_side(page, screenshots):
    page.goto("/compare?runs=gen,big")
    table = page.locator("#compare-table")
    table.wait_for()
    assert "gen" in table.inner_text() and "big" in table.inner_text()
    assert page.locator("#compare-table td[data-metric='digit-fd']").count() == 1
    page.wait_for_selector("#chart path[data-series='gen']")
    page.screenshot(path=screenshots / "compare.png", full_page=True)
