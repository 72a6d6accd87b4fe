"""What the routes do to jobs: check a request and queue it, cancel, delete, re-run.

Both the native API and the OpenAI-compatible routes go through :class:`JobService`, so a request is
checked the same way whichever door it came in by: the request schema, the pipeline's parameters, the
uploads' content, then ``pipeline.validate(...)`` (the very checks the CLI runs, with its messages).
Nothing is queued unless all of them pass.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pydantic import ValidationError

from ltx_pipelines.serve.catalog import PIPELINES, Catalog, PipelineSpec
from ltx_pipelines.serve.jobs import Job, JobRunning, JobStatus, JobStore, QueueFull, new_job_id
from ltx_pipelines.serve.requests import JobRequest, call_kwargs, check_request, upload_roles
from ltx_pipelines.serve.storage import DataDir
from ltx_pipelines.serve.uploads import UnsupportedUpload, store_upload
from ltx_pipelines.serve.views import deleted_view
from ltx_pipelines.serve.worker import WorkerPool
from ltx_pipelines.utils.errors import InputError
from ltx_pipelines.utils.media_io import probe_media

#: Seconds a job is assumed to take before one has completed (for Retry-After).
_FIRST_JOB_GUESS = 30.0


class RequestRefused(Exception):
    """A request the server will not act on: an HTTP status and a message that says what to do."""

    def __init__(self, status: int, message: str, *, code: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}


def invalid(message: str) -> RequestRefused:
    return RequestRefused(422, message, code="invalid_request")


def not_found(job_id: str) -> RequestRefused:
    return RequestRefused(404, f"No job {job_id}.", code="not_found")


def schema_message(error: ValidationError) -> str:
    """Pydantic's errors as one line per field."""
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "request"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


@dataclass
class JobService:
    catalog: Catalog
    store: JobStore
    pool: WorkerPool
    data: DataDir
    max_queue: int

    # -- submitting -----------------------------------------------------------------------------

    def parse(self, fields: dict) -> JobRequest:
        try:
            return JobRequest.model_validate(fields)
        except ValidationError as e:
            raise invalid(schema_message(e)) from None

    def submit(self, request: JobRequest, uploads: dict[str, BinaryIO], *, model: str | None = None) -> Job:
        """Check everything, store the uploads, queue the job. Raises RequestRefused."""
        spec = self._spec(request.pipeline)
        try:
            check_request(request, spec, set(uploads))
        except InputError as e:
            raise invalid(str(e)) from None
        self._check_room()
        job_id = new_job_id()
        try:
            inputs = self._store_uploads(job_id, request, spec, uploads)
            return self._queue(job_id, request, spec, inputs, model)
        except BaseException:
            self.data.remove_job_files(job_id)
            raise

    def _spec(self, name: str) -> PipelineSpec:
        spec = PIPELINES.get(name)
        if spec is None:
            raise invalid(f"Unknown pipeline {name!r}; choose one of {', '.join(PIPELINES)}.")
        if not self.catalog.available(name):
            flags = ", ".join(spec.missing(self.catalog.files))
            raise RequestRefused(422, f"The {name} pipeline is not available: start the server with {flags}.",
                                 code="pipeline_unavailable")  # fmt: skip
        return spec

    def _check_room(self) -> None:
        queued = self.store.count(JobStatus.QUEUED)
        if queued >= self.max_queue:
            raise self._queue_full(queued)

    def _queue_full(self, queued: int) -> RequestRefused:
        return RequestRefused(
            429, f"The queue is full ({queued} jobs waiting, --max-queue {self.max_queue}); try again later.",
            code="queue_full", headers={"Retry-After": str(self.retry_after())},
        )  # fmt: skip

    def retry_after(self) -> int:
        """Seconds until a queue slot is likely free: the recent run time, spread over the workers."""
        durations = self.store.recent_durations()
        per_job = sum(durations) / len(durations) if durations else _FIRST_JOB_GUESS
        return max(1, min(3600, math.ceil(per_job / max(1, len(self.pool.workers)))))

    def _store_uploads(
        self, job_id: str, request: JobRequest, spec: PipelineSpec, uploads: dict[str, BinaryIO]
    ) -> dict[str, str]:
        folder = self.data.upload_dir(job_id)
        inputs = {}
        for role, kind in upload_roles(request, spec).items():
            try:
                inputs[role] = store_upload(uploads[role], folder, role, kind).name
            except UnsupportedUpload as e:
                raise RequestRefused(415, str(e), code="unsupported_upload") from None
        return inputs

    def _queue(
        self, job_id: str, request: JobRequest, spec: PipelineSpec, inputs: dict[str, str], model: str | None
    ) -> Job:
        validator = self.catalog.validators[spec.name]
        stored = self.data.stored_inputs(job_id, inputs)
        kwargs = call_kwargs(request, spec, validator, stored, self.data.output_path(job_id))
        try:
            with self.catalog.validation_lock(spec.name):
                validator.validate(**kwargs)
            geometry = self._geometry(spec, kwargs)
        except InputError as e:
            raise invalid(self.data.public_text(str(e), job_id)) from None
        fields = request.model_dump(mode="json", exclude_unset=True)
        fields["pipeline"] = spec.name
        try:
            job = self.store.add(
                job_id=job_id, pipeline=spec.name, request=fields, inputs=inputs, geometry=geometry,
                max_queue=self.max_queue, model=model,
            )  # fmt: skip
        except QueueFull as e:
            raise self._queue_full(e.queued) from None
        self.pool.publish(job)
        self.pool.notify()
        return job

    @staticmethod
    def _geometry(spec: PipelineSpec, kwargs: dict) -> dict:
        """The output's size, length and frame rate (a retake's are the source clip's)."""
        if "video_path" in kwargs and not spec.takes_geometry:
            info = probe_media(kwargs["video_path"])
            return {"height": info.height, "width": info.width, "num_frames": info.num_frames, "frame_rate": info.fps}
        defaults = spec.call_defaults()
        return {k: kwargs.get(k, defaults[k]) for k in ("height", "width", "num_frames", "frame_rate")}

    def rerun(self, job_id: str) -> Job:
        """Queue a copy of a job: the same request, the same uploaded inputs."""
        job = self.get(job_id)
        request = JobRequest.model_validate(job.request)
        spec = self._spec(request.pipeline)
        self._check_room()
        new_id = new_job_id()
        try:
            folder = self.data.upload_dir(new_id)
            for role, path in self.data.stored_inputs(job.id, job.inputs).items():
                if not path.is_file():
                    raise invalid(f"The input {role} of job {job.id} is gone; submit the job again with it.")
                folder.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, folder / path.name)
            return self._queue(new_id, request, spec, dict(job.inputs), job.model)
        except BaseException:
            self.data.remove_job_files(new_id)
            raise

    # -- reading and changing -------------------------------------------------------------------

    def get(self, job_id: str) -> Job:
        job = self.store.get(job_id)
        if job is None:
            raise not_found(job_id)
        return job

    def cancel(self, job_id: str) -> Job:
        job = self.store.request_cancel(job_id)
        if job is None:
            raise not_found(job_id)
        self.pool.publish(job)
        return job

    def delete(self, job_id: str) -> Job:
        try:
            job = self.store.delete(job_id)
        except JobRunning:
            raise RequestRefused(409, f"Job {job_id} is running; cancel it first.", code="job_running") from None
        if job is None:
            raise not_found(job_id)
        self.data.remove_job_files(job_id)
        self.pool.events.publish(deleted_view(job_id))
        return job

    def video_path(self, job_id: str) -> Path:
        """The finished mp4; only a completed job has one (a result is never served half-written)."""
        job = self.get(job_id)
        if job.status is not JobStatus.COMPLETED:
            raise RequestRefused(409, f"Job {job_id} is {job.status.value}; its video exists once it has completed.",
                                 code="not_completed")  # fmt: skip
        path = self.data.output_path(job_id)
        if not path.is_file():
            raise RequestRefused(410, f"The video of job {job_id} was removed from the server.", code="gone")
        return path


__all__ = ["JobService", "RequestRefused", "invalid", "not_found", "schema_message"]
