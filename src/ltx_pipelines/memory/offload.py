"""Where the transformer's weights live during a generation."""

from __future__ import annotations

from enum import Enum

from ltx_pipelines.utils.errors import InputError


class OffloadMode(str, Enum):
    """``none``: resident on the GPU. ``cpu``: pinned host memory, streamed block by block.
    ``disk``: read from the memory-mapped checkpoint on demand. ``auto``: the first that fits."""

    NONE = "none"
    CPU = "cpu"
    DISK = "disk"
    AUTO = "auto"

    @classmethod
    def parse(cls, value: "OffloadMode | str | None") -> "OffloadMode":
        if value is None:
            return cls.AUTO
        try:
            return cls(value)
        except ValueError:
            names = ", ".join(m.value for m in cls)
            raise InputError(f"offload must be one of {names}; got {value!r}.") from None


def parse_max_gpu_memory(value: float | None) -> float | None:
    """A GiB cap on what we use of the GPU (for shared GPUs), or None for all that is free."""
    if value is None:
        return None
    value = float(value)
    if not value > 0:
        raise InputError(f"--max-gpu-memory must be a positive number of GiB; got {value:g}.")
    return value
