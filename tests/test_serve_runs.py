"""The web page's view of run folders (status rule, incremental log reads, path checks) and of
uploads, on synthetic folders and files: no training, no server."""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from gankit.serve.runs import JsonlReader, PathRefused, RunScanner, resolve_inside, thin
from gankit.serve.uploads import UploadError, check_declared, decode_upload


def make_run(
    folder: Path,
    steps: int = 10,
    logged: int = 10,
    exported: bool = False,
    age: float = 0.0,
    log_lines: tuple[str, ...] = (),
) -> Path:
    """A run folder as the trainer leaves it: config, ``logged`` steps of losses, optionally an
    export written after them; every file ``age`` seconds old."""
    folder.mkdir(parents=True)
    config = {
        "family": "dcgan",
        "data": {"source": "mnist-bundled", "resolution": 16},
        "train": {"steps": steps, "log_every": 1, "batch_size": 8},
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    records = [{"step": s, "loss_d": 1.0, "images_per_s": 1000.0} for s in range(1, logged + 1)]
    (folder / "losses.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    start = "2026-01-01 00:00:00,000 INFO training dcgan on digits, 10 steps, device cpu, run"
    (folder / "log.txt").write_text("\n".join([start, *log_lines]) + "\n")
    then = time.time() - age
    for path in folder.rglob("*"):
        os.utime(path, (then, then))
    if exported:
        (folder / "export").mkdir()
        (folder / "export" / "config.json").write_text("{}")
        os.utime(folder / "export" / "config.json", (then + 0.5, then + 0.5))
    return folder


def status(folder: Path, stale_after: float = 60) -> str:
    return RunScanner(folder.parent, stale_after).summary(folder).status


def test_status_follows_what_the_trainer_wrote(tmp_path):
    assert status(make_run(tmp_path / "done", exported=True, age=3600)) == "finished"
    assert status(make_run(tmp_path / "busy", logged=4, age=5)) == "running"
    assert status(make_run(tmp_path / "dead", logged=4, age=3600)) == "crashed"
    stop = "2026-01-01 00:01:00,000 WARNING SIGTERM received at step 4: saving and stopping"
    assert status(make_run(tmp_path / "halt", logged=4, age=3600, log_lines=(stop,))) == "stopped"
    # a stop line before the latest start belongs to an earlier session
    again = "2026-01-01 00:02:00,000 INFO training dcgan on digits, 10 steps, device cpu, run"
    assert status(make_run(tmp_path / "re", logged=4, age=3600, log_lines=(stop, again))) == (
        "crashed"
    )


def test_a_resumed_run_is_not_finished_by_its_old_export(tmp_path):
    run = make_run(tmp_path / "run", exported=True, age=3600)
    (run / "config.yaml").touch()  # `gankit train --resume` rewrites the config when it starts
    assert status(run) == "running"
    old = time.time() - 3600
    os.utime(run / "config.yaml", (old + 1, old + 1))
    assert status(run) == "crashed"  # newer than the export, quiet, no stop line


def test_an_export_before_the_last_step_is_not_a_finish(tmp_path):
    # `gankit export` on a run that crashed at step 4 of 10
    assert status(make_run(tmp_path / "run", logged=4, exported=True, age=3600)) == "crashed"


def test_slow_runs_get_a_longer_stale_window(tmp_path):
    run = make_run(tmp_path / "slow", logged=4, age=600)
    records = [{"step": 4, "loss_d": 1.0, "images_per_s": 0.05}]  # 160 s per log line
    (run / "losses.jsonl").write_text(json.dumps(records[0]) + "\n")
    then = time.time() - 300
    os.utime(run / "losses.jsonl", (then, then))
    os.utime(run / "log.txt", (then, then))
    os.utime(run / "config.yaml", (then, then))
    assert status(run, stale_after=60) == "running"  # 300 s < 3 x 160 s


def test_runs_are_found_below_the_folder_but_not_inside_runs(tmp_path):
    make_run(tmp_path / "a")
    make_run(tmp_path / "group" / "b")
    make_run(tmp_path / "a" / "samples" / "not-a-run")
    (tmp_path / ".hidden").mkdir()
    make_run(tmp_path / ".hidden" / "c")
    scanner = RunScanner(tmp_path)
    assert sorted(s.id for s in scanner.summaries()) == ["a", "group/b"]
    assert scanner.folder("group/b") == (tmp_path / "group" / "b").resolve()


def test_jsonl_reader_reads_appended_lines_only_when_complete(tmp_path):
    path = tmp_path / "losses.jsonl"
    reader = JsonlReader()
    assert reader.read(path) == []
    path.write_text('{"step": 1}\n{"step": 2}\n{"step": 3')  # a line being written
    assert [r["step"] for r in reader.read(path)] == [1, 2]
    with path.open("a") as file:
        file.write('}\nnot json\n{"step": 4}\n')
    assert [r["step"] for r in reader.read(path)] == [1, 2, 3, 4]
    path.write_text('{"step": 1}\n')  # truncated by a resume: read afresh
    assert [r["step"] for r in reader.read(path)] == [1]


def test_thin_keeps_the_first_and_last_records():
    records = [{"step": s} for s in range(10_001)]
    kept = thin(records, 1000)
    assert len(kept) <= 1001 and kept[0]["step"] == 0 and kept[-1]["step"] == 10_000
    assert thin(records[:5], 1000) == records[:5]


@pytest.mark.parametrize(
    "relative", ["../x", "a/../../x", "/etc/passwd", "C:/Windows", "a\x00b", "..", "a/../.."]
)
def test_paths_out_of_the_runs_folder_are_refused(tmp_path, relative):
    (tmp_path / "a").mkdir()
    with pytest.raises(PathRefused):
        resolve_inside(tmp_path / "a", relative)


def test_paths_inside_are_resolved(tmp_path):
    assert resolve_inside(tmp_path, "a/../b/c.png") == (tmp_path / "b" / "c.png").resolve()


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def test_uploads_are_decoded_to_what_a_translator_takes():
    rgb = Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 30, 3), np.uint8))
    for fmt in ("PNG", "JPEG", "WEBP", "BMP", "GIF"):
        upload = decode_upload(_encode(rgb, fmt), max_pixels=10_000)
        assert upload.size == (30, 20) and upload.format == fmt
        assert upload.image.mode in ("RGB", "L")
    rgba = Image.fromarray(np.zeros((5, 6, 4), np.uint8))
    assert decode_upload(_encode(rgba, "PNG"), 100).image.mode == "RGB"


def test_exif_orientation_is_applied():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees: the camera held upright
    data = _encode(Image.new("RGB", (40, 10)), "JPEG", exif=exif.tobytes())
    assert decode_upload(data, 10_000).size == (10, 40)


def test_label_maps_keep_their_indices():
    indices = np.arange(12, dtype=np.uint8).reshape(3, 4)
    paletted = Image.fromarray(indices).convert("P")
    upload = decode_upload(_encode(paletted, "PNG"), 100, labels=True)
    assert np.array_equal(np.asarray(upload.image), indices)
    with pytest.raises(UploadError, match="label maps"):
        decode_upload(_encode(Image.new("RGB", (4, 3)), "PNG"), 100, labels=True)


def test_declared_headers_are_checked_before_reading():
    check_declared("image/png", "100", 100)
    check_declared(None, None, 100)
    for content_type, length, status in [
        ("image/png", "101", 413),
        ("text/plain", "5", 415),
        ("image/png", "many", 400),
    ]:
        with pytest.raises(UploadError) as caught:
            check_declared(content_type, length, 100)
        assert caught.value.status == status
