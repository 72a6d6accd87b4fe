"""Pinned (page-locked) host buffers that are quick to make.

Copies to the GPU run at full speed (55 GB/s on the device's H200 host, against 8 from pageable
memory) only from page-locked memory. PyTorch's pinned allocations (``cudaHostAlloc``) filled at
2 GiB/s there: the 35 GiB of transformer blocks took ~30 s to pin. Mapping anonymous memory (with
transparent huge pages asked for), writing it, then registering it with CUDA (``cudaHostRegister``)
ran at 9 GiB/s, and copies from it to the GPU at the same 55 GB/s (``benchmarks/pinning.py``,
``benchmarks/pinning_h200.log``). Where registering fails the buffer comes from PyTorch's allocator.

Such memory is ours to free: a buffer is unregistered and unmapped when its last tensor view goes,
after the device has finished any copy that may still read it.
"""

from __future__ import annotations

import logging
import mmap
from collections.abc import Callable

import torch

logger = logging.getLogger(__name__)


class _Mapping(mmap.mmap):
    """An anonymous mapping that, once registered with CUDA, unregisters itself before it is unmapped."""

    address = 0

    def __del__(self) -> None:
        if not self.address:
            return
        try:
            if not torch.cuda.is_current_stream_capturing():
                torch.cuda.synchronize()  # a copy enqueued from this memory may still be running
            torch.cuda.cudart().cudaHostUnregister(self.address)
        except Exception:  # noqa: BLE001 - interpreter shutdown, CUDA torn down: the OS reclaims it all
            pass


def _mapped(nbytes: int) -> tuple[torch.Tensor, _Mapping]:
    mapping = _Mapping(-1, max(nbytes, 1), flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    if hasattr(mmap, "MADV_HUGEPAGE"):
        mapping.madvise(mmap.MADV_HUGEPAGE)  # fewer pages to fault in and to lock
    return torch.frombuffer(mapping, dtype=torch.uint8, count=nbytes), mapping


def _register(mapping: _Mapping, tensor: torch.Tensor) -> bool:
    err = torch.cuda.cudart().cudaHostRegister(tensor.data_ptr(), tensor.numel(), 0)
    if int(err) != 0:
        return False
    mapping.address = tensor.data_ptr()
    return True


def pinned_buffer(nbytes: int, fill: Callable[[torch.Tensor], None] | None = None) -> torch.Tensor:
    """A page-locked uint8 host tensor of ``nbytes``, written by ``fill`` (else zeroed) before it is locked.

    Written first, the memory is faulted in by the copy itself (measured fastest). Without CUDA it is
    plain host memory.
    """
    if nbytes <= 0:
        return torch.empty(0, dtype=torch.uint8)
    if not hasattr(mmap, "MAP_ANONYMOUS"):  # Windows: no anonymous mappings to register
        return _allocator_pinned(nbytes, fill)
    tensor, mapping = _mapped(nbytes)
    # Untouched, the pages would be faulted in by the registration itself, as slowly as cudaHostAlloc
    # (measured: 18.6 s for a 30 GiB LoRA backup); touched first, registering is quick.
    (fill or torch.Tensor.zero_)(tensor)
    if not torch.cuda.is_available() or _register(mapping, tensor):
        return tensor
    logger.debug("cudaHostRegister failed; using PyTorch's pinned allocator")
    return _allocator_pinned(nbytes, lambda pinned: pinned.copy_(tensor))


def _allocator_pinned(nbytes: int, fill: Callable[[torch.Tensor], None] | None) -> torch.Tensor:
    """The slower way: PyTorch's pinned allocator (``cudaHostAlloc``), then the contents."""
    pinned = torch.empty(nbytes, dtype=torch.uint8, pin_memory=torch.cuda.is_available())
    if fill is not None:
        fill(pinned)
    return pinned


__all__ = ["pinned_buffer"]
