"""The FastAPI application: the native job API under ``/api``, the web page at ``/``, the docs at ``/docs``.

:func:`create_app` wires the parts together; ``__main__`` runs it with uvicorn. The native API:

    GET    /api/info                   pipelines on offer, defaults, limits, the smoke-model notice
    POST   /api/jobs                   create a job (JSON, or multipart: a "request" JSON field + uploads)
    GET    /api/jobs                   list (newest first; ?limit=&after=<job id>)
    GET    /api/jobs/{id}              status: stage, step/total, progress, ETA, error
    GET    /api/jobs/{id}/events       Server-Sent Events: "job" updates, then "end"
    GET    /api/events                 Server-Sent Events for every job (what the page listens to)
    POST   /api/jobs/{id}/cancel       stop it (at the next step if it is running)
    POST   /api/jobs/{id}/rerun        queue a copy (same request, same uploads)
    DELETE /api/jobs/{id}              remove it with its files (not while it runs)
    GET    /api/jobs/{id}/video        the mp4, with HTTP range requests
    POST   /api/login, /api/logout     the page's session cookie (with --api-key)
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from ltx_pipelines.serve import openai_routes
from ltx_pipelines.serve.catalog import DEFAULT_PIPELINE, PIPELINES, Catalog
from ltx_pipelines.serve.errors import error_response
from ltx_pipelines.serve.events import JobEvents, sse
from ltx_pipelines.serve.jobs import JobStatus, JobStore
from ltx_pipelines.serve.requests import JobRequest
from ltx_pipelines.serve.security import SESSION_COOKIE, ApiKeyGuard, BodySizeLimit, BrowserGuard, is_loopback_address
from ltx_pipelines.serve.service import JobService, RequestRefused, invalid
from ltx_pipelines.serve.settings import ServerSettings
from ltx_pipelines.serve.storage import DataDir
from ltx_pipelines.serve.views import job_view
from ltx_pipelines.serve.worker import WorkerPool, default_devices

logger = logging.getLogger(__name__)

PAGE_DIR = Path(__file__).parent / "page"
_KEEPALIVE_SECONDS = 15.0
#: Form sizes in the page (the smoke model is tiny and runs on a CPU; real weights want real sizes).
_SMOKE_FORM = {"height": 128, "width": 128, "num_frames": 9, "frame_rate": 24.0, "num_inference_steps": 4}
_REAL_FORM = {"height": 512, "width": 768, "num_frames": 121, "frame_rate": 24.0, "num_inference_steps": None}


def _package_version() -> str:
    try:
        return version("ltx-pipelines")
    except PackageNotFoundError:
        return "unknown"


class LoginBody(BaseModel):
    api_key: str


def create_app(settings: ServerSettings, *, server_exiting: Callable[[], bool] = lambda: False) -> FastAPI:
    """Build the app. Model file headers are checked here: a bad file raises InputError before serving."""
    data = DataDir(settings.data_dir)
    data.create()
    devices = list(settings.devices or default_devices())
    catalog = Catalog(settings.files, device=devices[0])
    catalog.load_validators()
    smoke_notice = settings.files.smoke_notice()
    store = JobStore(settings.database_url or data.default_database_url())
    events = JobEvents()
    pool = WorkerPool(
        store=store, events=events, data=data, files=settings.files, devices=devices,
        idle_release=settings.idle_release, warm_up=settings.warm_up,
    )  # fmt: skip
    service = JobService(catalog=catalog, store=store, pool=pool, data=data, max_queue=settings.max_queue)
    guard = ApiKeyGuard(settings.api_key)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        for job in store.fail_interrupted():
            logger.warning("Job %s was running when the server stopped: marked failed", job.id)
        for path in data.remove_partial_outputs():
            logger.info("Removed the half-written %s", path.name)
        pool.start()
        logger.info("Serving %d pipelines on %s", len(catalog.validators), ", ".join(devices))
        try:
            yield
        finally:
            await run_in_threadpool(pool.stop)
            store.close()

    app = FastAPI(
        title="ltx-pipelines server",
        version=_package_version(),
        description="LTX-2 video generation as a service: queue jobs, follow their progress, download the mp4. "
        "`/v1/videos` is a subset of OpenAI's video API.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )  # fmt: skip
    app.state.service = service
    app.state.settings = settings

    def stopping() -> bool:
        return server_exiting() or pool.stopping.is_set()

    _add_error_handlers(app)
    _add_middleware(app, settings)
    protected = [Depends(guard)]
    api = APIRouter(prefix="/api", dependencies=protected, tags=["jobs"])
    info = _info(catalog, settings, smoke_notice)

    @api.get("/info", tags=["server"])
    def get_info() -> dict:
        """What this server offers: pipelines (and why some are unavailable), form defaults, limits."""
        return {**info, "queued": store.count(JobStatus.QUEUED), "workers": pool.status()}

    @api.post("/jobs", status_code=201, openapi_extra=_JOB_BODY_DOC)
    async def create_job(request: Request) -> dict:
        """Create a job: a JSON JobRequest, or multipart with a `request` JSON field plus upload fields."""
        fields, uploads, form = await _read_job_body(request)
        try:
            job = await run_in_threadpool(service.submit, service.parse(fields), uploads)
        finally:
            if form is not None:
                await form.close()
        return job_view(job)

    @api.get("/jobs")
    def list_jobs(limit: int = Query(50, ge=1, le=200), after: str | None = None) -> dict:
        """Jobs, newest first; pass the last id of a page as `after` for the next page."""
        jobs, more = store.list_jobs(limit=limit, after=after)
        return {"jobs": [job_view(j) for j in jobs], "has_more": more}

    @api.get("/jobs/{job_id}")
    def get_job(job_id: str) -> dict:
        return job_view(service.get(job_id))

    @api.post("/jobs/{job_id}/cancel")
    def cancel_job(job_id: str) -> dict:
        """Cancel: a queued job at once, a running one at its next step (no output is written)."""
        return job_view(service.cancel(job_id))

    @api.post("/jobs/{job_id}/rerun", status_code=201)
    def rerun_job(job_id: str) -> dict:
        """Queue a copy of a job: the same request and the same uploaded inputs."""
        return job_view(service.rerun(job_id))

    @api.delete("/jobs/{job_id}")
    def delete_job(job_id: str) -> dict:
        """Delete a job that is not running, with its uploads and its video."""
        service.delete(job_id)
        return {"id": job_id, "deleted": True}

    @api.get("/jobs/{job_id}/video", response_class=FileResponse)
    def job_video(job_id: str) -> FileResponse:
        """The finished mp4 (supports Range requests, so a <video> element can seek)."""
        return FileResponse(
            service.video_path(job_id), media_type="video/mp4", filename=f"{job_id}.mp4",
            content_disposition_type="inline",
        )  # fmt: skip

    @api.get("/jobs/{job_id}/events", response_class=StreamingResponse)
    async def job_events(job_id: str, request: Request) -> StreamingResponse:
        """Server-Sent Events of one job: `job` (its JSON) on every change, `end` once it has finished."""
        service.get(job_id)  # 404 before the stream starts
        return _event_stream(request, events, store, stopping, job_id)

    @api.get("/events", response_class=StreamingResponse)
    async def all_events(request: Request) -> StreamingResponse:
        """Server-Sent Events of every job: `job` updates and `deleted` notices (what the page follows)."""
        return _event_stream(request, events, store, stopping, None)

    @app.post("/api/login", tags=["server"])
    def login(body: LoginBody, response: Response) -> dict:
        """Check the API key and give the page its session cookie (HttpOnly, SameSite=Strict)."""
        if guard.enabled:
            if not guard.key_matches(body.api_key):
                raise RequestRefused(401, "Wrong API key.", code="unauthorized")
            response.set_cookie(SESSION_COOKIE, guard.session_token(), httponly=True, samesite="strict", path="/")
        return {"ok": True}

    @app.post("/api/logout", tags=["server"])
    def logout(response: Response) -> dict:
        response.delete_cookie(SESSION_COOKIE, path="/")
        return {"ok": True}

    app.include_router(api)
    app.include_router(openai_routes.router(service), dependencies=protected)
    _add_docs(app, protected)
    _add_page(app)
    return app


# --------------------------------------------------------------------------- pieces of create_app


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestRefused)
    async def refused(request: Request, exc: RequestRefused) -> JSONResponse:
        return error_response(request.url.path, exc.status, exc.message, exc.code, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {401: "unauthorized", 404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(request.url.path, exc.status_code, str(exc.detail), code, dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def bad_parameters(request: Request, exc: RequestValidationError) -> JSONResponse:
        message = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return error_response(request.url.path, 422, message, "invalid_request")


def _add_middleware(app: FastAPI, settings: ServerSettings) -> None:
    # Added innermost first: CORS answers preflights, the guards run before anything else.
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Range"],
            expose_headers=["Content-Range", "Accept-Ranges", "Content-Length", "Retry-After"],
        )  # fmt: skip
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_upload_bytes)
    app.add_middleware(
        BrowserGuard, allowed_origins=set(settings.cors_origins), loopback_only=is_loopback_address(settings.host),
        allowed_hosts=set(settings.allowed_hosts),
    )  # fmt: skip


def _add_docs(app: FastAPI, protected: list) -> None:
    """The OpenAPI schema and Swagger UI, behind the API key like the API itself."""
    docs = APIRouter(dependencies=protected, include_in_schema=False)

    @docs.get("/openapi.json")
    def openapi_schema() -> JSONResponse:
        return JSONResponse(_openapi(app))

    @docs.get("/docs")
    def swagger() -> Response:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="ltx-pipelines server API")

    app.include_router(docs)


def _openapi(app: FastAPI) -> dict:
    """FastAPI's schema plus the JobRequest model, which the create route reads by hand (JSON or multipart)."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        request_schema = JobRequest.model_json_schema(ref_template="#/components/schemas/{model}")
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(request_schema.pop("$defs", {}))
        components["JobRequest"] = request_schema
        app.openapi_schema = schema
    return app.openapi_schema


_JOB_BODY_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/JobRequest"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["request"],
                    "properties": {
                        "request": {"type": "string", "description": "The JobRequest as JSON."},
                        "image_0": {"type": "string", "format": "binary", "description": "For images[0]; and so on."},
                        "reference_0": {
                            "type": "string", "format": "binary", "description": "For references[0] (ic_lora).",
                        },
                        "video": {"type": "string", "format": "binary", "description": "Source clip (retake)."},
                        "audio": {"type": "string", "format": "binary", "description": "Soundtrack (a2vid_two_stage)."},
                    },
                }
            },
        },
    }
}  # fmt: skip


def _add_page(app: FastAPI) -> None:
    """The web page: static files, open without the API key (the page asks for it when needed)."""

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(PAGE_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/page", StaticFiles(directory=PAGE_DIR), name="page")


def _info(catalog: Catalog, settings: ServerSettings, smoke_notice: str | None) -> dict:
    pipelines = []
    for spec in PIPELINES.values():
        defaults = spec.call_defaults()
        pipelines.append({
            "name": spec.name,
            "summary": spec.summary,
            "available": catalog.available(spec.name),
            "model": catalog.model_of(spec.name),
            "missing": spec.missing(catalog.files),
            "size_multiple": spec.pipeline_class.size_multiple,
            "guided": spec.guided,
            "takes_geometry": spec.takes_geometry,
            "takes_images": spec.takes_images,
            "media": list(spec.media),
            "hq_strengths": spec.hq_strengths,
            "defaults": {k: defaults.get(k) for k in ("height", "width", "num_frames", "frame_rate") if k in defaults},
        })  # fmt: skip
    return {
        "name": "ltx-pipelines",
        "version": _package_version(),
        "smoke_model": smoke_notice,
        "api_key_required": bool(settings.api_key),
        "default_pipeline": DEFAULT_PIPELINE,
        "pipelines": pipelines,
        "form_defaults": _SMOKE_FORM if smoke_notice else _REAL_FORM,
        "max_queue": settings.max_queue,
        "max_upload_mb": settings.max_upload_bytes / (1 << 20),
        "idle_release_seconds": settings.idle_release,
    }


async def _read_job_body(request: Request) -> tuple[dict, dict, object]:
    """(request fields, uploads by role, the form to close) from a JSON or multipart body."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await request.form(max_files=64, max_fields=16)
        uploads, fields_text = {}, None
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                if name in uploads:
                    raise invalid(f"Upload {name} was sent twice.")
                uploads[name] = value.file
            elif name == "request":
                fields_text = value
            else:
                raise invalid(f"Unexpected form field {name!r}: parameters go in the 'request' JSON field.")
        if fields_text is None:
            raise invalid("A multipart job needs a 'request' field holding the JobRequest as JSON.")
        return _json_object(fields_text), uploads, form
    if content_type.startswith("application/json"):
        return _json_object(await request.body()), {}, None
    raise RequestRefused(415, "Send the job as application/json or multipart/form-data.", code="unsupported_media_type")


def _json_object(text: str | bytes) -> dict:
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise invalid(f"The request is not valid JSON ({e}).") from None
    if not isinstance(value, dict):
        raise invalid("The request must be a JSON object.")
    return value


def _event_stream(
    request: Request, events: JobEvents, store: JobStore, stopping: Callable[[], bool], job_id: str | None
) -> StreamingResponse:
    """Server-Sent Events: the current state first, then every change; a one-job stream ends with `end`."""

    async def body() -> AsyncIterator[str]:
        subscription = events.subscribe(job_id)  # before reading the state, so no change is missed
        try:
            if job_id is not None:
                current = store.get(job_id)
                if current is None:
                    yield sse("deleted", {"id": job_id, "deleted": True})
                    return
                yield sse("job", job_view(current))
                if current.finished:
                    yield sse("end", job_view(current))
                    return
            else:
                yield sse("hello", {"time": time.time()})
            quiet_since = time.monotonic()
            while not stopping():
                updates = await subscription.next(timeout=1.0)
                if not updates:
                    if await request.is_disconnected():
                        return
                    if time.monotonic() - quiet_since >= _KEEPALIVE_SECONDS:
                        quiet_since = time.monotonic()
                        yield ": keepalive\n\n"
                    continue
                quiet_since = time.monotonic()
                for update in updates:
                    if update.get("deleted"):
                        yield sse("deleted", update)
                        if job_id is not None:
                            return
                        continue
                    yield sse("job", update)
                    if job_id is not None and update["status"] in ("completed", "failed", "cancelled"):
                        yield sse("end", update)
                        return
        finally:
            events.unsubscribe(subscription)

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(body(), media_type="text/event-stream", headers=headers)


__all__ = ["PAGE_DIR", "create_app"]
