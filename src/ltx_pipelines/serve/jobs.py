"""The durable job store: one table behind SQLAlchemy, SQLite in WAL mode by default.

Every state change is committed before it is acted on, so a restart finds the queue as it was: queued
jobs run after the restart, in submission order. A job found ``running`` at start-up was interrupted by
the server dying (a crash, ``kill -9``, a power cut); it is marked failed with that reason rather than
queued again, so that a job which crashes the GPU cannot crash the server in a loop.

One server process owns a database: check-then-act operations (the queue cap, claiming the next job)
are serialised by a lock in this process. The table uses only portable types, so a PostgreSQL URL can
replace the SQLite file.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from enum import Enum

from sqlalchemy import JSON, Boolean, Float, Integer, String, Text, create_engine, event, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

#: The reason given to a job that was running when the server died.
INTERRUPTED = "server stopped while this job was running"


class JobStatus(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})


class QueueFull(Exception):
    """The queue holds ``--max-queue`` jobs already."""

    def __init__(self, queued: int):
        super().__init__(f"The queue is full ({queued} jobs waiting); try again later.")
        self.queued = queued


class JobRunning(Exception):
    """The job is running: cancel it first."""


class _Base(DeclarativeBase):
    pass


class JobRow(_Base):
    __tablename__ = "jobs"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)  # submission order
    id: Mapped[str] = mapped_column(String(32), unique=True, index=True)
    pipeline: Mapped[str] = mapped_column(String(64))
    model: Mapped[str | None] = mapped_column(String(128))  # the OpenAI model name, for jobs made through /v1
    request: Mapped[dict] = mapped_column(JSON)  # the JobRequest fields that were given
    inputs: Mapped[dict] = mapped_column(JSON)  # upload role -> stored file name
    geometry: Mapped[dict] = mapped_column(JSON)  # height, width, num_frames, frame_rate of the output
    status: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[float] = mapped_column(Float)
    started_at: Mapped[float | None] = mapped_column(Float)
    finished_at: Mapped[float | None] = mapped_column(Float)
    stage: Mapped[str | None] = mapped_column(String(64))
    step: Mapped[int | None] = mapped_column(Integer)
    total: Mapped[int | None] = mapped_column(Integer)
    progress: Mapped[float] = mapped_column(Float, default=0.0)  # 0..1, approximate until completed
    eta_seconds: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    error_code: Mapped[str | None] = mapped_column(String(64))
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    output: Mapped[str | None] = mapped_column(String(64))  # file name under outputs/
    worker: Mapped[str | None] = mapped_column(String(64))


@dataclass(frozen=True)
class Job:
    """A snapshot of one job (detached from the database)."""

    seq: int
    id: str
    pipeline: str
    model: str | None
    request: dict
    inputs: dict
    geometry: dict
    status: JobStatus
    created_at: float
    started_at: float | None
    finished_at: float | None
    stage: str | None
    step: int | None
    total: int | None
    progress: float
    eta_seconds: float | None
    error: str | None
    error_code: str | None
    cancel_requested: bool
    output: str | None
    worker: str | None

    @classmethod
    def of(cls, row: JobRow) -> "Job":
        values = {f.name: getattr(row, f.name) for f in fields(cls)}
        values["status"] = JobStatus(row.status)
        return cls(**values)

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL


def new_job_id() -> str:
    return secrets.token_hex(12)


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # noqa: ANN001
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
    cursor.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes; fsync at checkpoints
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


class JobStore:
    def __init__(self, url: str):
        is_sqlite = url.startswith("sqlite")
        self.engine = create_engine(url, connect_args={"check_same_thread": False} if is_sqlite else {})
        if is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        _Base.metadata.create_all(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._lock = threading.RLock()

    @contextmanager
    def _session(self) -> Iterator[Session]:
        with self._sessions.begin() as session:
            yield session

    def _row(self, session: Session, job_id: str) -> JobRow | None:
        return session.scalars(select(JobRow).where(JobRow.id == job_id)).first()

    # -- creating and reading -------------------------------------------------------------------

    def add(
        self,
        *,
        job_id: str,
        pipeline: str,
        request: dict,
        inputs: dict[str, str],
        geometry: dict,
        max_queue: int,
        model: str | None = None,
    ) -> Job:
        """Queue a job; raises QueueFull when ``max_queue`` jobs are waiting already."""
        with self._lock, self._session() as session:
            queued = self._count(session, JobStatus.QUEUED)
            if queued >= max_queue:
                raise QueueFull(queued)
            row = JobRow(
                id=job_id, pipeline=pipeline, model=model, request=request, inputs=inputs, geometry=geometry,
                status=JobStatus.QUEUED.value, created_at=time.time(), progress=0.0, cancel_requested=False,
            )  # fmt: skip
            session.add(row)
            session.flush()
            return Job.of(row)

    def get(self, job_id: str) -> Job | None:
        with self._session() as session:
            row = self._row(session, job_id)
            return Job.of(row) if row else None

    def list_jobs(self, *, limit: int = 50, after: str | None = None, order: str = "desc") -> tuple[list[Job], bool]:
        """A page of jobs, newest first (``order="desc"``) or oldest first, after the job ``after``.

        Returns the page and whether more jobs follow it.
        """
        with self._session() as session:
            query = select(JobRow)
            if after is not None:
                anchor = self._row(session, after)
                if anchor is not None:
                    query = query.where(JobRow.seq < anchor.seq if order == "desc" else JobRow.seq > anchor.seq)
            query = query.order_by(JobRow.seq.desc() if order == "desc" else JobRow.seq.asc()).limit(limit + 1)
            rows = list(session.scalars(query))
            return [Job.of(r) for r in rows[:limit]], len(rows) > limit

    def count(self, status: JobStatus) -> int:
        with self._session() as session:
            return self._count(session, status)

    @staticmethod
    def _count(session: Session, status: JobStatus) -> int:
        return session.scalar(select(func.count()).select_from(JobRow).where(JobRow.status == status.value)) or 0

    def recent_durations(self, n: int = 10) -> list[float]:
        """Run times (seconds) of the last ``n`` completed jobs (for Retry-After estimates)."""
        with self._session() as session:
            query = (
                select(JobRow.finished_at - JobRow.started_at)
                .where(JobRow.status == JobStatus.COMPLETED.value)
                .order_by(JobRow.seq.desc())
                .limit(n)
            )
            return [d for d in session.scalars(query) if d is not None]

    # -- the worker's side ----------------------------------------------------------------------

    def claim_next(self, worker: str) -> Job | None:
        """Mark the oldest queued job running on ``worker`` and return it (None when the queue is empty)."""
        with self._lock, self._session() as session:
            query = select(JobRow).where(JobRow.status == JobStatus.QUEUED.value).order_by(JobRow.seq).limit(1)
            row = session.scalars(query).first()
            if row is None:
                return None
            row.status, row.worker, row.started_at = JobStatus.RUNNING.value, worker, time.time()
            row.stage, row.step, row.total, row.progress, row.eta_seconds = "starting", None, None, 0.0, None
            return Job.of(row)

    def update_progress(
        self, job_id: str, *, stage: str | None, step: int | None, total: int | None, progress: float, eta: float | None
    ) -> Job:
        """Record where a running job is; the returned snapshot carries ``cancel_requested``."""
        with self._session() as session:
            row = self._row(session, job_id)
            row.stage, row.step, row.total, row.progress, row.eta_seconds = stage, step, total, progress, eta
            return Job.of(row)

    def finish(
        self,
        job_id: str,
        status: JobStatus,
        *,
        output: str | None = None,
        error: str | None = None,
        error_code: str | None = None,
    ) -> Job:
        with self._session() as session:
            row = self._row(session, job_id)
            row.status, row.finished_at, row.output = status.value, time.time(), output
            row.error, row.error_code, row.eta_seconds = error, error_code, None
            if status is JobStatus.COMPLETED:
                row.progress = 1.0
            return Job.of(row)

    def requeue(self, job_id: str) -> Job:
        """Put an interrupted job back at its place in the queue (graceful shutdown)."""
        with self._lock, self._session() as session:
            row = self._row(session, job_id)
            row.status, row.worker, row.started_at = JobStatus.QUEUED.value, None, None
            row.stage, row.step, row.total, row.progress, row.eta_seconds = None, None, None, 0.0, None
            return Job.of(row)

    def fail_interrupted(self) -> list[Job]:
        """At start-up: jobs still marked running were interrupted by the server dying; fail them."""
        with self._lock, self._session() as session:
            rows = list(session.scalars(select(JobRow).where(JobRow.status == JobStatus.RUNNING.value)))
            for row in rows:
                row.status, row.finished_at, row.eta_seconds = JobStatus.FAILED.value, time.time(), None
                row.error, row.error_code = INTERRUPTED, "server_stopped"
            return [Job.of(r) for r in rows]

    # -- the client's side ----------------------------------------------------------------------

    def request_cancel(self, job_id: str) -> Job | None:
        """A queued job is cancelled at once; a running one is flagged (its worker stops at the next step)."""
        with self._lock, self._session() as session:
            row = self._row(session, job_id)
            if row is None:
                return None
            if row.status == JobStatus.QUEUED.value:
                row.status, row.finished_at = JobStatus.CANCELLED.value, time.time()
                row.error, row.error_code = "cancelled before it started", "cancelled"
            elif row.status == JobStatus.RUNNING.value:
                row.cancel_requested = True
            return Job.of(row)

    def delete(self, job_id: str) -> Job | None:
        """Remove a job that is not running (raises JobRunning otherwise); returns what was removed."""
        with self._lock, self._session() as session:
            row = self._row(session, job_id)
            if row is None:
                return None
            if row.status == JobStatus.RUNNING.value:
                raise JobRunning(job_id)
            job = Job.of(row)
            session.delete(row)
            return job

    def close(self) -> None:
        self.engine.dispose()


__all__ = ["INTERRUPTED", "TERMINAL", "Job", "JobRunning", "JobStatus", "JobStore", "QueueFull", "new_job_id"]
