"""The peak of live device bytes while a function runs, counted tensor by tensor (on fake tensors: no GPU needed).

The pre-flight plans memory from formulas (``diffusion_tiling.working_set_bytes`` and the constants beside it).
A formula is only as good as its list of what is alive at the worst moment, and a GPU run that finds it short
ends in an out-of-memory error far from the cause. Run under ``torch``'s ``FakeTensorMode``, the real code at
the real sizes allocates nothing, and :class:`DeviceBytes` sees every tensor it makes: when each storage is
born and when it dies. Its peak is what the CUDA caching allocator must hand out at least (each block rounded
to 512 bytes as the allocator does); fragmentation and library workspaces come on top, which is what
``budget.GPU_RESERVE`` is for. Tests compare the two at full channel counts, on the CPU, in seconds.
"""

from __future__ import annotations

import traceback
import weakref
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.weak import WeakIdKeyDictionary

#: The CUDA caching allocator's rounding of every block.
ALLOCATION_ROUNDING = 512


@dataclass(frozen=True)
class Allocation:
    """One storage alive at the peak: its bytes, the tensor that made it, and where in our code."""

    nbytes: int
    shape: tuple[int, ...]
    dtype: torch.dtype
    op: str
    where: str


class DeviceBytes(TorchDispatchMode):
    """Counts the bytes of storages on ``device_type`` made by the ops run under it; ``peak`` and ``at_peak``.

    Storages that exist before (weights, inputs: pass them to :meth:`ignore`) are not counted, nor are views of
    them. Use inside a ``FakeTensorMode`` for sizes the machine does not have; it works on real tensors too."""

    def __init__(self, device_type: str = "cuda", where_prefix: str = "ltx_pipelines"):
        super().__init__()
        self.device_type, self.where_prefix = device_type, where_prefix
        self._known: WeakIdKeyDictionary = WeakIdKeyDictionary()
        self._alive: dict[int, Allocation] = {}
        self._next = 0
        self.live = 0
        self.peak = 0
        self.at_peak: list[Allocation] = []

    def ignore(self, tensors: Iterable[torch.Tensor]) -> DeviceBytes:
        """Leave these tensors' storages (and views of them) out of the count."""
        for tensor in tensors:
            self._known[tensor.untyped_storage()] = None
        return self

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001 -- the dispatch protocol
        out = func(*args, **(kwargs or {}))
        for value in tree_flatten(out)[0]:
            if isinstance(value, torch.Tensor) and value.device.type == self.device_type:
                self._count(value, str(func))
        return out

    def _count(self, tensor: torch.Tensor, op: str) -> None:
        storage = tensor.untyped_storage()
        if storage in self._known:
            return
        nbytes = -(-storage.nbytes() // ALLOCATION_ROUNDING) * ALLOCATION_ROUNDING
        key, self._next = self._next, self._next + 1
        self._alive[key] = Allocation(nbytes, tuple(tensor.shape), tensor.dtype, op, self._where())
        self.live += nbytes
        if self.live > self.peak:
            self.peak, self.at_peak = self.live, list(self._alive.values())

        def freed(_ref: object, key: int = key, nbytes: int = nbytes) -> None:
            self.live -= nbytes
            self._alive.pop(key, None)

        self._known[storage] = weakref.ref(storage, freed)

    def _where(self) -> str:
        frames = traceback.extract_stack(limit=16)
        return " > ".join(f"{f.name}:{f.lineno}" for f in frames[:-3] if self.where_prefix in f.filename)

    def largest(self, count: int = 12) -> list[Allocation]:
        """The largest storages alive at the peak (what to look at when a formula falls short)."""
        return sorted(self.at_peak, key=lambda a: -a.nbytes)[:count]


__all__ = ["ALLOCATION_ROUNDING", "Allocation", "DeviceBytes"]
