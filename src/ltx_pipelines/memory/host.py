"""What host memory there really is, and what this process uses of it.

``MemTotal``/``MemAvailable`` can lie low: some virtual machines start with a small amount of RAM
plugged in and add more as it is used (memory hot-plug / ballooning), so a program that sizes itself
from ``/proc/meminfo`` at start-up sees a fraction of what it may use. The limit that holds is the
cgroup's ``memory.max`` when one is set; where both are known we take the larger usable figure,
and ``LTX_HOST_MEMORY_GIB`` overrides both (for such machines, or to leave room for other work).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

GIB = 2**30

_CGROUP_FILES = (
    ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),  # cgroup v2
    ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),  # v1
)
# cgroup v1 reports "no limit" as a huge number near 2**63.
_NO_LIMIT = 2**60


def _read_int(path: str) -> int | None:
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return None
    if text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _meminfo(path: str = "/proc/meminfo") -> dict[str, int]:
    """The fields of /proc/meminfo in bytes (empty where it does not exist)."""
    values: dict[str, int] = {}
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return values
    for line in lines:
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            values[name] = int(parts[0]) * (1024 if len(parts) > 1 and parts[1] == "kB" else 1)
    return values


@dataclass(frozen=True)
class HostMemory:
    """Usable host memory in bytes, and where the figure came from (logged with the offload choice)."""

    available: int
    source: str

    @property
    def available_gib(self) -> float:
        return self.available / GIB


def cgroup_headroom() -> int | None:
    """Bytes this cgroup may still allocate, or None without a cgroup limit."""
    for limit_file, usage_file in _CGROUP_FILES:
        limit = _read_int(limit_file)
        if limit is None or limit >= _NO_LIMIT:
            continue
        usage = _read_int(usage_file) or 0
        return max(limit - usage, 0)
    return None


def available_host_memory(meminfo_path: str = "/proc/meminfo") -> HostMemory:
    """Host memory we may still use: the override, else the larger of MemAvailable and the cgroup headroom."""
    override = os.environ.get("LTX_HOST_MEMORY_GIB")
    if override:
        return HostMemory(int(float(override) * GIB), "LTX_HOST_MEMORY_GIB")
    info = _meminfo(meminfo_path)
    mem_available = info.get("MemAvailable", info.get("MemFree", 0))
    headroom = cgroup_headroom()
    if headroom is not None and headroom > mem_available:
        return HostMemory(headroom, "cgroup memory.max (MemAvailable reads lower; memory may be added on use)")
    return HostMemory(mem_available, "MemAvailable")


def process_memory(status_path: str = "/proc/self/status") -> dict[str, int]:
    """This process's resident memory in bytes: ``rss``, ``rss_anon`` (private, page cache excluded), ``peak``."""
    fields = {"VmRSS": "rss", "RssAnon": "rss_anon", "VmHWM": "peak"}
    out = dict.fromkeys(fields.values(), 0)
    info = _meminfo(status_path)
    for name, key in fields.items():
        out[key] = info.get(name, 0)
    return out


__all__ = ["GIB", "HostMemory", "available_host_memory", "cgroup_headroom", "process_memory"]
