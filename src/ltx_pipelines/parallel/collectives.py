"""The collectives the parallel pieces use, in one place, so their time can be measured.

Timing is off by default (no synchronisation, no overhead). :func:`measured` turns it on for a
block: each collective then waits for the device before and after, and its wall time and bytes are
added to :data:`STATS` - the "communication time" of ``benchmarks/multi_gpu.py``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class CommStats:
    """Time, calls and bytes sent in collectives while :func:`measured` is active."""

    seconds: float = 0.0
    calls: int = 0
    bytes: int = 0
    enabled: bool = False

    def reset(self) -> None:
        self.seconds, self.calls, self.bytes = 0.0, 0, 0


STATS = CommStats()


@contextmanager
def measured() -> Iterator[CommStats]:
    """Count time and bytes of every collective in this block (synchronising the device around each)."""
    STATS.reset()
    STATS.enabled = True
    try:
        yield STATS
    finally:
        STATS.enabled = False


@contextmanager
def _timed(tensor: torch.Tensor) -> Iterator[None]:
    if not STATS.enabled:
        yield
        return
    cuda = tensor.device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(tensor.device)
    started = time.perf_counter()
    yield
    if cuda:
        torch.cuda.synchronize(tensor.device)
    STATS.seconds += time.perf_counter() - started
    STATS.calls += 1
    STATS.bytes += tensor.numel() * tensor.element_size()


def all_to_all(output: torch.Tensor, tensor: torch.Tensor, group: object | None) -> torch.Tensor:
    """Equal chunks of dim 0 of ``tensor`` to each rank of ``group``; chunk ``j`` of ``output`` from rank ``j``."""
    with _timed(tensor):
        dist.all_to_all_single(output, tensor, group=group)
    return output


def all_gather(tensor: torch.Tensor, group: object | None, size: int) -> torch.Tensor:
    """Every rank's ``tensor`` stacked along a new dim 0 (``size`` ranks in ``group``)."""
    tensor = tensor.contiguous()
    # Concatenated along dim 0 (the layout every backend accepts; gloo refuses a stacked output).
    output = torch.empty((size * tensor.shape[0], *tensor.shape[1:]), dtype=tensor.dtype, device=tensor.device)
    with _timed(tensor):
        dist.all_gather_into_tensor(output, tensor, group=group)
    return output.view(size, *tensor.shape)


def broadcast(tensor: torch.Tensor, src: int) -> torch.Tensor:
    """``tensor`` of rank ``src`` on every rank (in place)."""
    with _timed(tensor):
        dist.broadcast(tensor, src)
    return tensor


def broadcast_object(obj: object, src: int, device: torch.device) -> object:
    """A small picklable object of rank ``src`` on every rank."""
    box = [obj]
    with _timed(torch.empty(0, device=device)):
        dist.broadcast_object_list(box, src, device=device)
    return box[0]


def send(tensor: torch.Tensor, dst: int) -> object:
    """Start sending (contiguous) ``tensor`` to rank ``dst``; keep it alive until the returned request is waited on."""
    with _timed(tensor):
        return dist.isend(tensor, dst)


def recv(tensor: torch.Tensor, src: int) -> torch.Tensor:
    """Receive into ``tensor`` from rank ``src``."""
    with _timed(tensor):
        dist.recv(tensor, src)
    return tensor


__all__ = [
    "STATS", "CommStats", "all_gather", "all_to_all", "broadcast", "broadcast_object", "measured", "recv", "send",
]  # fmt: skip
