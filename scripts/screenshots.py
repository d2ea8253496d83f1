"""The README's screenshots of ``gankit serve``, one per page, from real runs.

    python scripts/screenshots.py                      # runs/ (trains what is missing there)
    python scripts/screenshots.py --runs runs --out docs/serve

1. Looks in ``--runs`` for a finished noise-to-image generator with metrics (e.g. the zoo's
   runs from ``python benchmarks/zoo.py``) and a translator; trains what is missing into
   ``RUNS/screenshots/``: CGAN (conv, 28 px, ``--generator-steps``) on the bundled digits with
   digit-fd, and pix2pix digits -> edges (``--translator-steps``).
2. Starts a DCGAN run on the bundled digits in the background (``RUNS/screenshots/live``), so
   that the runs page and the live view show a run while it trains; it is stopped with SIGTERM
   at the end (its status then reads "stopped").
3. Starts ``gankit serve RUNS`` and photographs each page in Debian's headless Chromium through
   Playwright: ``runs.png``, ``live.png``, ``explore.png`` (a class chosen, the interpolation
   slider half-way), ``translate.png`` (a 256 x 128 sheet of held-out digits translated, the
   comparison slider at 45 %) and ``compare.png``.

Needs the serve extra, the dev requirements (Playwright) and ``chromium`` (apt) or
``GANKIT_CHROMIUM``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless=new",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
VIEWPORT = {"width": 1280, "height": 860}


def gankit(*args: str) -> None:
    """Run ``python -m gankit ARGS`` and stop on failure."""
    print("+ gankit", " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "gankit", *args], check=True)


def runs_in(root: Path) -> list[dict[str, Any]]:
    """The runs the page would list, as /api/runs describes them."""
    from gankit.serve.runs import RunScanner

    return [s.to_json() for s in RunScanner(root).summaries()]


def ensure_runs(root: Path, generator_steps: int, translator_steps: int) -> None:
    """Train a generator with metrics and a translator under root/screenshots unless there are."""
    runs = [r for r in runs_in(root) if r["status"] == "finished"]
    own = root / "screenshots"
    if not any(r["task"] == "generate" and r["metrics"] for r in runs):
        shutil.rmtree(own / "cgan", ignore_errors=True)
        gankit(
            "train",
            "cgan",
            "--data",
            "mnist-bundled",
            "--out",
            str(own / "cgan"),
            "--set",
            "model.architecture=conv",
            "--set",
            "model.g_width=32",
            "--set",
            "model.d_width=32",
            "--set",
            "model.latent_dim=64",
            "--set",
            "data.resolution=28",
            "--set",
            "data.channels=1",
            "--set",
            f"train.steps={generator_steps}",
            "--set",
            "train.sample_every=250",
            "--set",
            "eval.metrics=[digit-fd]",
            "--set",
            "eval.n=2000",
            "--set",
            f"eval.every={max(1, generator_steps // 3)}",
        )
    if not any(r["task"] == "translate" for r in runs):
        shutil.rmtree(own / "pix2pix", ignore_errors=True)
        gankit(
            "train",
            "pix2pix",
            "--data",
            "digits-edges",
            "--out",
            str(own / "pix2pix"),
            "--set",
            f"train.steps={translator_steps}",
            "--set",
            "train.checkpoint_every=0",
            "--set",
            "train.sample_every=100",
        )


@contextlib.contextmanager
def live_run(root: Path, min_step: int) -> Iterator[Path]:
    """A DCGAN run training in the background until the block ends (then SIGTERM: stopped)."""
    folder = root / "screenshots" / "live"
    shutil.rmtree(folder, ignore_errors=True)
    command = [
        sys.executable,
        "-m",
        "gankit",
        "train",
        "dcgan",
        "--data",
        "mnist-bundled",
        "--out",
        str(folder),
        "--set",
        "train.steps=20000",
        "--set",
        "train.log_every=10",
        "--set",
        "train.sample_every=50",
        "--set",
        "eval.metrics=[]",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 900
        while not _logged_step(folder) >= min_step or not list(folder.glob("samples/*.png")):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the live run did not reach step {min_step}")
            time.sleep(1)
        yield folder
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(120)


def _logged_step(folder: Path) -> int:
    try:
        lines = (folder / "losses.jsonl").read_text().splitlines()
        return int(json.loads(lines[-1])["step"]) if lines else 0
    except (OSError, ValueError, KeyError):
        return 0


@contextlib.contextmanager
def server(root: Path) -> Iterator[str]:
    """``gankit serve ROOT`` on a free port, for the duration of the block."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "gankit", "serve", str(root), "--port", str(port)]
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/api/config"):
                break
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(30)


def digit_sheet(path: Path, columns: int = 8, rows: int = 4) -> Path:
    """Held-out bundled digits (the last ones), 32 px cells: a 256 x 128 input to translate."""
    import numpy as np
    from PIL import Image

    from gankit.data.idx import read_idx

    digits = read_idx(REPO / "src/gankit/data/bundled/t10k-images-idx3-ubyte.gz")[-columns * rows :]
    sheet = np.zeros((rows * 32, columns * 32), np.uint8)
    for index, digit in enumerate(digits):
        row, col = divmod(index, columns)
        sheet[row * 32 + 2 : row * 32 + 30, col * 32 + 2 : col * 32 + 30] = digit
    Image.fromarray(sheet).save(path)
    return path


def best_generator(runs: list[dict[str, Any]]) -> str:
    """The finished generator with the lowest first metric, conditional ones first."""
    scored = [r for r in runs if r["task"] == "generate" and r["status"] == "finished"]
    conditional = [r for r in scored if r["family"] in ("cgan", "biggan", "sagan")] or scored

    def score(run: dict[str, Any]) -> float:
        values = [m["value"] for m in run["metrics"].values()]
        return values[0] if values else float("inf")

    return min(conditional, key=score)["id"]


def photograph(url: str, root: Path, live: Path, out: Path, work: Path) -> None:
    from playwright.sync_api import sync_playwright

    from gankit.serve.runs import RunScanner

    runs = runs_in(root)
    live_id = RunScanner(root).run_id(live)
    generator = best_generator(runs)
    finished = [r for r in runs if r["status"] == "finished"]
    translator = next(r["id"] for r in finished if r["task"] == "translate")
    chromium = os.environ.get("GANKIT_CHROMIUM") or shutil.which("chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport=VIEWPORT, base_url=url)
        page.set_default_timeout(60_000)

        page.goto("/")
        page.wait_for_selector(f'tr[data-run="{live_id}"] [data-status="running"]')
        page.wait_for_timeout(1500)  # thumbnails
        page.screenshot(path=out / "runs.png", full_page=True)

        page.goto(f"/run?run={live_id}")
        page.wait_for_selector("[data-status='running']")
        page.wait_for_selector("path[data-series='loss_d']")
        page.wait_for_timeout(1000)
        page.screenshot(path=out / "live.png", full_page=True)

        page.goto(f"/explore?run={generator}")
        page.wait_for_selector("#frame[data-frame='0']")
        if page.is_visible("#class-box"):
            page.select_option("#class", "7")
            page.fill("#seed", "11")
            page.click("#sample")
            page.wait_for_function(
                "() => document.querySelector('#grid-caption').textContent.includes('class 7')"
            )
        page.locator("#t").fill("7")
        page.wait_for_selector("#frame[data-frame='7']")
        page.screenshot(path=out / "explore.png", full_page=True)

        page.goto(f"/translate?run={translator}")
        page.wait_for_selector(f"#run option[value='{translator}']", state="attached")
        page.set_input_files("#file", str(digit_sheet(work / "digits.png")))
        page.wait_for_selector("#result-card:not(.hidden)")
        page.locator("#split").fill("45")
        page.wait_for_timeout(500)
        page.screenshot(path=out / "translate.png", full_page=True)

        page.goto("/compare")
        page.wait_for_selector("#compare-table")
        page.wait_for_timeout(1500)
        page.screenshot(path=out / "compare.png", full_page=True)
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=Path, default=REPO / "runs", help="The runs folder.")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "serve")
    parser.add_argument("--generator-steps", type=int, default=1500)
    parser.add_argument("--translator-steps", type=int, default=400)
    parser.add_argument("--live-step", type=int, default=150, help="Live run's step when shot.")
    args = parser.parse_args()
    args.runs.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    ensure_runs(args.runs, args.generator_steps, args.translator_steps)
    work = args.runs / "screenshots"
    with live_run(args.runs, args.live_step) as live, server(args.runs) as url:
        photograph(url, args.runs, live, args.out, work)
    print(f"wrote {', '.join(sorted(p.name for p in args.out.glob('*.png')))} to {args.out}")


if __name__ == "__main__":
    main()
