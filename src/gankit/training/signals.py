"""SIGINT / SIGTERM during training: finish the step, save, stop."""

from __future__ import annotations

import logging
import signal
import threading
from contextlib import AbstractContextManager
from typing import Any

import torch

from gankit.training.distributed import Distributed

log = logging.getLogger("gankit")


class StopSignals(AbstractContextManager["StopSignals"]):
    """While active, SIGINT and SIGTERM set ``requested`` instead of killing the process, so the
    loop can finish its step and save. A second signal raises KeyboardInterrupt as usual."""

    def __init__(self) -> None:
        self.requested: str | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def agreed(self, dist: Distributed, votes: torch.Tensor | None, step: int) -> bool:
        """Whether to stop after ``step``: a signal here, or (several ranks) on any rank by
        ``votes``, the stop requests of this step's last all-reduce, so that every rank stops
        at the same step."""
        if dist.enabled:
            if votes is None or float(votes) == 0:
                return False
        elif not self.requested:
            return False
        if self.requested:
            log.warning("%s received at step %d: saving and stopping", self.requested, step)
        elif dist.is_main:
            log.warning("another training process was asked to stop at step %d: saving and "
                        "stopping", step)  # fmt: skip
        return True
