"""Reading host memory: MemAvailable, cgroup limits that are larger, the override."""

from __future__ import annotations

from ltx_pipelines.memory import host


def test_mem_available_is_read_in_bytes(tmp_path, monkeypatch) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       32000000 kB\nMemAvailable:   1000 kB\n")
    monkeypatch.delenv("LTX_HOST_MEMORY_GIB", raising=False)
    monkeypatch.setattr(host, "cgroup_headroom", lambda: None)
    got = host.available_host_memory(str(meminfo))
    assert got.available == 1000 * 1024 and got.source == "MemAvailable"


def test_a_larger_cgroup_limit_wins_over_a_low_meminfo(tmp_path, monkeypatch) -> None:
    """A VM that plugs memory in on use reports little at start; its cgroup limit is what holds."""
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemAvailable:   1000 kB\n")
    monkeypatch.delenv("LTX_HOST_MEMORY_GIB", raising=False)
    monkeypatch.setattr(host, "cgroup_headroom", lambda: 100 * host.GIB)
    got = host.available_host_memory(str(meminfo))
    assert got.available == 100 * host.GIB and "cgroup" in got.source


def test_the_override_wins(monkeypatch) -> None:
    monkeypatch.setenv("LTX_HOST_MEMORY_GIB", "64")
    assert host.available_host_memory().available == 64 * host.GIB


def test_process_memory_reads_private_resident_memory() -> None:
    mem = host.process_memory()
    assert mem["rss"] >= mem["rss_anon"] > 0
