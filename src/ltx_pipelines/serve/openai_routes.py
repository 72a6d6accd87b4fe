"""``/v1/videos``: the part of OpenAI's video API that its Python client's ``client.videos`` uses.

``create`` / ``retrieve`` / ``list`` / ``delete`` / ``download_content`` work against this server; each
video is one of our jobs. The mapping:

* ``model``: ``ltx-2`` is the recommended two-stage pipeline, ``ltx-2-<pipeline>`` any other (e.g.
  ``ltx-2-distilled``, ``ltx-2-ti2vid-one-stage``; dashes or underscores). Default ``ltx-2``.
* ``size`` ``"WxH"`` is the width and height; they must fit the pipeline's size rule (multiples of 64
  for the two-stage pipelines, 32 otherwise), or the request gets 422. Default: the pipeline's own size.
* ``seconds`` becomes the frame count nearest to ``seconds x frame rate`` of the form 8k+1 (what the model
  generates): "4" at 24 fps is 97 frames (4.04 s). Default "4".
* ``input_reference`` (an upload, or ``{"image_url": "data:..."}``) is an image conditioning the first
  frame; for ``ltx-2-retake`` a video is the clip to edit, for ``ltx-2-a2vid-two-stage`` an audio file (or a
  video with sound) is the soundtrack, for ``ltx-2-ic-lora`` a video is the reference. Remote URLs are not
  fetched.
* Any other field of our JobRequest (``seed``, ``negative_prompt``, ``num_inference_steps``,
  ``frame_rate``, ``start_time``, ...) may be added, e.g. with the client's ``extra_body``.
* Status ``queued`` / ``in_progress`` / ``completed`` / ``failed`` (a cancelled job reads ``failed``, code
  ``cancelled``); ``progress`` is a percentage.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
from typing import BinaryIO

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from ltx_pipelines.serve.catalog import DEFAULT_PIPELINE, PIPELINES, PipelineSpec
from ltx_pipelines.serve.jobs import Job, JobStatus
from ltx_pipelines.serve.service import JobService, invalid
from ltx_pipelines.serve.uploads import sniff
from ltx_pipelines.utils import constants as C

MODEL = "ltx-2"
DEFAULT_SECONDS = "4"
_SIZE = re.compile(r"^\s*(\d{1,5})\s*x\s*(\d{1,5})\s*$")
#: JobRequest fields an OpenAI-style request may not set directly (they come from model, size, seconds, input).
_MAPPED = {"pipeline", "height", "width", "num_frames", "images", "references"}
_STATUS = {JobStatus.QUEUED: "queued", JobStatus.RUNNING: "in_progress", JobStatus.COMPLETED: "completed"}


def pipeline_for_model(model: str | None) -> str:
    if model in (None, "", MODEL):
        return DEFAULT_PIPELINE
    name = model.removeprefix(f"{MODEL}-").replace("-", "_")
    if model.startswith(f"{MODEL}-") and name in PIPELINES:
        return name
    names = ", ".join(model_for_pipeline(p) for p in PIPELINES)
    raise invalid(f"Unknown model {model!r}; this server offers {names}.")


def model_for_pipeline(pipeline: str) -> str:
    return MODEL if pipeline == DEFAULT_PIPELINE else f"{MODEL}-{pipeline.replace('_', '-')}"


def parse_size(size: str) -> tuple[int, int]:
    """"WxH" -> (width, height)."""
    match = _SIZE.match(size)
    if not match:
        raise invalid(f"size must be WIDTHxHEIGHT, e.g. 768x512; got {size!r}.")
    return int(match.group(1)), int(match.group(2))


def frames_for_seconds(seconds: str, frame_rate: float) -> int:
    """The 8k+1 frame count nearest to ``seconds`` at ``frame_rate``."""
    try:
        value = float(seconds)
    except ValueError:
        value = -1.0
    if not value > 0 or value > 3600:
        raise invalid(f"seconds must be a positive number of seconds, e.g. \"4\"; got {seconds!r}.")
    return 8 * max(0, round((value * frame_rate - 1) / 8)) + 1


def _seconds_text(geometry: dict) -> str:
    return f"{geometry['num_frames'] / geometry['frame_rate']:.2f}".rstrip("0").rstrip(".")


def video_object(job: Job) -> dict:
    """A job as OpenAI's Video object."""
    status = _STATUS.get(job.status, "failed")
    completed = job.status is JobStatus.COMPLETED
    return {
        "id": job.id,
        "object": "video",
        "model": job.model or model_for_pipeline(job.pipeline),
        "status": status,
        "progress": 100 if completed else int(job.progress * 100),
        "created_at": int(job.created_at),
        "completed_at": int(job.finished_at) if completed and job.finished_at else None,
        "expires_at": None,
        "prompt": job.request.get("prompt"),
        "seconds": _seconds_text(job.geometry),
        "size": f"{job.geometry['width']}x{job.geometry['height']}",
        "remixed_from_video_id": None,
        "error": {"code": job.error_code or "failed", "message": job.error or "failed"} if status == "failed" else None,
    }


def _reference_role(spec: PipelineSpec, head: bytes) -> str:
    """Which input of the pipeline an ``input_reference`` is, from its content."""
    sniffed = sniff(head)
    is_image = sniffed is not None and sniffed.family == "image"
    if "video" in spec.media:
        return "video"
    if "audio" in spec.media and not is_image:
        return "audio"
    if "references" in spec.media and not is_image:
        return "reference_0"
    return "image_0"


def _data_url(url: str) -> BinaryIO:
    if not url.startswith("data:") or ";base64," not in url:
        raise invalid("input_reference.image_url must be a base64 data: URL; this server fetches no remote URLs.")
    try:
        return io.BytesIO(base64.b64decode(url.split(";base64,", 1)[1], validate=True))
    except (binascii.Error, ValueError):
        raise invalid("input_reference.image_url is not valid base64.") from None


async def _read_body(request: Request) -> tuple[dict, BinaryIO | None, object]:
    """(fields, the input reference if any, the form to close) from multipart or JSON."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await request.form(max_files=4, max_fields=64)
        fields, reference = {}, None
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                if name != "input_reference":
                    raise invalid(f"Unexpected upload {name!r}; the only upload is input_reference.")
                reference = value.file
            elif name == "input_reference[image_url]":
                reference = _data_url(value)
            elif name.startswith("input_reference["):
                raise invalid(f"{name} is not supported; upload the file or give a data: URL as image_url.")
            else:
                fields[name] = value
        return fields, reference, form
    try:
        fields = json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise invalid(f"The request is neither multipart nor valid JSON ({e}).") from None
    if not isinstance(fields, dict):
        raise invalid("The request must be a JSON object.")
    given = fields.pop("input_reference", None)
    if given is None:
        return fields, None, None
    if not isinstance(given, dict) or "image_url" not in given:
        raise invalid("input_reference must be an upload or {\"image_url\": \"data:...\"}.")
    return fields, _data_url(str(given["image_url"])), None


def job_fields(fields: dict, reference: BinaryIO | None) -> tuple[dict, dict[str, BinaryIO], str]:
    """OpenAI-style fields -> (JobRequest fields, uploads by role, the model name)."""
    fields = dict(fields)
    model = fields.pop("model", None) or MODEL
    pipeline = pipeline_for_model(model)
    spec = PIPELINES[pipeline]
    if mapped := sorted(_MAPPED & fields.keys()):
        raise invalid(f"Set {', '.join(mapped)} through model, size, seconds and input_reference.")
    size, seconds = fields.pop("size", None), fields.pop("seconds", None)
    request: dict = {**fields, "pipeline": pipeline}
    if spec.takes_geometry:
        if size:
            request["width"], request["height"] = parse_size(str(size))
        try:
            frame_rate = float(fields.get("frame_rate", C.DEFAULT_FRAME_RATE))
        except ValueError:
            raise invalid(f"frame_rate must be a number; got {fields['frame_rate']!r}.") from None
        request["num_frames"] = frames_for_seconds(str(seconds or DEFAULT_SECONDS), frame_rate)
    elif size or seconds:
        raise invalid(f"{model} keeps the source clip's size and length: leave out size and seconds.")
    uploads: dict[str, BinaryIO] = {}
    if reference is not None:
        role = _reference_role(spec, reference.read(64))
        reference.seek(0)
        uploads[role] = reference
        if role == "image_0":
            request["images"] = [{"frame_idx": 0, "strength": 1.0}]
        elif role == "reference_0":
            request["references"] = [{"strength": 1.0}]
    return request, uploads, model


def router(service: JobService) -> APIRouter:
    routes = APIRouter(prefix="/v1", tags=["OpenAI-compatible"])

    @routes.post("/videos")
    async def create_video(request: Request) -> dict:
        """Create a video (multipart, as the openai client sends it, or JSON)."""
        fields, reference, form = await _read_body(request)
        try:
            request_fields, uploads, model = job_fields(fields, reference)
            job_request = service.parse(request_fields)
            job = await run_in_threadpool(service.submit, job_request, uploads, model=model)
        finally:
            if form is not None:
                await form.close()
        return video_object(job)

    @routes.get("/videos")
    def list_videos(
        after: str | None = None,
        limit: int = Query(20, ge=1, le=100),
        order: str = Query("desc", pattern="^(asc|desc)$"),
    ) -> dict:
        jobs, more = service.store.list_jobs(limit=limit, after=after, order=order)
        data = [video_object(j) for j in jobs]
        return {
            "object": "list", "data": data, "has_more": more,
            "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None,
        }  # fmt: skip

    @routes.get("/videos/{video_id}")
    def retrieve_video(video_id: str) -> dict:
        return video_object(service.get(video_id))

    @routes.delete("/videos/{video_id}")
    def delete_video(video_id: str) -> dict:
        service.delete(video_id)
        return {"id": video_id, "object": "video.deleted", "deleted": True}

    @routes.get("/videos/{video_id}/content", response_class=FileResponse)
    def video_content(video_id: str, variant: str = "video") -> FileResponse:
        """The mp4 (range requests supported). Thumbnails and spritesheets are not made."""
        if variant != "video":
            raise invalid(f"variant {variant!r} is not available; this server makes the video only.")
        return FileResponse(service.video_path(video_id), media_type="video/mp4", filename=f"{video_id}.mp4")

    return routes


__all__ = ["frames_for_seconds", "job_fields", "model_for_pipeline", "parse_size", "pipeline_for_model", "router"]
