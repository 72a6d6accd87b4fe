"""Tensors of a safetensors file as zero-copy views of the memory-mapped file.

Reading a 35 GiB checkpoint through the usual loaders makes a private copy of every tensor; a
mapped view lives in the page cache instead (``RssFile``, not ``RssAnon``): the kernel may drop it
under pressure and read it again, and nothing of it counts against the process's private memory.
That is what ``--offload disk`` needs, and what the pinned store of ``--offload cpu`` reads from.
"""

from __future__ import annotations

import json
import struct
import warnings
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool,
}  # fmt: skip


class MappedSafetensors:
    """Read-only, zero-copy access to the tensors of one ``.safetensors`` file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        with open(self.path, "rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(length))
        header.pop("__metadata__", None)
        self._data_start = 8 + length
        self._entries: dict[str, tuple[torch.dtype, tuple[int, ...], int, int]] = {
            name: (DTYPES[info["dtype"]], tuple(info["shape"]), *info["data_offsets"]) for name, info in header.items()
        }

    @cached_property
    def _map(self) -> np.memmap:
        return np.memmap(self.path, dtype=np.uint8, mode="r")

    def keys(self) -> list[str]:
        return list(self._entries)

    def nbytes(self, name: str) -> int:
        _, _, start, end = self._entries[name]
        return end - start

    def tensor(self, name: str) -> torch.Tensor:
        """The tensor as a view of the mapped file (read-only: never write into it)."""
        dtype, shape, start, end = self._entries[name]
        raw = self._map[self._data_start + start : self._data_start + end]
        with warnings.catch_warnings():  # the map is read-only; we never write through the view
            warnings.simplefilter("ignore", UserWarning)
            flat = torch.frombuffer(raw, dtype=torch.uint8) if end > start else torch.empty(0, dtype=torch.uint8)
        return flat.view(dtype).reshape(shape)


__all__ = ["DTYPES", "MappedSafetensors"]
