"""One worker thread per GPU (one on the CPU), running jobs in submission order.

A worker keeps the pipeline it built resident between jobs (the ledger's ``keep`` policy: a second job
reads no file, a repeated prompt skips the text encoder). To bound memory it holds at most one pipeline:
a job for a different pipeline first releases the previous one's models. With ``--idle-release SECONDS``
it also releases them after that long without a job (the next job loads them again), for GPUs shared with
other services.

With warm-up on (``--warm-up``; the default where the worker has a GPU), a worker first runs the default job
once (the default pipeline at its default size and frames, two guided steps, the output discarded) so that the
transformer's compiled variants for those shapes are built, or read from the compile cache, before the first
request waits on them. A failing warm-up is logged and the worker serves anyway.

Progress events of the generation (``ltx_pipelines.utils.progress``) become the job's stage, step and ETA
in the store and on the event streams; a cancel request is answered by raising ``GenerationCancelled``
from the listener, which stops the generation at the next stage or step boundary with nothing written.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ltx_pipelines.engine.model_ledger import cleanup_memory
from ltx_pipelines.engine.pipeline_base import PipelineBase
from ltx_pipelines.serve.catalog import DEFAULT_PIPELINE, PIPELINES, PipelineSpec, ServedFiles
from ltx_pipelines.serve.events import JobEvents
from ltx_pipelines.serve.jobs import Job, JobStatus, JobStore
from ltx_pipelines.serve.requests import JobRequest, call_kwargs, denoise_stages
from ltx_pipelines.serve.storage import DataDir
from ltx_pipelines.serve.views import job_view
from ltx_pipelines.utils import progress
from ltx_pipelines.utils.errors import InputError

logger = logging.getLogger(__name__)

#: Guided steps of the warm-up job (every compiled variant of a step is built by its first step; two make sure).
WARM_UP_STEPS = 2


def default_devices() -> list[str]:
    """One worker per visible GPU (set CUDA_VISIBLE_DEVICES to choose them), else one on the CPU."""
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return [f"cuda:{i}" for i in range(count)] or ["cpu"]


class ProgressTracker:
    """A generation's stage and step events -> the job's position, an overall fraction and an ETA.

    The fraction counts denoising steps across the job's denoising stages (5% before the first, 5% for
    decoding and writing after the last); the ETA extrapolates the time spent so far. Both are estimates
    until the job completes.
    """

    def __init__(self, denoise_stages: int, started: float):
        self.stages = max(1, denoise_stages)
        self.started = started
        self.stages_done = 0
        self.stage: str | None = None
        self.step: int | None = None
        self.total: int | None = None

    def update(self, event: progress.ProgressEvent) -> dict[str, object]:
        if event.kind == "stage_start":
            self.stage, self.step, self.total = event.stage, None, None
        elif event.kind == "step":
            self.stage, self.step, self.total = event.stage, event.step, event.total
        elif event.kind == "stage_end" and self.total:  # a denoising stage ended
            self.stages_done += 1
            self.step, self.total = None, None
        within = self.step / self.total if self.step and self.total else 0.0
        done = min(1.0, (self.stages_done + within) / self.stages)
        fraction = 0.05 + 0.9 * done
        eta = (time.time() - self.started) * (1 - fraction) / fraction if done > 0 else None
        return {"stage": self.stage, "step": self.step, "total": self.total, "progress": fraction, "eta": eta}


@dataclass
class _Resident:
    name: str
    pipeline: PipelineBase


class Worker:
    """Runs jobs on one device, one at a time."""

    def __init__(self, device: str, pool: "WorkerPool"):
        self.device = device
        self.pool = pool
        self._resident: _Resident | None = None
        self.current_job: str | None = None
        self._idle_since = time.monotonic()
        self._thread = threading.Thread(target=self._loop, name=f"ltx-serve-worker-{device}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def status(self) -> dict[str, str | None]:
        """The device, the pipeline whose models it holds (None after a release) and the job it runs."""
        resident = self._resident
        return {"device": self.device, "pipeline": resident.name if resident else None, "job": self.current_job}

    def join(self, timeout: float) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _loop(self) -> None:
        if self.pool.warms_up(self.device):
            self.warm_up()
        while not self.pool.stopping.is_set():
            seen = self.pool.work_signal()
            try:
                job = self.pool.store.claim_next(self.device)
            except Exception:  # the database is unreachable or locked: say so, try again shortly
                logger.exception("Worker %s could not read the queue", self.device)
                job = None
            if job is None:
                self._release_if_idle()
                self.pool.wait_for_work(seen, timeout=1.0)
                continue
            self.current_job = job.id
            try:
                self._run(job)
            except Exception:  # the store itself failed: log it, keep serving
                logger.exception("Worker %s could not record the end of job %s", self.device, job.id)
            self.current_job = None
            self._idle_since = time.monotonic()
        self._release("the server is stopping")

    # -- one job --------------------------------------------------------------------------------

    def _run(self, job: Job) -> None:
        """Generate one job and record how it ended (completed, failed, cancelled, or queued again)."""
        pool = self.pool
        pool.publish(job)
        output = pool.data.output_path(job.id)
        logger.info("Job %s (%s) started on %s", job.id, job.pipeline, self.device)
        try:
            self._generate(job, output)
        except progress.GenerationCancelled:
            output.unlink(missing_ok=True)
            cleanup_memory()
            finished = self._after_cancel(job)
        except InputError as e:
            output.unlink(missing_ok=True)
            message = pool.data.public_text(str(e), job.id)
            finished = pool.store.finish(job.id, JobStatus.FAILED, error=message, error_code="invalid_input")
        except Exception as e:
            logger.exception("Job %s failed", job.id)
            output.unlink(missing_ok=True)
            self._release("a job failed (its models may be in a bad state)")
            message = pool.data.public_text(f"{type(e).__name__}: {e}", job.id)
            finished = pool.store.finish(job.id, JobStatus.FAILED, error=message, error_code="generation_failed")
        else:
            finished = pool.store.finish(job.id, JobStatus.COMPLETED, output=output.name)
        logger.info("Job %s %s", job.id, finished.status.value)
        pool.publish(finished)

    def _generate(self, job: Job, output: Path) -> None:
        pool = self.pool
        spec = PIPELINES[job.pipeline]
        request = JobRequest.model_validate(job.request)
        tracker = ProgressTracker(denoise_stages(request, spec), time.time())

        def on_event(event: progress.ProgressEvent) -> None:
            snapshot = pool.store.update_progress(job.id, **tracker.update(event))
            pool.publish(snapshot)
            if snapshot.cancel_requested or pool.stopping.is_set():
                raise progress.GenerationCancelled(job.id)

        pipeline = self._pipeline(spec)
        kwargs = call_kwargs(request, spec, pipeline, pool.data.stored_inputs(job.id, job.inputs), output)
        with progress.listen(on_event):
            pipeline(**kwargs)

    def _after_cancel(self, job: Job) -> Job:
        current = self.pool.store.get(job.id)
        if self.pool.stopping.is_set() and not (current and current.cancel_requested):
            return self.pool.store.requeue(job.id)  # graceful shutdown: it runs again after the restart
        store = self.pool.store
        return store.finish(job.id, JobStatus.CANCELLED, error="cancelled while running", error_code="cancelled")

    # -- warm-up --------------------------------------------------------------------------------

    def warm_up(self) -> float | None:
        """Run the default job once, output discarded; returns its seconds (None: skipped or failed)."""
        spec = _warm_up_spec(self.pool.files)
        if spec is None:
            logger.info("Worker %s: no pipeline to warm up", self.device)
            return None
        output = self.pool.data.root / f".warm-up-{self.device.replace(':', '-')}.mp4"
        started = time.perf_counter()
        try:
            pipeline = self._pipeline(spec)
            pipeline(**{**call_kwargs(warm_up_request(spec), spec, pipeline, {}, output), "overwrite": True})
        except Exception as e:  # noqa: BLE001 - warming up is an optimisation: serve anyway
            logger.warning("Worker %s: warm-up with %s failed (%s: %s); serving without it", self.device, spec.name,
                           type(e).__name__, str(e).splitlines()[0][:200] if str(e) else "")  # fmt: skip
            self._release("the warm-up failed")
            return None
        finally:
            output.unlink(missing_ok=True)
        seconds = time.perf_counter() - started
        logger.info("Worker %s warmed up %s in %.1f s%s", self.device, spec.name, seconds, _compile_summary(pipeline))
        return seconds

    # -- residency --------------------------------------------------------------------------------

    def _pipeline(self, spec: PipelineSpec) -> PipelineBase:
        if self._resident is not None and self._resident.name == spec.name:
            return self._resident.pipeline
        self._release(f"the next job needs {spec.name}")
        pipeline = spec.build(self.pool.files, self.device, memory_policy="keep")
        self._resident = _Resident(spec.name, pipeline)
        return pipeline

    def _release(self, reason: str) -> None:
        if self._resident is None:
            return
        logger.info("Worker %s releases the %s models: %s", self.device, self._resident.name, reason)
        self._resident.pipeline.ledger.release_all()
        self._resident = None
        cleanup_memory()

    def _release_if_idle(self) -> None:
        limit = self.pool.idle_release
        if limit is not None and self._resident is not None and time.monotonic() - self._idle_since >= limit:
            self._release(f"idle for {limit:g} s")


def warm_up_request(spec: PipelineSpec) -> JobRequest:
    """The default job of ``spec`` (its default size and frames), with only a few guided steps."""
    return JobRequest(pipeline=spec.name, prompt="warm-up", num_inference_steps=WARM_UP_STEPS if spec.guided else None)


def _warm_up_spec(files: ServedFiles) -> PipelineSpec | None:
    """The pipeline a warm-up runs: the default one if its files are there, else the first available."""
    specs = [PIPELINES[DEFAULT_PIPELINE], *PIPELINES.values()]
    return next((spec for spec in specs if not spec.missing(files) and spec.takes_images and not spec.media), None)


def _compile_summary(pipeline: PipelineBase) -> str:
    """What the warm-up compiled and read from the compile cache (empty when nothing compiled)."""
    from ltx_pipelines.acceleration.executor import engine_stats

    transformer = pipeline.ledger.kept("transformer")
    stats = engine_stats(transformer) if transformer is not None else {}
    if not stats.get("graphs"):
        return ""
    return (f": {stats['variants_compiled']} transformer variants compiled, {stats['variants_from_cache']} from the "
            f"compile cache, {stats['compile_s']} s")  # fmt: skip


class WorkerPool:
    """The workers, and what they share: the store, the event hub, the data folder and the model files."""

    def __init__(
        self,
        *,
        store: JobStore,
        events: JobEvents,
        data: DataDir,
        files: ServedFiles,
        devices: list[str],
        idle_release: float | None = None,
        warm_up: bool | None = None,
    ):
        """``warm_up``: run the default job at each worker's start (None: on for GPU workers, off on the CPU)."""
        self.store, self.events, self.data, self.files = store, events, data, files
        self.idle_release = idle_release
        self.warm_up = warm_up
        self.stopping = threading.Event()
        self._work = threading.Condition()
        self._signal = 0
        self.workers = [Worker(device, self) for device in devices]

    def start(self) -> None:
        for worker in self.workers:
            worker.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop at the next step boundary; a job interrupted this way is queued again."""
        self.stopping.set()
        self.notify()
        deadline = time.monotonic() + timeout
        for worker in self.workers:
            if not worker.join(max(0.0, deadline - time.monotonic())):
                logger.warning(
                    "Worker %s did not stop in %g s; its job will be failed at the next start", worker.device, timeout
                )

    def warms_up(self, device: str) -> bool:
        return self.warm_up if self.warm_up is not None else device.startswith("cuda")

    def publish(self, job: Job) -> None:
        self.events.publish(job_view(job))

    def status(self) -> list[dict[str, str | None]]:
        return [worker.status() for worker in self.workers]

    # -- waking workers up ------------------------------------------------------------------------

    def notify(self) -> None:
        """A job was queued (or the pool is stopping)."""
        with self._work:
            self._signal += 1
            self._work.notify_all()

    def work_signal(self) -> int:
        with self._work:
            return self._signal

    def wait_for_work(self, seen: int, timeout: float) -> None:
        """Sleep until notified, unless a notification came since ``seen`` was read."""
        with self._work:
            if self._signal == seen and not self.stopping.is_set():
                self._work.wait(timeout)


__all__ = ["WARM_UP_STEPS", "ProgressTracker", "Worker", "WorkerPool", "default_devices", "warm_up_request"]
