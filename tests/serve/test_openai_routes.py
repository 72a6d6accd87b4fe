"""The official ``openai`` client against /v1/videos: create, poll, download a playable mp4, list, delete."""

from __future__ import annotations

import base64
import io
import time

import numpy as np
import openai
import pytest
from helpers import probe_mp4
from PIL import Image

from ltx_pipelines.serve.openai_routes import frames_for_seconds, model_for_pipeline, pipeline_for_model
from ltx_pipelines.serve.service import RequestRefused

#: Our fields beyond OpenAI's, sent with the client's extra_body: tiny and quick.
TINY_EXTRA = {"num_inference_steps": 2, "frame_rate": 8}


@pytest.fixture(scope="module")
def client(shared_server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{shared_server.url}/v1", api_key="not-needed-here", max_retries=0)


def wait_done(client: openai.OpenAI, video_id: str, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        video = client.videos.retrieve(video_id)
        if video.status in ("completed", "failed"):
            return video
        time.sleep(0.2)
    raise AssertionError(f"video {video_id} did not finish within {timeout} s: {video}")


def test_create_poll_download_list_delete(client, tmp_path):
    created = client.videos.create(
        model="ltx-2", prompt="a lighthouse at dusk", size="64x64", seconds="1", extra_body=TINY_EXTRA
    )
    assert created.object == "video" and created.status in ("queued", "in_progress")
    assert (created.size, created.model, created.prompt) == ("64x64", "ltx-2", "a lighthouse at dusk")
    assert created.seconds == "1.12"  # 1 s at 8 fps -> 9 frames (8k+1) = 1.125 s

    done = wait_done(client, created.id)
    assert done.status == "completed" and done.progress == 100 and done.error is None
    assert done.completed_at >= done.created_at

    content = client.videos.download_content(created.id)
    path = tmp_path / "video.mp4"
    content.write_to_file(path)
    info = probe_mp4(path)
    assert (info["frames"], info["width"], info["height"], info["codec"]) == (9, 64, 64, "h264")
    assert info["fps"] == pytest.approx(8) and info["has_audio"]

    listed = [v.id for v in client.videos.list(limit=100)]
    assert created.id in listed
    deleted = client.videos.delete(created.id)
    assert deleted.deleted and deleted.id == created.id and deleted.object == "video.deleted"
    with pytest.raises(openai.NotFoundError):
        client.videos.retrieve(created.id)


def test_an_input_reference_conditions_the_first_frame(client, shared_server):
    buffer = io.BytesIO()
    Image.fromarray(np.full((48, 64, 3), 200, dtype=np.uint8)).save(buffer, format="PNG")
    created = client.videos.create(
        model="ltx-2-distilled", prompt="a still life", size="64x64", seconds="1",
        input_reference=("reference.png", buffer.getvalue(), "image/png"), extra_body={"frame_rate": 8},
    )  # fmt: skip
    assert wait_done(client, created.id).status == "completed"
    with shared_server.client() as native:
        job = native.get(f"/api/jobs/{created.id}").json()
    assert job["pipeline"] == "distilled" and job["inputs"] == ["image_0"]
    assert job["request"]["images"] == [{"frame_idx": 0, "strength": 1.0}]

    # The reference object form ({"image_url": ...}) as JSON and as form fields: data URLs only.
    data_url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    fields = {"model": "ltx-2-distilled", "prompt": "a still life", "size": "64x64", "seconds": "1", "frame_rate": "8"}
    with shared_server.client() as raw:
        as_json = raw.post("/v1/videos", json={**fields, "input_reference": {"image_url": data_url}})
        # a (None, value) part is a plain multipart field, as the client sends nested fields
        as_form = raw.post("/v1/videos", data=fields, files={"input_reference[image_url]": (None, data_url)})
        remote = raw.post("/v1/videos", json={**fields, "input_reference": {"image_url": "http://example.com/a.png"}})
    assert remote.status_code == 422 and "fetches no remote URLs" in remote.json()["error"]["message"]
    for response in (as_json, as_form):
        assert response.status_code == 200, response.text
        assert wait_done(client, response.json()["id"]).status == "completed"
    with shared_server.client() as native:
        assert native.get(f"/api/jobs/{as_form.json()['id']}").json()["inputs"] == ["image_0"]


def test_bad_requests_are_refused_with_the_reason(client):
    with pytest.raises(openai.UnprocessableEntityError, match="multiple of 64"):
        client.videos.create(model="ltx-2", prompt="x", size="100x64", seconds="1", extra_body=TINY_EXTRA)
    with pytest.raises(openai.UnprocessableEntityError, match="Unknown model 'sora-2'"):
        client.videos.create(model="sora-2", prompt="x", size="64x64", seconds="1")
    with pytest.raises(openai.UnprocessableEntityError, match="size must be WIDTHxHEIGHT"):
        client.videos.create(model="ltx-2", prompt="x", size="large", seconds="1")
    with pytest.raises(openai.UnprocessableEntityError, match="seconds must be a positive number"):
        client.videos.create(model="ltx-2", prompt="x", size="64x64", seconds="-3")


def test_model_names_and_durations_map_onto_pipelines_and_frames():
    assert pipeline_for_model("ltx-2") == "ti2vid_two_stages"
    assert pipeline_for_model(None) == "ti2vid_two_stages"
    assert pipeline_for_model("ltx-2-ti2vid-one-stage") == "ti2vid_one_stage"
    assert pipeline_for_model("ltx-2-ti2vid_one_stage") == "ti2vid_one_stage"
    assert model_for_pipeline("a2vid_two_stage") == "ltx-2-a2vid-two-stage"
    with pytest.raises(RequestRefused):
        pipeline_for_model("ltx-3")
    assert frames_for_seconds("4", 24.0) == 97
    assert frames_for_seconds("5", 24.0) == 121
    assert frames_for_seconds("0.01", 24.0) == 1
    assert all((frames_for_seconds(str(s), 25.0) - 1) % 8 == 0 for s in (1, 2.5, 8, 12))
