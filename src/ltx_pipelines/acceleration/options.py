"""The acceleration switches a pipeline takes (``compile=``, ``step_cache=``, ``compile_cache=``, ``attention=``),
checked before any model loads.

Kept free of torch imports: the command line and the pipeline constructor read it on every run.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass

from ltx_pipelines.utils.errors import InputError

#: ``--compile`` left unset: whether these device types may compile at all. Off on the CPU: inductor's C++
#: build takes about a minute per input size, more than it saves on anything a CPU generates (and the tests must
#: not start compiling by default). On on CUDA, for passes of at least ``COMPILE_MIN_VIDEO_TOKENS`` video tokens.
COMPILE_BY_DEFAULT = {"cpu": False, "cuda": True}

#: ``--compile`` left unset on CUDA: compile the passes of at least this many video tokens, run smaller ones
#: plain. 1 536 tokens is stage 1 of a 768x512x121 generation (and the distilled pipeline's stage 1), the smallest
#: size timed both ways in one run (benchmarks/RESULTS.md, "Compiling from 1 536 tokens"; one H100, full-size
#: 19B transformer, random weights, warm second generation): compiled, the distilled stage 1 took 0.77 s against
#: 1.47 s plain (bf16) and 0.59 against 1.61 s (FP8), the FP8 30-step stage 1 6.06 against 9.91 s. The plain path
#: there is already stacked and replayed from CUDA graphs; compiling still halves it because Inductor fuses the
#: elementwise chains (and the FP8 activation quantisation) that the graphs replay as separate kernels. Larger
#: stages paid before (6 144 tokens: 1.129 vs 1.418 s per guided step, 24 576: 1.936 vs 2.217 s per pass).
#: Smaller stages (under 384x256 at 121 frames) stay plain: not measured, so conservatively not compiled.
COMPILE_MIN_VIDEO_TOKENS = 1536

#: ``--attention`` choices: ``auto`` is the measured SDPA backend per shape (bf16); ``8bit`` runs the video and
#: audio self-attentions through an 8-bit attention kernel where one is installed (see ``attention_8bit``).
ATTENTION_CHOICES = ("auto", "8bit")
#: The Python packages whose kernels qualify for ``--attention 8bit``, in order of preference.
ATTENTION_8BIT_PACKAGES = ("sageattention",)


@dataclass(frozen=True)
class AccelerationOptions:
    """``compile``: True/False, or None for the device's default (by token count on CUDA); ``step_cache``: a
    threshold, None or 0 = off; ``compile_cache``: the folder of compiled artefacts kept across processes (None:
    ``LTX_PIPELINES_COMPILE_CACHE`` or the user's cache folder; ``"off"``: PyTorch's own temporary folder);
    ``attention``: one of ``ATTENTION_CHOICES``."""

    compile: bool | None = None
    step_cache: float | None = None
    compile_cache: str | None = None
    attention: str = "auto"

    def __post_init__(self) -> None:
        if self.step_cache is not None and not (math.isfinite(self.step_cache) and self.step_cache >= 0):
            raise InputError(
                f"--step-cache must be a threshold >= 0 (0 or unset: off; try 0.05); got {self.step_cache!r}."
            )
        if self.attention not in ATTENTION_CHOICES:
            raise InputError(f"--attention must be one of {', '.join(ATTENTION_CHOICES)}; got {self.attention!r}.")

    def compiles(self, device_type: str) -> bool:
        """Whether any pass on this device may be compiled (the default compiles only large ones on CUDA)."""
        return self.compile if self.compile is not None else COMPILE_BY_DEFAULT.get(device_type, False)

    def compiles_at(self, device_type: str, video_tokens: int) -> bool:
        """Whether a pass of ``video_tokens`` video tokens runs compiled: the flag, else the measured policy."""
        if self.compile is not None:
            return self.compile
        return COMPILE_BY_DEFAULT.get(device_type, False) and video_tokens >= COMPILE_MIN_VIDEO_TOKENS

    def compiles_video_decoder(self) -> bool:
        """LTX-2.5's diffusion decoder compiles on ``--compile`` only, not by default: on an H200 compiling saved
        1.1 s of an 8.9 s decode (1536x1024x121) and made the first decode take 192 s instead of 31 s."""
        return self.compile is True

    def by_token_count(self) -> bool:
        """True where the token count decides (``--compile`` unset), False where the flag does."""
        return self.compile is None

    def caches_steps(self) -> bool:
        return bool(self.step_cache)

    def eight_bit_attention(self) -> bool:
        return self.attention == "8bit"

    def enabled(self, device_type: str) -> bool:
        return self.compiles(device_type) or self.caches_steps() or self.eight_bit_attention()

    def check_device(self, device_type: str) -> None:
        """Refuse, before any model loads, an option this device or environment cannot run."""
        if not self.eight_bit_attention():
            return
        if device_type != "cuda":
            raise InputError(f"--attention 8bit needs an NVIDIA GPU (this pipeline runs on {device_type}); leave "
                             "--attention out for the default attention.")  # fmt: skip
        if attention_8bit_package() is None:
            raise InputError(
                "--attention 8bit needs an 8-bit attention kernel, and none is installed: pip install "
                f"{ATTENTION_8BIT_PACKAGES[0]} (or leave --attention out for the default bf16 attention)."
            )


def attention_8bit_package() -> str | None:
    """The first installed package of ``ATTENTION_8BIT_PACKAGES`` (found without importing it), or None."""
    return next((name for name in ATTENTION_8BIT_PACKAGES if importlib.util.find_spec(name) is not None), None)


__all__ = [
    "ATTENTION_8BIT_PACKAGES",
    "ATTENTION_CHOICES",
    "COMPILE_BY_DEFAULT",
    "COMPILE_MIN_VIDEO_TOKENS",
    "AccelerationOptions",
    "attention_8bit_package",
]
