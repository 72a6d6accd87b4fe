"""A real server for tests: ``python -m ltx_pipelines.serve --smoke`` in a subprocess on 127.0.0.1, a free port.

Every server runs exactly as a user starts it, on the session's smoke bundle; jobs use tiny sizes (64x64,
9 frames, a few steps) so each takes a second or two. Every wait has a timeout.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 90.0
JOB_TIMEOUT = 120.0

#: The smallest useful jobs: two-stage (the default pipeline) and one-stage (the fastest).
TINY = {"prompt": "a red kite over a beach", "height": 64, "width": 64, "num_frames": 9, "num_inference_steps": 2}
TINY_ONE_STAGE = {**TINY, "pipeline": "ti2vid_one_stage", "num_inference_steps": 1}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServeProcess:
    """One server subprocess over a data folder; ``restart()`` keeps the folder (and so the job store)."""

    def __init__(self, bundle: Path, data_dir: Path, *args: str, api_key: str | None = None):
        self.bundle, self.data_dir, self.args, self.api_key = bundle, data_dir, args, api_key
        self.process: subprocess.Popen | None = None
        self.port = 0
        self.log = data_dir.parent / f"{data_dir.name}-server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=30.0, **kwargs)

    def start(self) -> "ServeProcess":
        self.port = free_port()
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
        command = [
            sys.executable, "-m", "ltx_pipelines.serve", "--smoke", str(self.bundle), "--data-dir", str(self.data_dir),
            "--port", str(self.port), *self.args, *(["--api-key", self.api_key] if self.api_key else []),
        ]  # fmt: skip
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/api/info", timeout=2.0).status_code in (200, 401):
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the server did not answer within {START_TIMEOUT} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None

    def kill9(self) -> None:
        """Die like a crash: no shutdown code runs."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None

    def restart(self) -> "ServeProcess":
        self.stop()
        return self.start()

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:]) if self.log.exists() else ""

    # -- helpers for tests ----------------------------------------------------------------------

    def submit(self, client: httpx.Client, request: dict, files: dict | None = None) -> dict:
        """POST a job that must be accepted; returns its JSON."""
        if files:
            response = client.post("/api/jobs", data={"request": json.dumps(request)}, files=files)
        else:
            response = client.post("/api/jobs", json=request)
        assert response.status_code == 201, response.text
        return response.json()

    def wait_for(
        self, client: httpx.Client, job_id: str, until: Callable[[dict], bool], timeout: float = JOB_TIMEOUT
    ) -> dict:
        """Poll the job until ``until(job)`` holds; fail with the server log after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = client.get(f"/api/jobs/{job_id}").json()
            if until(job):
                return job
            time.sleep(0.1)
        raise AssertionError(f"job {job_id} did not get there within {timeout} s: {job}\n{self.log_tail()}")

    def wait_finished(self, client: httpx.Client, job_id: str, timeout: float = JOB_TIMEOUT) -> dict:
        return self.wait_for(client, job_id, lambda j: j["status"] in ("completed", "failed", "cancelled"), timeout)
