"""The acceleration switches a pipeline takes (``compile=``, ``step_cache=``), checked before any model loads.

Kept free of torch imports: the command line and the pipeline constructor read it on every run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ltx_pipelines.utils.errors import InputError

#: ``--compile`` left unset: compile on these device types. Off on the CPU: inductor's C++ build takes
#: about a minute per input size, more than it saves on anything a CPU generates. Off on CUDA until the
#: GPU run (benchmarks/gpu_run.sh) shows the gain per generation outweighs the one-time compilation of a
#: first generation (a one-shot command line run pays it; a server pays it once per size).
COMPILE_BY_DEFAULT = {"cpu": False, "cuda": False}


@dataclass(frozen=True)
class AccelerationOptions:
    """``compile``: True/False, or None for the device's default; ``step_cache``: a threshold, None or 0 = off."""

    compile: bool | None = None
    step_cache: float | None = None

    def __post_init__(self) -> None:
        if self.step_cache is not None and not (math.isfinite(self.step_cache) and self.step_cache >= 0):
            raise InputError(
                f"--step-cache must be a threshold >= 0 (0 or unset: off; try 0.05); got {self.step_cache!r}."
            )

    def compiles(self, device_type: str) -> bool:
        return self.compile if self.compile is not None else COMPILE_BY_DEFAULT.get(device_type, False)

    def caches_steps(self) -> bool:
        return bool(self.step_cache)

    def enabled(self, device_type: str) -> bool:
        return self.compiles(device_type) or self.caches_steps()


__all__ = ["COMPILE_BY_DEFAULT", "AccelerationOptions"]
