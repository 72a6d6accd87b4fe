"""The native HTTP API against a real server on the smoke model: jobs, progress events, cancel, download."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from helpers import probe_mp4
from PIL import Image
from serve.serving import REPO, TINY, TINY_ONE_STAGE

from ltx_pipelines import RetakePipeline, TI2VidTwoStagesPipeline
from ltx_pipelines.engine.model_ledger import comfy_lora
from ltx_pipelines.utils.errors import InputError

#: A job long enough to be caught running (about a tenth of a second per step).
LONG = {**TINY_ONE_STAGE, "num_inference_steps": 400}


def png(size: tuple[int, int] = (80, 64)) -> bytes:
    pixels = np.zeros((size[1], size[0], 3), dtype=np.uint8)
    pixels[..., 0] = np.linspace(0, 255, size[0], dtype=np.uint8)[None, :]
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def read_events(client, job_id: str, timeout: float = 120.0) -> list[tuple[str, dict]]:
    """The job's Server-Sent Events up to and including `end`."""
    events, name = [], None
    with client.stream("GET", f"/api/jobs/{job_id}/events", timeout=timeout) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((name, json.loads(line.removeprefix("data: "))))
                if name == "end":
                    break
    return events


@pytest.fixture(scope="module")
def client(shared_server):
    with shared_server.client() as client:
        yield client


@pytest.fixture(scope="module")
def finished(shared_server, client, tmp_path_factory) -> tuple[dict, list, Path]:
    """A tiny two-stage job followed through its events, and its downloaded mp4."""
    job = shared_server.submit(client, TINY)
    events = read_events(client, job["id"])
    video = tmp_path_factory.mktemp("downloads") / "tiny.mp4"
    response = client.get(f"/api/jobs/{job['id']}/video")
    assert response.status_code == 200, response.text
    video.write_bytes(response.content)
    return job, events, video


def test_a_job_reports_its_stages_and_steps_then_completes(finished):
    job, events, _ = finished
    assert job["status"] == "queued"
    assert job["geometry"] == {"height": 64, "width": 64, "num_frames": 9, "frame_rate": 24.0}
    names = [name for name, _ in events]
    assert names[-1] == "end" and set(names[:-1]) == {"job"}
    steps = [(e["stage"], e["step"], e["total"]) for _, e in events if e["step"] is not None]
    assert ("stage 1", 2, 2) in steps and ("stage 2", 3, 3) in steps
    assert steps.index(("stage 1", 2, 2)) < steps.index(("stage 2", 3, 3))
    running = [e for _, e in events if e["status"] == "running" and e["step"] is not None]
    assert all(e["eta_seconds"] is not None for e in running)
    fractions = [e["progress"] for _, e in events]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert events[-1][1]["status"] == "completed" and events[-1][1]["video_url"] == f"/api/jobs/{job['id']}/video"


def test_the_video_is_a_playable_mp4_with_the_request_in_it(finished):
    _, _, video = finished
    info = probe_mp4(video)
    assert (info["frames"], info["width"], info["height"], info["codec"]) == (9, 64, 64, "h264")
    assert info["has_audio"] and info["metadata"]["prompt"] == TINY["prompt"]


def test_range_requests_return_the_asked_bytes(client, finished):
    job, _, video = finished
    whole = video.read_bytes()
    part = client.get(f"/api/jobs/{job['id']}/video", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 100-199/{len(whole)}"
    assert part.headers["accept-ranges"] == "bytes"
    assert part.content == whole[100:200]
    tail = client.get(f"/api/jobs/{job['id']}/video", headers={"Range": "bytes=-50"})
    assert tail.status_code == 206 and tail.content == whole[-50:]
    beyond = client.get(f"/api/jobs/{job['id']}/video", headers={"Range": f"bytes={len(whole) + 10}-"})
    assert beyond.status_code == 416


def test_list_get_and_delete(shared_server, client, finished):
    job = shared_server.submit(client, TINY_ONE_STAGE)
    shared_server.wait_finished(client, job["id"])
    listed = client.get("/api/jobs", params={"limit": 200}).json()["jobs"]
    assert job["id"] in [j["id"] for j in listed]
    assert listed == sorted(listed, key=lambda j: -j["created_at"])
    output = shared_server.data_dir / "outputs" / f"{job['id']}.mp4"
    assert output.is_file()

    deleted = client.delete(f"/api/jobs/{job['id']}")
    assert deleted.status_code == 200 and deleted.json() == {"id": job["id"], "deleted": True}
    assert client.get(f"/api/jobs/{job['id']}").status_code == 404
    assert client.get(f"/api/jobs/{job['id']}/video").status_code == 404
    assert not output.exists()
    assert client.delete(f"/api/jobs/{job['id']}").status_code == 404


def test_cancel_stops_a_running_job_and_the_worker_goes_on(shared_server, client):
    running = shared_server.submit(client, LONG)
    waiting = shared_server.submit(client, LONG)
    shared_server.wait_for(client, running["id"], lambda j: j["status"] == "running" and (j["step"] or 0) >= 2)
    assert client.delete(f"/api/jobs/{running['id']}").status_code == 409  # running: cancel first

    queued = client.post(f"/api/jobs/{waiting['id']}/cancel").json()
    assert queued["status"] == "cancelled"  # it never started
    flagged = client.post(f"/api/jobs/{running['id']}/cancel").json()
    assert flagged["cancel_requested"]
    stopped = shared_server.wait_finished(client, running["id"], timeout=60)
    assert stopped["status"] == "cancelled" and stopped["step"] < LONG["num_inference_steps"]
    outputs = shared_server.data_dir / "outputs"
    assert not [p for p in outputs.iterdir() if running["id"] in p.name]
    assert client.get(f"/api/jobs/{running['id']}/video").status_code == 409

    after = shared_server.submit(client, TINY_ONE_STAGE)
    assert shared_server.wait_finished(client, after["id"])["status"] == "completed"


def _smoke_two_stage(bundle) -> TI2VidTwoStagesPipeline:
    return TI2VidTwoStagesPipeline(
        checkpoint_path=bundle.checkpoint, distilled_lora=comfy_lora(bundle.distilled_lora, 0.8),
        spatial_upsampler_path=bundle.spatial_upsampler, gemma_root=bundle.gemma_root,
    )  # fmt: skip


@pytest.mark.parametrize(
    "overrides",
    [
        {"num_frames": 10},
        {"height": 96},
        {"num_inference_steps": 0},
        {"frame_rate": 0.0},
        {"video_guidance": {"stg_blocks": [99]}},
    ],
    ids=["frames", "size", "steps", "fps", "stg-block"],
)
def test_bad_requests_get_422_with_the_pipelines_message_before_queueing(client, smoke_bundle, tmp_path, overrides):
    request = {**TINY, **overrides}
    before = client.get("/api/info").json()["queued"]
    response = client.post("/api/jobs", json=request)
    assert response.status_code == 422
    pipeline = _smoke_two_stage(smoke_bundle)
    kwargs = {k: v for k, v in request.items() if k != "video_guidance"}
    if "video_guidance" in overrides:
        kwargs["video_guider_params"] = replace(pipeline.default_guider_params()[0], stg_blocks=[99])
    with pytest.raises(InputError) as expected:
        pipeline.validate(**kwargs, output_path=tmp_path / "out.mp4")
    assert response.json()["detail"] == str(expected.value)
    assert client.get("/api/info").json()["queued"] == before


def test_the_cli_prints_the_same_message(client, smoke_bundle, tmp_path):
    response = client.post("/api/jobs", json={**TINY, "num_frames": 12})
    command = [
        sys.executable, "-m", "ltx_pipelines.ti2vid_two_stages", "--checkpoint-path", str(smoke_bundle.checkpoint),
        "--distilled-lora", str(smoke_bundle.distilled_lora), "--spatial-upsampler-path",
        str(smoke_bundle.spatial_upsampler), "--gemma-root", str(smoke_bundle.gemma_root), "--prompt", "x",
        "--height", "64", "--width", "64", "--num-frames", "12", "--output-path", str(tmp_path / "o.mp4"),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    cli = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env, cwd=REPO)
    assert cli.returncode == 2
    assert f"error: {response.json()['detail']}" in cli.stderr


@pytest.mark.parametrize(
    ("request_fields", "fragment"),
    [
        ({**TINY, "pipeline": "no_such"}, "Unknown pipeline 'no_such'"),
        ({**TINY, "pipeline": "distilled"}, "does not take num_inference_steps"),
        ({**TINY, "colour": "red"}, "colour: Extra inputs are not permitted"),
        ({"height": 64}, "prompt: Field required"),
        ({**TINY, "pipeline": "a2vid_two_stage"}, "Missing upload: audio"),
        ({**TINY, "pipeline": "retake", "num_frames": 9}, "does not take"),
        ({"prompt": "x", "pipeline": "retake"}, "retake needs start_time and end_time"),
        ({**TINY, "pipeline": "ic_lora", "num_inference_steps": None}, "does not take num_inference_steps"),
        ({**TINY, "images": [{"frame_idx": 0}]}, "Missing upload: image_0"),
    ],
)
def test_requests_the_pipeline_cannot_take_get_422(client, request_fields, fragment):
    response = client.post("/api/jobs", json=request_fields)
    assert response.status_code == 422, response.text
    assert fragment in response.json()["detail"]


def test_malformed_bodies_get_clear_errors(client):
    broken = client.post("/api/jobs", content=b"{", headers={"content-type": "application/json"})
    assert broken.status_code == 422 and "not valid JSON" in broken.json()["detail"]
    assert client.post("/api/jobs", content=b"prompt=x", headers={"content-type": "text/plain"}).status_code == 415
    multipart = client.post("/api/jobs", data={"prompt": "x"}, files={"image_0": ("a.png", png(), "image/png")})
    assert multipart.status_code == 422 and "Unexpected form field 'prompt'" in multipart.json()["detail"]


def test_an_image_job_and_its_one_click_rerun(shared_server, client):
    request = {**TINY, "images": [{"frame_idx": 0, "strength": 1.0}]}
    job = shared_server.submit(client, request, files={"image_0": ("holiday.gif", png(), "image/gif")})
    assert job["inputs"] == ["image_0"]
    stored = shared_server.data_dir / "uploads" / job["id"]
    assert [p.name for p in stored.iterdir()] == ["image_0.png"]  # named by role and content, not by the client
    assert shared_server.wait_finished(client, job["id"])["status"] == "completed"

    again = client.post(f"/api/jobs/{job['id']}/rerun")
    assert again.status_code == 201
    copy = again.json()
    assert copy["id"] != job["id"] and copy["request"] == job["request"]
    assert shared_server.wait_finished(client, copy["id"])["status"] == "completed"
    copied = shared_server.data_dir / "uploads" / copy["id"] / "image_0.png"
    assert copied.read_bytes() == (stored / "image_0.png").read_bytes()


def test_pipelines_with_media_inputs_run_and_check_their_media(shared_server, client, finished, smoke_bundle, tmp_path):
    _, _, video = finished
    clip = ("clip.mp4", video.read_bytes(), "video/mp4")
    # a2vid: a video with sound serves as the soundtrack
    a2vid = shared_server.submit(client, {**TINY, "pipeline": "a2vid_two_stage"}, files={"audio": clip})
    # retake: the clip (64x64, 9 frames at 24 fps) with a window inside it; then one outside it
    retake_request = {"pipeline": "retake", "prompt": "x", "start_time": 0.1, "end_time": 0.3, "num_inference_steps": 2}
    retake = shared_server.submit(client, retake_request, files={"video": clip})
    assert retake["geometry"] == {"height": 64, "width": 64, "num_frames": 9, "frame_rate": 24.0}
    outside_request = json.dumps({**retake_request, "end_time": 5.0})
    outside = client.post("/api/jobs", data={"request": outside_request}, files={"video": clip})
    assert outside.status_code == 422
    local = tmp_path / "clip.mp4"
    local.write_bytes(video.read_bytes())
    pipeline = RetakePipeline(checkpoint_path=smoke_bundle.checkpoint, gemma_root=smoke_bundle.gemma_root)
    with pytest.raises(InputError) as expected:
        pipeline.validate(video_path=local, start_time=0.1, end_time=5.0, prompt="x", output_path=tmp_path / "o.mp4")
    assert outside.json()["detail"] == str(expected.value)
    # ic_lora: the clip as the reference video
    ic_request = {"prompt": "x", "pipeline": "ic_lora", "height": 64, "width": 64, "num_frames": 9}
    ic = shared_server.submit(client, {**ic_request, "references": [{"strength": 1.0}]}, files={"reference_0": clip})
    for job in (a2vid, retake, ic):
        done = shared_server.wait_finished(client, job["id"])
        assert done["status"] == "completed", done
        info = probe_mp4(shared_server.data_dir / "outputs" / f"{job['id']}.mp4")
        assert (info["frames"], info["width"], info["height"]) == (9, 64, 64)


def test_the_openapi_schema_and_docs_are_served(client):
    schema = client.get("/openapi.json").json()
    assert "JobRequest" in schema["components"]["schemas"]
    paths = {"/api/jobs", "/api/jobs/{job_id}/events", "/v1/videos", "/v1/videos/{video_id}/content"}
    assert paths <= schema["paths"].keys()
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def test_info_lists_every_pipeline_and_says_it_is_the_smoke_model(client):
    info = client.get("/api/info").json()
    assert len(info["pipelines"]) == 8 and all(p["available"] for p in info["pipelines"])
    assert {p["model"] for p in info["pipelines"]} == {"LTX-2 (2.0.0)"}  # the model each pipeline runs
    assert "noise" in info["smoke_model"]
    assert [w["device"] for w in info["workers"]] == ["cpu"]


def test_unknown_jobs_are_404(client):
    for path in ("/api/jobs/0123456789abcdef01234567", "/api/jobs/../../etc/passwd", "/api/jobs/x/video"):
        assert client.get(path).status_code == 404
    assert client.post("/api/jobs/0123456789abcdef01234567/cancel").status_code == 404


def test_the_all_jobs_stream_sees_new_jobs(shared_server, client):
    seen: list[dict] = []
    with client.stream("GET", "/api/events", timeout=60) as response:
        lines = response.iter_lines()
        assert next(lines) == "event: hello"
        job = shared_server.submit(client, TINY_ONE_STAGE)
        deadline = time.monotonic() + 60
        for line in lines:
            if line.startswith("data: "):
                update = json.loads(line.removeprefix("data: "))
                if update.get("id") == job["id"]:
                    seen.append(update)
                    if update["status"] == "completed":
                        break
            assert time.monotonic() < deadline, "no completion event within 60 s"
    assert seen[-1]["status"] == "completed"
    assert any(u["status"] == "running" for u in seen)
