"""The queue under load and across crashes: 429 with Retry-After, nothing lost or duplicated, kill -9."""

from __future__ import annotations

from serve.serving import TINY_ONE_STAGE

#: A job long enough to be caught running.
LONG = {**TINY_ONE_STAGE, "num_inference_steps": 400}


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
