"""Progress of a generation, per stage and per step, for whoever listens.

Stages report through :func:`report`; nothing listens by default. A listener installed with
:func:`listen` (the server's job worker, a notebook's progress bar) receives every
:class:`ProgressEvent` in the thread that runs the generation, and may stop the generation by
raising :class:`GenerationCancelled` from its callback: the pipeline then unwinds at that stage
or step boundary, frees what it holds, and writes no output.

Listeners live in a context variable, so two generations in two threads each see only their own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

logger = logging.getLogger(__name__)


class GenerationCancelled(Exception):
    """Raised by a progress listener to stop the generation at the next stage or step boundary."""


@dataclass(frozen=True)
class ProgressEvent:
    """One thing that happened: a stage started or ended, or a denoising step finished.

    ``kind`` is ``"stage_start"``, ``"step"`` or ``"stage_end"``; ``step``/``total`` are set for steps
    (``step`` counts finished steps, 1-based); ``elapsed`` is seconds since the stage started.
    """

    kind: str
    stage: str
    step: int | None = None
    total: int | None = None
    elapsed: float = 0.0


Listener = Callable[[ProgressEvent], None]

_listeners: ContextVar[tuple[Listener, ...]] = ContextVar("ltx_progress_listeners", default=())


@contextmanager
def listen(callback: Listener) -> Iterator[None]:
    """Send every progress event of generations run in this context to ``callback``."""
    token = _listeners.set((*_listeners.get(), callback))
    try:
        yield
    finally:
        _listeners.reset(token)


def report(event: ProgressEvent) -> None:
    """Deliver an event to the listeners of this context (a listener may raise GenerationCancelled)."""
    for callback in _listeners.get():
        callback(event)


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Report the start and the end of a stage (the end only when it completed)."""
    started = time.perf_counter()
    report(ProgressEvent("stage_start", name))
    yield
    report(ProgressEvent("stage_end", name, elapsed=time.perf_counter() - started))


class StepReporter:
    """Step events of one denoising stage, with an INFO log line about every tenth of the way."""

    def __init__(self, stage_name: str, total: int):
        self.stage_name = stage_name
        self.total = total
        self.started = time.perf_counter()
        self._log_every = max(1, total // 10)

    def __call__(self, done: int) -> None:
        elapsed = time.perf_counter() - self.started
        if done % self._log_every == 0 or done == self.total:
            per_step = elapsed / done
            logger.info(
                "%s: step %d/%d (%.2f s/step, %.0f s left)",
                self.stage_name, done, self.total, per_step, per_step * (self.total - done),
            )  # fmt: skip
        report(ProgressEvent("step", self.stage_name, step=done, total=self.total, elapsed=elapsed))


__all__ = ["GenerationCancelled", "Listener", "ProgressEvent", "StepReporter", "listen", "report", "stage"]
