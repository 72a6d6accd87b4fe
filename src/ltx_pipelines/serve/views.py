"""The JSON shape of a job in the native API and its event streams."""

from __future__ import annotations

from ltx_pipelines.serve.jobs import Job, JobStatus


def job_view(job: Job) -> dict:
    """What clients see of a job: its request, where it is, and where its result is."""
    done = job.status is JobStatus.COMPLETED
    return {
        "id": job.id,
        "pipeline": job.pipeline,
        "status": job.status.value,
        "request": job.request,
        "inputs": sorted(job.inputs),
        "geometry": job.geometry,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "stage": job.stage,
        "step": job.step,
        "total": job.total,
        "progress": round(job.progress, 4),
        "eta_seconds": None if job.eta_seconds is None else round(job.eta_seconds, 1),
        "cancel_requested": job.cancel_requested,
        "error": job.error,
        "error_code": job.error_code,
        "video_url": f"/api/jobs/{job.id}/video" if done else None,
    }


def deleted_view(job_id: str) -> dict:
    return {"id": job_id, "deleted": True}


__all__ = ["deleted_view", "job_view"]
