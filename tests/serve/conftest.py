"""Fixtures of the serve tests: real servers (see ``serving.py``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from serve.serving import ServeProcess


@pytest.fixture(scope="session")
def shared_server(smoke_bundle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """One server for the API, OpenAI-client and browser tests (they do not assume an empty job list)."""
    server = ServeProcess(smoke_bundle.root, tmp_path_factory.mktemp("serve") / "data").start()
    yield server
    server.stop()


@pytest.fixture
def start_server(smoke_bundle, tmp_path: Path) -> Iterator[Callable[..., ServeProcess]]:
    """Start a server with extra flags (stopped after the test)."""
    servers: list[ServeProcess] = []

    def start(*args: str, api_key: str | None = None, name: str = "data") -> ServeProcess:
        server = ServeProcess(smoke_bundle.root, tmp_path / name, *args, api_key=api_key)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()
