"""The web app: pages, the JSON/PNG API behind them, and the files of the runs folder.

Pages are static HTML with a little vanilla JS (``static/``); everything is served from this
package: no CDN, works offline. Heavy work (loading a generator, sampling, decoding an upload)
runs in worker threads and translations in their own pool, so one slow request never holds the
others.

API (all GET unless said; ``run`` is a run id: its folder relative to the runs folder):

==================================  ===========================================================
``/api/config``                     limits and the runs folder
``/api/runs``                       every run: family, dataset, step, status, metrics, grid
``/api/run?run=``                   one run: summary, loss records, metric records, config
``/api/capabilities?run=``          conditional? classes? truncation? translator?
``/api/sample.png?run=&seed=&n=``   a grid of n samples (``class``, ``truncation`` optional)
``/api/interpolate.png?run=&...``   ``seed_a``, ``seed_b``, ``steps``: a strip of frames
``POST /api/translate?run=&name=``  the body is the image file; 202 with a job
``/api/jobs/{id}``                  the job's state and tiles done
``/api/jobs/{id}/input.png``        what was translated (EXIF-rotated, as the translator saw it)
``/api/jobs/{id}/result.png``       the result (``?download=1``: as an attachment)
``/files/{path}``                   an image or log file inside the runs folder, nothing else
==================================  ===========================================================

Errors are JSON ``{"error": "one line"}`` with a 4xx status.
"""

from __future__ import annotations

import contextlib
import mimetypes
import re
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gankit.errors import GankitError
from gankit.serve.generators import GeneratorCache, interpolation_strip, sample_grid
from gankit.serve.jobs import JobQueue, Translate, translate_with_progress
from gankit.serve.runs import (
    STALE_AFTER_S,
    PathRefused,
    RunNotFound,
    RunScanner,
    metric_directions,
    resolve_inside,
    thin,
)
from gankit.serve.uploads import (
    MAX_UPLOAD_BYTES,
    MAX_UPLOAD_PIXELS,
    UploadError,
    check_declared,
    decode_upload,
    read_limited,
)
from gankit.version import __version__

STATIC = Path(__file__).parent / "static"
PAGES = {
    "/": "runs.html",
    "/run": "run.html",
    "/explore": "explore.html",
    "/translate": "translate.html",
    "/compare": "compare.html",
}
SERVED_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".webp", ".jsonl", ".json", ".yaml", ".txt"}
LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "::1", "[::1]"]
# Scripts, styles and images from this server only; blob:/data: for previews of local files.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' blob: data:; "
    "object-src 'none'; frame-ancestors 'none'; base-uri 'none'"
)


@dataclass
class ServeSettings:
    """What ``gankit serve`` was asked for."""

    runs_dir: Path
    device: str = "cpu"  # where generators run
    max_upload_bytes: int = MAX_UPLOAD_BYTES
    max_upload_pixels: int = MAX_UPLOAD_PIXELS
    stale_after: float = STALE_AFTER_S  # seconds of silence before a run is not running
    translate_workers: int = 1  # translations at once (each uses every core already)
    allowed_hosts: list[str] | None = None  # Host headers accepted; None: loopback names only


class SecurityHeaders:
    """Adds no-sniff, no-framing and a same-origin content security policy to every answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers if scope["type"] == "http" else send)


def _error(message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _gankit_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, RunNotFound):
        return _error(str(exc), 404)
    if isinstance(exc, PathRefused):
        return _error(str(exc), 403)
    if isinstance(exc, UploadError):
        return _error(str(exc), exc.status)
    return _error(str(exc), 400)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _error(str(exc.detail), exc.status_code)


def _int(request: Request, name: str, default: int | None = None) -> int | None:
    value = request.query_params.get(name, "")
    if value == "":
        return default
    if not re.fullmatch(r"-?\d{1,18}", value):
        raise GankitError(f"{name}={value!r}: expected an integer")
    return int(value)


def _float(request: Request, name: str) -> float | None:
    value = request.query_params.get(name, "")
    if value == "":
        return None
    try:
        return float(value)
    except ValueError:
        raise GankitError(f"{name}={value!r}: expected a number") from None


def _png(data: bytes) -> Response:
    return Response(data, media_type="image/png", headers={"cache-control": "no-store"})


class Server:
    """The state behind the routes: the run scanner, the generator cache and the job queue."""

    def __init__(self, settings: ServeSettings, translate: Translate) -> None:
        self.settings = settings
        self.scanner = RunScanner(settings.runs_dir, settings.stale_after)
        self.cache = GeneratorCache(device=settings.device)
        self.workdir = Path(tempfile.mkdtemp(prefix="gankit-serve-"))
        self.jobs = JobQueue(
            self.cache, self.workdir, settings.translate_workers, translate=translate
        )

    def close(self) -> None:
        self.jobs.close()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def run_param(self, request: Request) -> tuple[str, Path]:
        run_id = request.query_params.get("run", "")
        if not run_id:
            raise GankitError("which run? add ?run=RUN_ID")
        return run_id, self.scanner.folder(run_id)

    # -- pages and files ----------------------------------------------------------------------

    async def page(self, request: Request) -> Response:
        return FileResponse(STATIC / PAGES[request.url.path], media_type="text/html")

    async def file(self, request: Request) -> Response:
        relative = request.path_params["path"]
        path = resolve_inside(self.scanner.root, relative)
        if path.suffix.lower() not in SERVED_SUFFIXES or not path.is_file():
            return _error(f"{relative}: no such image or log file in the runs folder", 404)
        text = path.suffix.lower() in (".jsonl", ".yaml", ".txt")
        media_type = "text/plain; charset=utf-8" if text else mimetypes.guess_type(path.name)[0]
        # ?v=<mtime> URLs name one version of a file (grids are rewritten under new names)
        cache = "private, max-age=86400" if "v" in request.query_params else "no-cache"
        return FileResponse(
            path,
            media_type=media_type,
            headers={"cache-control": cache},
            content_disposition_type="inline",
        )

    # -- runs -----------------------------------------------------------------------------------

    async def config(self, request: Request) -> Response:
        return JSONResponse(
            {
                "version": __version__,
                "runs_dir": str(self.scanner.root),
                "max_upload_bytes": self.settings.max_upload_bytes,
                "max_upload_pixels": self.settings.max_upload_pixels,
                "lower_is_better": metric_directions(),
            }
        )

    async def runs(self, request: Request) -> Response:
        summaries = await run_in_threadpool(self.scanner.summaries)
        return JSONResponse(
            {"runs_dir": str(self.scanner.root), "runs": [s.to_json() for s in summaries]}
        )

    async def run(self, request: Request) -> Response:
        _, folder = self.run_param(request)

        def read() -> dict[str, Any]:
            summary = self.scanner.summary(folder)
            metrics = [
                {k: r.get(k) for k in ("step", "metric", "value", "std", "n_generated")}
                for r in self.scanner.metrics(folder)
                if "metric" in r
            ]
            return {
                "run": summary.to_json(),
                "losses": thin(self.scanner.losses(folder)),
                "metrics": metrics,
                "config": self.scanner.config(folder),
            }

        return JSONResponse(await run_in_threadpool(read))

    async def capabilities(self, request: Request) -> Response:
        _, folder = self.run_param(request)
        entry = await run_in_threadpool(self.cache.get, folder)
        return JSONResponse(entry.capabilities.to_json())

    # -- generators -----------------------------------------------------------------------------

    async def sample(self, request: Request) -> Response:
        _, folder = self.run_param(request)
        n, seed = _int(request, "n", 16), _int(request, "seed", 0)
        label, truncation = _int(request, "class"), _float(request, "truncation")
        entry = await run_in_threadpool(self.cache.get, folder)
        return _png(await run_in_threadpool(sample_grid, entry, n, seed, label, truncation))

    async def interpolate(self, request: Request) -> Response:
        _, folder = self.run_param(request)
        seed_a, seed_b = _int(request, "seed_a", 0), _int(request, "seed_b", 1)
        steps = _int(request, "steps", 16)
        label, truncation = _int(request, "class"), _float(request, "truncation")
        entry = await run_in_threadpool(self.cache.get, folder)
        strip = await run_in_threadpool(
            interpolation_strip, entry, seed_a, seed_b, steps, label, truncation
        )
        return _png(strip)

    # -- translation ----------------------------------------------------------------------------

    async def translate(self, request: Request) -> Response:
        run_id, folder = self.run_param(request)
        summary = await run_in_threadpool(self.scanner.summary, folder)
        if summary.task != "translate":
            raise GankitError(f"run {run_id} is a {summary.family} generator, not a translator")
        limit = self.settings.max_upload_bytes
        check_declared(
            request.headers.get("content-type"), request.headers.get("content-length"), limit
        )
        data = await read_limited(request.stream(), limit)
        labels = (self.scanner.config(folder).get("data") or {}).get("a_kind") == "labels"
        upload = await run_in_threadpool(
            decode_upload, data, self.settings.max_upload_pixels, labels
        )
        name = _safe_name(request.query_params.get("name", "image"))
        job = self.jobs.submit(run_id, folder, upload.image, name)
        return JSONResponse(job.to_json(), status_code=202)

    def _job(self, request: Request) -> Any:
        job = self.jobs.get(request.path_params["job"])
        if job is None:
            raise HTTPException(404, "no such translation job (finished jobs are kept a while)")
        return job

    async def job(self, request: Request) -> Response:
        job = self._job(request)
        return JSONResponse({**job.to_json(), "queue_position": self.jobs.position(job)})

    async def job_file(self, request: Request) -> Response:
        job = self._job(request)
        which = request.path_params["which"]
        if which not in ("input", "result"):
            return _error(f"{which}.png: a job has input.png and result.png", 404)
        path = job.folder / f"{which}.png"
        if (which == "result" and job.status != "done") or not path.is_file():
            return _error(f"the {which} of this job is not there (yet)", 404)
        download = which == "result" and request.query_params.get("download") == "1"
        return FileResponse(
            path,
            media_type="image/png",
            filename=f"{job.name}-{_safe_name(job.run)}.png" if download else None,
            content_disposition_type="attachment" if download else "inline",
        )


def _safe_name(name: str) -> str:
    """A file name stem safe for a Content-Disposition header."""
    stem = Path(name.replace("\\", "/")).name.rsplit(".", 1)[0]
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem)[:80].strip("._") or "image"


def create_app(
    settings: ServeSettings, translate: Translate = translate_with_progress
) -> Starlette:
    """The ASGI app serving ``settings.runs_dir`` (``translate`` is replaceable for tests)."""
    if not settings.runs_dir.is_dir():
        raise GankitError(f"{settings.runs_dir}: no such folder (the folder of your runs)")
    server = Server(settings, translate)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        server.close()

    routes = [
        *(Route(path, server.page) for path in PAGES),
        Route("/api/config", server.config),
        Route("/api/runs", server.runs),
        Route("/api/run", server.run),
        Route("/api/capabilities", server.capabilities),
        Route("/api/sample.png", server.sample),
        Route("/api/interpolate.png", server.interpolate),
        Route("/api/translate", server.translate, methods=["POST"]),
        Route("/api/jobs/{job:str}", server.job),
        Route("/api/jobs/{job:str}/{which:str}.png", server.job_file),
        Route("/files/{path:path}", server.file),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    hosts = settings.allowed_hosts if settings.allowed_hosts is not None else LOOPBACK_HOSTS
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(TrustedHostMiddleware, allowed_hosts=hosts),
        ],
        exception_handlers={GankitError: _gankit_error, HTTPException: _http_error},
        lifespan=lifespan,
    )
    app.state.server = server
    return app
