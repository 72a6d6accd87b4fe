"""The queue under load and across crashes: 429 with Retry-After, nothing lost or duplicated, kill -9."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from serve.serving import TINY_ONE_STAGE

from ltx_pipelines.serve.jobs import INTERRUPTED, JobStatus, JobStore

#: A job long enough to be caught running (about a tenth of a second per step).
LONG = {**TINY_ONE_STAGE, "num_inference_steps": 400}
SUBMISSIONS = 40
MAX_QUEUE = 10


def test_a_full_queue_answers_429_with_retry_after(start_server):
    server = start_server("--max-queue", "1")
    with server.client() as client:
        running = server.submit(client, LONG)
        server.wait_for(client, running["id"], lambda j: j["status"] == "running")
        server.submit(client, TINY_ONE_STAGE)  # the one place in the queue
        refused = client.post("/api/jobs", json=TINY_ONE_STAGE)
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) >= 1
        assert "--max-queue 1" in refused.json()["detail"]
        assert len(client.get("/api/jobs").json()["jobs"]) == 2
        client.post(f"/api/jobs/{running['id']}/cancel")


def test_an_idle_worker_releases_its_models_and_loads_them_again(start_server):
    server = start_server("--idle-release", "1")
    with server.client() as client:
        for _ in range(2):  # the second job reloads what the idle release freed
            job = server.submit(client, TINY_ONE_STAGE)
            assert server.wait_finished(client, job["id"])["status"] == "completed"
            worker = client.get("/api/info").json()["workers"][0]
            assert worker["job"] is None
            deadline = time.monotonic() + 30
            while worker["pipeline"] is not None:
                assert time.monotonic() < deadline, f"still holding {worker['pipeline']} after 30 s idle"
                time.sleep(0.2)
                worker = client.get("/api/info").json()["workers"][0]
    assert server.log.read_text().count("releases the ti2vid_one_stage models: idle for 1 s") == 2


def test_concurrent_submissions_complete_or_get_429_and_none_is_lost_or_doubled(start_server):
    server = start_server("--max-queue", str(MAX_QUEUE))
    start_together = threading.Barrier(SUBMISSIONS)

    def submit(i: int) -> httpx.Response:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            start_together.wait(timeout=30)
            return client.post("/api/jobs", json={**TINY_ONE_STAGE, "seed": i})

    with ThreadPoolExecutor(SUBMISSIONS) as pool:
        responses = list(pool.map(submit, range(SUBMISSIONS)))
    unexpected = [r.text for r in responses if r.status_code not in (201, 429)]
    assert not unexpected, unexpected
    accepted = [r.json() for r in responses if r.status_code == 201]
    refused = [r for r in responses if r.status_code == 429]
    assert len(accepted) >= MAX_QUEUE and refused  # the queue filled up, then refused
    assert all(int(r.headers["retry-after"]) >= 1 for r in refused)

    with server.client() as client:
        finished = [server.wait_finished(client, job["id"]) for job in accepted]
        assert all(job["status"] == "completed" for job in finished)
        listed = client.get("/api/jobs", params={"limit": 200}).json()["jobs"]
    ids = [job["id"] for job in accepted]
    assert len(set(ids)) == len(ids)
    assert sorted(j["id"] for j in listed) == sorted(ids)  # every accepted job once, nothing else
    assert sorted(j["request"]["seed"] for j in listed) == sorted(j["request"]["seed"] for j in accepted)
    outputs = sorted(p.name for p in (server.data_dir / "outputs").iterdir())
    assert outputs == sorted(f"{i}.mp4" for i in ids)
    # One worker, one pipeline: its models stayed resident from the first job to the last.
    assert server.log.read_text().count("Loaded transformer") == 1


def test_kill_9_mid_job_then_restart(start_server):
    server = start_server()
    outputs = server.data_dir / "outputs"
    with server.client() as client:
        killed = server.submit(client, LONG)
        waiting = [server.submit(client, {**TINY_ONE_STAGE, "seed": s}) for s in (1, 2)]
        server.wait_for(client, killed["id"], lambda j: j["status"] == "running" and (j["step"] or 0) >= 2)
    server.kill9()
    assert not (outputs / f"{killed['id']}.mp4").exists()
    # What media_io.write_video leaves behind when its process dies mid-write (its temporary file):
    leftover = outputs / f".{killed['id']}.0badc0de.partial.mp4"
    leftover.write_bytes(b"\0\0\0\x20ftypisom half a video")

    server.start()  # the same data folder, so the same job store
    with server.client() as client:
        failed = client.get(f"/api/jobs/{killed['id']}").json()
        assert (failed["status"], failed["error"], failed["error_code"]) == ("failed", INTERRUPTED, "server_stopped")
        assert client.get(f"/api/jobs/{killed['id']}/video").status_code == 409
        for job in waiting:
            assert server.wait_finished(client, job["id"])["status"] == "completed"
    assert not leftover.exists()
    assert sorted(p.name for p in outputs.iterdir()) == sorted(f"{j['id']}.mp4" for j in waiting)


def test_a_graceful_stop_puts_the_running_job_back_in_the_queue(start_server):
    server = start_server()
    with server.client() as client:
        job = server.submit(client, {**TINY_ONE_STAGE, "num_inference_steps": 20})
        server.wait_for(client, job["id"], lambda j: j["status"] == "running" and (j["step"] or 0) >= 1)
    server.stop()  # SIGINT, as Ctrl+C
    store = JobStore(f"sqlite:///{server.data_dir / 'jobs.sqlite3'}")
    assert store.get(job["id"]).status is JobStatus.QUEUED
    store.close()
    server.start()
    with server.client() as client:
        assert server.wait_finished(client, job["id"])["status"] == "completed"
