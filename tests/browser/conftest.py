"""A ``gankit serve`` process on a runs folder of tiny trained runs, and a headless Chromium page.

The browser is Debian's ``chromium`` (``make test`` installs it with apt-get when it runs as
root), driven by the Playwright package pinned in requirements-dev.lock; Playwright's own
browser downloads are never used (they come from a CDN, unreachable offline). ``GANKIT_CHROMIUM``
points at another Chromium/Chrome binary. Without one, these tests skip with that reason.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_serve_api import serve_runs

MAX_UPLOAD_MB = 0.25  # small, so that the oversized-upload test needs only a small file
# Headless, no sandbox (tests run as root in CI), and no background connections: the machine's
# network is closed and Chromium would otherwise keep trying to reach Google's services.
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
    "--disable-default-apps",
]


def find_chromium() -> str | None:
    """$GANKIT_CHROMIUM, else chromium / chromium-browser / google-chrome on the PATH."""
    names = ("chromium", "chromium-browser", "google-chrome")
    candidates = [os.environ.get("GANKIT_CHROMIUM"), *(shutil.which(n) for n in names)]
    return next((c for c in candidates if c and Path(c).is_file()), None)


def _skip_reason() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "no Playwright: install requirements-dev.lock (make test does)"
    if find_chromium() is None:
        return (
            "no Chromium: `apt-get install chromium` (make test does this when run as root) "
            "or set GANKIT_CHROMIUM to a Chromium/Chrome binary"
        )
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = _skip_reason()
    if reason:
        for item in items:
            if "tests/browser" in item.nodeid:
                item.add_marker(pytest.mark.skip(reason=reason))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_until_up(url: str, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gankit serve exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/api/config", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"gankit serve did not answer at {url} within {timeout} s")


@pytest.fixture(scope="session")
def runs_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return serve_runs(tmp_path_factory)


@pytest.fixture(scope="session")
def server(runs_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of ``gankit serve RUNS --port P`` running in its own process."""
    port = _free_port()
    log = (tmp_path_factory.getbasetemp() / "serve.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gankit",
            "serve",
            str(runs_root),
            "--port",
            str(port),
            "--max-upload-mb",
            str(MAX_UPLOAD_MB),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, process)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=find_chromium(), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the tests save their screenshots (kept with pytest's temporary folders)."""
    return tmp_path_factory.mktemp("screenshots", numbered=False)


@pytest.fixture
def page(browser: object, server: str) -> Iterator[object]:
    """A fresh page; uncaught JavaScript errors fail the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=server)
    page = context.new_page()
    page.set_default_timeout(30_000)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors: {errors}"
