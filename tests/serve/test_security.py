"""Security flags on a real server: the API key, the upload cap, content checks, CORS and browser guards."""

from __future__ import annotations

import io
import json

import httpx
import numpy as np
import openai
import pytest
from PIL import Image
from serve.serving import TINY

KEY = "s3cret-key-for-tests"
ALLOWED = "http://allowed.test"


def png(size: int = 32) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((size, size, 3), 90, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def guarded(smoke_bundle, tmp_path_factory):
    from serve.serving import ServeProcess

    server = ServeProcess(
        smoke_bundle.root, tmp_path_factory.mktemp("guarded") / "data",
        "--max-upload-mb", "0.5", "--cors-origin", ALLOWED, "--allow-host", "videos.example.com", api_key=KEY,
    ).start()  # fmt: skip
    yield server
    server.stop()


PROTECTED = [
    ("GET", "/api/info"), ("GET", "/api/jobs"), ("POST", "/api/jobs"), ("GET", "/api/events"),
    ("GET", "/api/jobs/0123456789abcdef01234567/video"), ("DELETE", "/api/jobs/0123456789abcdef01234567"),
    ("GET", "/v1/videos"), ("POST", "/v1/videos"), ("GET", "/docs"), ("GET", "/openapi.json"),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_every_route_needs_the_key(guarded, method, path):
    anonymous = httpx.request(method, guarded.url + path, timeout=10)
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"
    wrong = httpx.request(method, guarded.url + path, headers={"Authorization": "Bearer nope"}, timeout=10)
    assert wrong.status_code == 401


def test_the_key_opens_the_api_and_the_page_needs_none(guarded):
    with guarded.client() as client:
        assert client.get("/api/info").json()["api_key_required"] is True
        assert client.get("/docs").status_code == 200
    for path in ("/", "/page/app.js", "/page/style.css"):
        assert httpx.get(guarded.url + path, timeout=10).status_code == 200


def test_the_openai_client_needs_the_key(guarded):
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{guarded.url}/v1", api_key="wrong", max_retries=0).videos.list()
    assert openai.OpenAI(base_url=f"{guarded.url}/v1", api_key=KEY, max_retries=0).videos.list().data is not None


def test_the_page_logs_in_with_a_session_cookie(guarded):
    with httpx.Client(base_url=guarded.url, timeout=10) as browser:
        assert browser.post("/api/login", json={"api_key": "nope"}).status_code == 401
        login = browser.post("/api/login", json={"api_key": KEY})
        assert login.status_code == 200
        cookie = login.headers["set-cookie"].lower()
        assert "ltx_session=" in cookie and "httponly" in cookie and "samesite=strict" in cookie
        assert KEY.lower() not in cookie  # the cookie is derived from the key, not the key
        assert browser.get("/api/info").status_code == 200
        browser.post("/api/logout")
        assert browser.get("/api/info").status_code == 401


def _uploads(server) -> list:
    return sorted(p.name for p in (server.data_dir / "uploads").iterdir())


def test_oversize_uploads_are_refused_before_they_are_stored(guarded):
    big = png() + b"\0" * (600 * 1024)
    with guarded.client() as client:
        before = _uploads(guarded)
        request = json.dumps({**TINY, "images": [{"frame_idx": 0}]})
        declared = client.post("/api/jobs", data={"request": request}, files={"image_0": ("a.png", big, "image/png")})
        assert declared.status_code == 413 and "0.5 MB" in declared.json()["detail"]

        def chunks():  # no Content-Length: the cap is enforced while the body streams in
            for _ in range(12):
                yield b"x" * (64 * 1024)

        streamed = client.post("/api/jobs", content=chunks(), headers={"content-type": "application/json"})
        assert streamed.status_code == 413
        assert _uploads(guarded) == before
        assert client.get("/api/info").json()["queued"] == 0


@pytest.mark.parametrize(
    ("request_fields", "role", "content", "fragment"),
    [
        ({**TINY, "images": [{"frame_idx": 0}]}, "image_0", b"#!/bin/sh\necho not an image\n", "is not an image"),
        ({**TINY, "pipeline": "a2vid_two_stage"}, "audio", png(), "is not an audio file"),
        ({"pipeline": "retake", "prompt": "x", "start_time": 0, "end_time": 0.2}, "video", png(), "is not a video"),
    ],
    ids=["text-as-image", "image-as-audio", "image-as-video"],
)
def test_uploads_are_checked_by_content_not_by_name(guarded, request_fields, role, content, fragment):
    with guarded.client() as client:
        before = _uploads(guarded)
        # The name and declared type claim the right kind; the content decides.
        claimed = {"image_0": ("photo.png", "image/png"), "audio": ("song.wav", "audio/wav"),
                   "video": ("clip.mp4", "video/mp4")}[role]  # fmt: skip
        files = {role: (claimed[0], content, claimed[1])}
        response = client.post("/api/jobs", data={"request": json.dumps(request_fields)}, files=files)
        assert response.status_code == 415, response.text
        assert fragment in response.json()["detail"]
        assert _uploads(guarded) == before


def test_cors_is_off_unless_an_origin_is_allowed(guarded, shared_server):
    preflight = {"Origin": ALLOWED, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,content-type"}  # fmt: skip
    allowed = httpx.options(f"{guarded.url}/api/jobs", headers=preflight, timeout=10)
    assert allowed.headers.get("access-control-allow-origin") == ALLOWED
    other = httpx.options(f"{guarded.url}/api/jobs", headers={**preflight, "Origin": "http://evil.test"}, timeout=10)
    assert "access-control-allow-origin" not in other.headers
    default = httpx.options(f"{shared_server.url}/api/jobs", headers=preflight, timeout=10)
    assert "access-control-allow-origin" not in default.headers  # the shared server was started without --cors-origin


def test_writes_from_other_sites_and_foreign_host_names_are_refused(guarded, shared_server):
    forged = httpx.post(f"{shared_server.url}/api/jobs", json=TINY, headers={"Origin": "http://evil.test"}, timeout=10)
    assert forged.status_code == 403 and "--cors-origin" in forged.json()["detail"]
    rebound = httpx.get(f"{shared_server.url}/api/info", headers={"Host": "evil.test"}, timeout=10)
    assert rebound.status_code == 403
    proxied = {"Host": "videos.example.com", "Authorization": f"Bearer {KEY}"}
    assert httpx.get(f"{guarded.url}/api/info", headers=proxied, timeout=10).status_code == 200
    with guarded.client() as client:
        from_allowed = client.post("/api/jobs", json={**TINY, "num_frames": 10}, headers={"Origin": ALLOWED})
        assert from_allowed.status_code == 422  # let through to the checks (and refused there for its frame count)
        same_site = client.post("/api/jobs", json={**TINY, "num_frames": 10}, headers={"Origin": guarded.url})
        assert same_site.status_code == 422
