"""Translation jobs: run in a small thread pool, polled for progress, results kept on disk.

A translation of a large image takes seconds to minutes on a CPU. It runs in its own worker
thread (torch releases the GIL while it computes), so the page's other requests are answered
meanwhile; the page polls the job for the tiles done and fetches the result when it is there.
"""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from gankit.api import LoadedGenerator
from gankit.errors import GankitError
from gankit.serve.generators import GeneratorCache

Progress = Callable[[int, int], None]  # (tiles done, tiles in all)
Translate = Callable[[LoadedGenerator, Image.Image, Progress], np.ndarray]


class Cancelled(Exception):
    """The server is shutting down: the job stops between two batches of tiles."""


def translate_with_progress(
    generator: LoadedGenerator, image: Image.Image, progress: Progress, batch_size: int = 8
) -> np.ndarray:
    """:meth:`LoadedGenerator.translate_image` in overlap mode with the training tile size,
    reporting the tiles done after every batch: PIL image (H, W) -> (H*s, W*s, C_b) uint8."""
    return generator.translate_image(image, batch_size=batch_size, progress=progress)


@dataclass
class Job:
    """One translation: its state as the page polls it."""

    id: str
    run: str  # run id of the translator
    name: str  # the uploaded file's name, for the download
    folder: Path  # input.png and result.png
    input_size: tuple[int, int]  # (width, height)
    status: str = "queued"  # queued | running | done | failed
    tiles_done: int = 0
    tiles_total: int = 0
    output_size: tuple[int, int] | None = None
    message: str | None = None  # why it failed
    created: float = field(default_factory=time.time)
    seconds: float | None = None  # translation time

    @property
    def finished(self) -> bool:
        return self.status in ("done", "failed")

    def to_json(self) -> dict[str, Any]:
        fields = {k: v for k, v in self.__dict__.items() if k != "folder"}
        return {
            **fields,
            "input": f"/api/jobs/{self.id}/input.png",
            "result": f"/api/jobs/{self.id}/result.png" if self.status == "done" else None,
        }


class JobQueue:
    """Translation jobs run by ``workers`` threads; the ``keep`` newest finished ones are kept."""

    def __init__(
        self,
        cache: GeneratorCache,
        workdir: Path,
        workers: int = 1,
        keep: int = 32,
        translate: Translate = translate_with_progress,
    ) -> None:
        self.cache = cache
        self.workdir = workdir
        self.keep = keep
        self.translate = translate
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="gankit-translate")
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self._closing = threading.Event()

    def submit(self, run_id: str, folder: Path, image: Image.Image, name: str) -> Job:
        """Queue the translation of ``image`` by the translator of run ``folder``."""
        job_id = uuid.uuid4().hex
        job = Job(job_id, run_id, name, self.workdir / job_id, image.size)
        job.folder.mkdir(parents=True)
        with self._lock:
            self._jobs[job_id] = job
            self._evict()
        self._pool.submit(self._run, job, folder, image)
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def position(self, job: Job) -> int:
        """How many jobs wait before this one (0 when it runs or is done)."""
        if job.status != "queued":
            return 0
        with self._lock:
            queued = [j for j in self._jobs.values() if j.status == "queued"]
        return queued.index(job) if job in queued else 0

    def _run(self, job: Job, folder: Path, image: Image.Image) -> None:
        def progress(done: int, total: int) -> None:
            if self._closing.is_set():
                raise Cancelled
            job.tiles_done, job.tiles_total = done, total

        job.status = "running"
        start = time.perf_counter()
        try:
            entry = self.cache.get(folder)
            if not entry.capabilities.translator:
                raise GankitError(
                    f"run {job.run} is a {entry.generator.family} generator, not a translator"
                )
            image.save(job.folder / "input.png", compress_level=1)
            with entry.lock:
                result = self.translate(entry.generator, image, progress)
            pixels = result[..., 0] if result.shape[2] == 1 else result
            Image.fromarray(pixels).save(job.folder / "result.png", compress_level=1)
            job.output_size = (pixels.shape[1], pixels.shape[0])
            job.seconds = time.perf_counter() - start
            job.status = "done"
        except Cancelled:
            job.status, job.message = "failed", "the server is shutting down"
        except GankitError as exc:
            job.status, job.message = "failed", str(exc)
        except Exception as exc:  # a bug or out of memory: the page says so, the server goes on
            job.status, job.message = "failed", f"{type(exc).__name__}: {exc}"[:300]

    def _evict(self) -> None:
        finished = [j for j in self._jobs.values() if j.finished]
        for job in finished[: max(0, len(finished) - self.keep)]:
            del self._jobs[job.id]
            shutil.rmtree(job.folder, ignore_errors=True)

    def close(self) -> None:
        """Stop the running job at its next batch of tiles, drop the queued ones."""
        self._closing.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
