"""``gankit serve`` through its HTTP API (Starlette's TestClient, no browser): listing runs,
sampling, interpolating, translating, and refusing traversal, oversized, non-image and bomb
uploads. The browser tests (tests/browser/) cover the pages on top of this."""

from __future__ import annotations

import io
import itertools
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from starlette.testclient import TestClient

from gankit.api import export
from gankit.serve.app import ServeSettings, create_app
from gankit.serve.generators import GeneratorCache
from gankit.training import Trainer
from tests.conftest import run_gankit, tiny_config
from tests.test_hostile import bomb_png

NOISE = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
HOST = "http://127.0.0.1"  # a loopback Host header: the app refuses others by default


def serve_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A runs folder with three tiny finished runs, trained once per test session:
    ``gen`` (cgan: classes, digit-fd metrics, sample grids), ``big`` (biggan: truncation) and
    ``translator`` (cyclegan on digits -> edges)."""
    root = tmp_path_factory.getbasetemp() / "serve-runs"
    if (root / ".complete").is_file():
        return root
    gen = tiny_config(
        "cgan",
        "train.steps=6",
        "train.sample_every=3",
        "train.log_every=1",
        "eval.metrics=[digit-fd]",
        "eval.n=64",
        "eval.every=3",
    )
    Trainer(gen, root / "gen").fit()
    Trainer(tiny_config("biggan", "train.steps=2"), root / "big").fit()
    Trainer(tiny_config("cyclegan", "train.steps=2"), root / "translator").fit()
    (root / ".complete").touch()
    return root


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory):
    return serve_runs(tmp_path_factory)


@pytest.fixture(scope="module")
def client(runs_root):
    settings = ServeSettings(runs_root, max_upload_bytes=200_000, max_upload_pixels=1_000_000)
    with TestClient(create_app(settings), base_url=HOST) as test_client:
        yield test_client


def png(array: np.ndarray, **save: object) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", **save)
    return buffer.getvalue()


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def wait_for(client: TestClient, job_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s")


# ---------------------------------------------------------------------------------------------
# Runs


def test_runs_lists_every_run_with_family_status_metrics_and_grid(client):
    runs = {run["id"]: run for run in client.get("/api/runs").json()["runs"]}
    assert {"gen", "big", "translator"} <= set(runs)
    gen = runs["gen"]
    assert (gen["family"], gen["task"], gen["dataset"]) == ("cgan", "generate", "mnist-bundled")
    assert (gen["step"], gen["steps"], gen["status"]) == (6, 6, "finished")
    assert gen["metrics"]["digit-fd"]["n"] == 64 and gen["metrics"]["digit-fd"]["step"] == 6
    assert gen["sample"] == "gen/samples/step-000006.png" and gen["images_per_s"] > 0
    assert runs["translator"]["task"] == "translate"
    grid = client.get(f"/files/{gen['sample']}")
    assert grid.status_code == 200 and grid.headers["content-type"] == "image/png"


def test_run_detail_has_losses_metrics_and_config(client):
    detail = client.get("/api/run", params={"run": "gen"}).json()
    assert [r["step"] for r in detail["losses"]] == [1, 2, 3, 4, 5, 6]
    assert {"loss_d", "loss_g"} <= set(detail["losses"][0])
    assert [(m["metric"], m["step"]) for m in detail["metrics"]] == [
        ("digit-fd", 3),
        ("digit-fd", 6),
    ]
    assert detail["config"]["family"] == "cgan" and detail["run"]["status"] == "finished"


def test_an_unknown_run_is_a_404_with_one_line(client):
    for path in ("/api/run", "/api/capabilities", "/api/sample.png", "/api/interpolate.png"):
        for run in ("nope", "../..", "/etc", "gen/samples"):
            answer = client.get(path, params={"run": run})
            assert answer.status_code == 404, (path, run)
            assert "no run" in answer.json()["error"] and "\n" not in answer.json()["error"]
    assert client.get("/api/run").status_code == 400  # no run named at all


# ---------------------------------------------------------------------------------------------
# Explore: sample and interpolate


def test_capabilities_follow_the_family(client):
    gen = client.get("/api/capabilities", params={"run": "gen"}).json()
    assert gen["conditional"] and gen["num_classes"] == 10 and not gen["truncation"]
    assert gen["image_shape"] == [1, 8, 8] and not gen["translator"]
    big = client.get("/api/capabilities", params={"run": "big"}).json()
    assert big["truncation"] and big["conditional"]
    translator = client.get("/api/capabilities", params={"run": "translator"}).json()
    assert translator["translator"] and translator["image_shape"] == [1, 16, 16]


def test_sample_gives_the_same_grid_for_a_seed_and_a_new_one_for_another(client):
    def grid(**params):
        answer = client.get("/api/sample.png", params={"run": "gen", "n": 9, **params})
        assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
        return decode(answer.content)

    first = grid(seed=1)
    assert first.shape == (3 * 10 + 2, 3 * 10 + 2)  # 3 x 3 grid of 8 x 8 with 2 px padding
    assert np.array_equal(first, grid(seed=1))
    assert not np.array_equal(first, grid(seed=2))
    assert not np.array_equal(grid(seed=1, **{"class": 3}), grid(seed=1, **{"class": 4}))
    truncated = client.get("/api/sample.png", params={"run": "big", "truncation": 0.3})
    assert truncated.status_code == 200
    wide = client.get("/api/sample.png", params={"run": "big", "truncation": 2})  # any t > 0
    assert wide.status_code == 200


def test_bad_sampling_requests_are_refused_with_one_line(client):
    cases = [
        ({"run": "gen", "class": 10}, "out of range"),
        ({"run": "gen", "n": 1000}, "n must lie in"),
        ({"run": "gen", "seed": "x"}, "expected an integer"),
        ({"run": "gen", "truncation": 0.5}, "does not support truncation"),
        ({"run": "big", "truncation": 0}, "truncation must be > 0"),
        ({"run": "translator"}, "translator"),
    ]
    for params, message in cases:
        answer = client.get("/api/sample.png", params=params)
        assert answer.status_code == 400 and message in answer.json()["error"], (
            params,
            answer.text,
        )


def test_interpolation_strip_runs_from_seed_a_to_seed_b(client):
    params = {"run": "gen", "seed_a": 4, "seed_b": 9, "steps": 6, "class": 2}
    strip = decode(client.get("/api/interpolate.png", params=params).content)
    assert strip.shape == (8, 6 * 8)

    def single(seed):  # one sample: a 1 x 1 grid with 2 px of padding around it
        answer = client.get(
            "/api/sample.png", params={"run": "gen", "n": 1, "seed": seed, "class": 2}
        )
        return decode(answer.content)[2:-2, 2:-2]

    assert np.array_equal(strip[:, :8], single(4))  # frame 0 is seed A's image
    assert np.abs(strip[:, -8:].astype(int) - single(9)).max() <= 1  # the last is seed B's
    frames = [strip[:, 8 * i : 8 * i + 8] for i in range(6)]
    assert all(not np.array_equal(a, b) for a, b in itertools.pairwise(frames))
    too_many = client.get("/api/interpolate.png", params={**params, "steps": 500})
    assert too_many.status_code == 400


def test_the_generator_is_reloaded_when_its_weights_change(runs_root, tmp_path):
    run = tmp_path / "run"
    Trainer(tiny_config("dcgan", "train.steps=1"), run).fit()
    cache = GeneratorCache()
    first = cache.get(run)
    assert cache.get(run) is first
    Trainer(tiny_config("dcgan", "train.steps=2"), run, resume=True).fit()  # new weights
    second = cache.get(run)
    assert second is not first
    assert not np.array_equal(first.generator.sample(2, seed=0), second.generator.sample(2, seed=0))
    export(run)  # rewritten with the same weights: reloaded all the same, nothing stale kept
    assert cache.get(run) is not second


# ---------------------------------------------------------------------------------------------
# Translate


def test_an_upload_is_translated_at_its_own_size_with_progress(client):
    rgb = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    answer = client.post(
        "/api/translate",
        params={"run": "translator", "name": "photo.png"},
        content=png(rgb),
        headers={"content-type": "image/png"},
    )
    assert answer.status_code == 202, answer.text
    job = wait_for(client, answer.json()["id"])
    assert job["status"] == "done", job
    assert job["input_size"] == [53, 37] and job["output_size"] == [53, 37]
    assert job["tiles_total"] > 1 and job["tiles_done"] == job["tiles_total"]
    result = client.get(job["result"])
    assert result.status_code == 200 and Image.open(io.BytesIO(result.content)).size == (53, 37)
    assert Image.open(io.BytesIO(client.get(job["input"]).content)).size == (53, 37)
    download = client.get(job["result"], params={"download": "1"})
    assert download.headers["content-disposition"].startswith("attachment")
    assert "photo-translator.png" in download.headers["content-disposition"]
    assert client.get(f"/api/jobs/{job['id']}/other.png").status_code == 404
    assert client.get("/api/jobs/0123456789abcdef/result.png").status_code == 404


@pytest.mark.parametrize(
    ("body", "content_type", "status", "message"),
    [
        (b"x" * 200_001, "image/png", 413, "more than the limit of 200,000"),
        (b"hello, I am text", "image/png", 415, "not an image"),
        (png(NOISE)[:2000], "image/png", 400, "damaged"),
        (b"\x80\x04\x95 pickled", "application/octet-stream", 415, "not an image"),
        (bomb_png(), "image/png", 413, "more than 1,000,000 pixels (a decompression bomb?)"),
        (bomb_png(2000, 2000), "image/png", 413, "2000 x 2000 pixels is more than the limit"),
        (b"", "image/png", 400, "empty"),
        (b"<svg/>", "text/html", 415, "is not an image"),
    ],
    ids=["oversized", "text", "truncated", "pickle", "bomb", "too-many-pixels", "empty", "html"],
)
def test_bad_uploads_are_refused_with_a_clear_message(client, body, content_type, status, message):
    answer = client.post(
        "/api/translate",
        params={"run": "translator"},
        content=body,
        headers={"content-type": content_type},
    )
    assert answer.status_code == status, answer.text
    assert message in answer.json()["error"] and "\n" not in answer.json()["error"]


def test_an_oversized_upload_without_a_length_is_cut_off_while_reading(client):
    sent = []

    def chunks():  # chunked transfer: no Content-Length to check up front
        for _ in range(100):
            sent.append(1)
            yield b"\x89PNG" + b"\0" * 9996

    answer = client.post(
        "/api/translate",
        params={"run": "translator"},
        content=chunks(),
        headers={"content-type": "image/png"},
    )
    assert answer.status_code == 413 and "more than the limit" in answer.json()["error"]


def test_translating_needs_a_translator(client):
    answer = client.post(
        "/api/translate",
        params={"run": "gen"},
        content=png(np.zeros((8, 8), np.uint8)),
        headers={"content-type": "image/png"},
    )
    assert answer.status_code == 400 and "not a translator" in answer.json()["error"]


def test_a_slow_translation_does_not_block_the_rest_of_the_page(runs_root):
    release, started = threading.Event(), threading.Event()

    def slow(generator, image, progress):
        progress(0, 1)
        started.set()
        release.wait(30)
        progress(1, 1)
        return np.zeros((image.size[1], image.size[0], 1), np.uint8)

    app = create_app(ServeSettings(runs_root), translate=slow)
    with TestClient(app, base_url=HOST) as client:
        posted = client.post(
            "/api/translate",
            params={"run": "translator"},
            content=png(np.zeros((20, 30), np.uint8)),
            headers={"content-type": "image/png"},
        )
        job_id = posted.json()["id"]
        assert started.wait(30)
        start = time.monotonic()
        assert client.get("/api/runs").status_code == 200
        assert client.get("/api/sample.png", params={"run": "gen"}).status_code == 200
        assert client.get("/").status_code == 200
        assert time.monotonic() - start < 20
        assert client.get(f"/api/jobs/{job_id}").json()["status"] == "running"
        release.set()
        assert wait_for(client, job_id)["status"] == "done"


# ---------------------------------------------------------------------------------------------
# Files and security


def test_files_are_served_only_from_inside_the_runs_folder(client, runs_root, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    link = runs_root / "gen" / "link.txt"
    if not link.is_symlink():
        os.symlink(secret, link)
    refused = [
        "/files/..%2F..%2F..%2Fetc%2Fpasswd",
        "/files/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/files/gen/..%2F..%2Fserve-runs-outside.txt",
        "/files//etc/passwd",
        "/files/gen/link.txt",  # a symlink pointing out of the runs folder
    ]
    for url in refused:
        answer = client.get(url)
        assert answer.status_code in (403, 404), url
        assert "root:" not in answer.text and "top secret" not in answer.text
    assert client.get("/files/%2e%2e/%2e%2e/%2e%2e/etc/passwd").status_code == 403
    assert client.get("/files/gen/checkpoints/latest.pt").status_code == 404  # not an image/log
    assert client.get("/files/gen/config.yaml").status_code == 200
    assert client.get("/files/gen/log.txt").headers["content-type"].startswith("text/plain")


def test_pages_and_headers(client):
    for page in ("/", "/run", "/explore", "/translate", "/compare"):
        answer = client.get(page)
        assert answer.status_code == 200 and '<header id="top">' in answer.text
        assert "default-src 'self'" in answer.headers["content-security-policy"]
        assert answer.headers["x-content-type-options"] == "nosniff"
    assert client.get("/static/common.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/static/../app.py").status_code == 404
    # DNS rebinding: a page from another site resolving to 127.0.0.1 sends its own Host
    assert client.get("/api/runs", headers={"host": "evil.example"}).status_code == 400


def test_the_serve_command_refuses_a_missing_folder_in_one_line(tmp_path):
    result = run_gankit("serve", str(tmp_path / "missing"))
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("gankit: error:") and "no such folder" in line
    assert "127.0.0.1" in run_gankit("serve", "--help").stdout
