"""Picking the SDPA backend per attention shape by timing them once on the GPU.

PyTorch's default order (flash, then memory-efficient, then cuDNN) is not the fastest for every
shape: at 24 576 video tokens attention is ~40 % of a pass, and flash, cuDNN and efficient differ
with head dim (128 video, 64 audio) and with the key length (self-attention, 1 024 prompt tokens,
126 audio tokens). The chooser times each candidate on random tensors of each shape the block
meets (a few milliseconds), keeps the fastest, and remembers it, so every later block call, and
every compiled graph, uses the same choice. On a CPU it leaves PyTorch's choice alone.

The choice is part of a compiled graph (each backend is its own ATen op), so it is also part of the compile
cache's key: re-measured in a second process, a near tie (cuDNN vs PyTorch's default at 6 144 tokens, 0.1 %
apart) or a 3 %-margin call flips, and every graph that holds that attention misses the cache (issue 23: 0 of
4 variants from the cache on an H100). With ``store`` (a JSON file beside the compile cache's bundles) the
first process's choices, and the timings behind them, are kept and every later process takes them unmeasured.

With ``eight_bit`` (``--attention 8bit``) the unmasked self-attentions take the 8-bit kernel instead
(``attention_8bit``), without timing: asked for, not measured against bf16.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from ltx_core.model.transformer.transformer_args import TransformerArgs
from torch.nn.attention import sdpa_kernel
from torch.nn.functional import scaled_dot_product_attention

from ltx_pipelines.acceleration.fused_ops import BACKENDS, EIGHT_BIT

logger = logging.getLogger(__name__)

#: Backends tried on a GPU ("default" is PyTorch's own pick, kept unless another is faster).
CANDIDATES = ("default", "flash", "cudnn", "efficient")
#: Another backend replaces the default only when it is at least this much faster (timing noise).
MIN_GAIN = 0.03


@dataclass(frozen=True)
class AttentionShape:
    batch: int
    heads: int
    q_tokens: int
    kv_tokens: int
    head_dim: int
    masked: bool
    dtype: torch.dtype
    device: str


def attention_shapes(
    model: torch.nn.Module, video: TransformerArgs | None, audio: TransformerArgs | None
) -> dict[str, AttentionShape]:
    """The attention shapes a block meets with these inputs, by the ``Kernels`` field they set."""
    block = model.transformer_blocks[0]
    shapes: dict[str, AttentionShape] = {}

    def add(name: str, attn: torch.nn.Module, q: torch.Tensor, kv_tokens: int, masked: bool) -> None:
        shapes[name] = AttentionShape(q.shape[0], attn.heads, q.shape[1], kv_tokens, attn.dim_head, masked,
                                      q.dtype, str(q.device))  # fmt: skip

    if video is not None:
        add("video_self", block.attn1, video.x, video.x.shape[1], video.self_attention_mask is not None)
        add("video_text", block.attn2, video.x, video.context.shape[1], video.context_mask is not None)
    if audio is not None:
        add("audio_self", block.audio_attn1, audio.x, audio.x.shape[1], audio.self_attention_mask is not None)
        add("audio_text", block.audio_attn2, audio.x, audio.context.shape[1], audio.context_mask is not None)
    if video is not None and audio is not None and hasattr(block, "audio_to_video_attn"):
        add("a2v", block.audio_to_video_attn, video.x, audio.x.shape[1], False)
        add("v2a", block.video_to_audio_attn, audio.x, video.x.shape[1], False)
    return shapes


def _time_ms(shape: AttentionShape, backend: str, repeats: int) -> float:
    g = torch.Generator(device=shape.device).manual_seed(0)

    def rand(tokens: int) -> torch.Tensor:  # laid out as the block lays them out: [B, T, H*d] viewed per head
        flat = torch.randn(shape.batch, tokens, shape.heads * shape.head_dim, device=shape.device, dtype=shape.dtype,
                           generator=g)  # fmt: skip
        return flat.view(shape.batch, tokens, shape.heads, shape.head_dim).transpose(1, 2)

    q, k, v = rand(shape.q_tokens), rand(shape.kv_tokens), rand(shape.kv_tokens)
    mask = None
    if shape.masked:
        mask = torch.zeros(shape.batch, 1, 1, shape.kv_tokens, device=shape.device, dtype=shape.dtype)

    def run() -> torch.Tensor:
        if backend == "default":
            return scaled_dot_product_attention(q, k, v, attn_mask=mask)
        with sdpa_kernel([BACKENDS[backend]]):
            return scaled_dot_product_attention(q, k, v, attn_mask=mask)

    run()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeats):
        run()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / repeats


def shape_key(shape: AttentionShape) -> str:
    """A shape as the store names it: everything but the device index (the store is per GPU model already)."""
    return (f"b{shape.batch}-h{shape.heads}-q{shape.q_tokens}-kv{shape.kv_tokens}-d{shape.head_dim}-"
            f"{'masked' if shape.masked else 'unmasked'}-{str(shape.dtype).removeprefix('torch.')}")  # fmt: skip


class AttentionChooser:
    """Measures once per shape, then answers from memory; ``timings`` keeps what it measured (ms).

    ``store``: a JSON file of choices shared by processes (see the module's doc): read before measuring a shape,
    written after; a damaged or unwritable file only costs a measurement.
    """

    def __init__(self, candidates: tuple[str, ...] = CANDIDATES, repeats: int = 5, eight_bit: bool = False,
                 store: Path | None = None):  # fmt: skip
        self.candidates = candidates
        self.repeats = repeats
        self.eight_bit = eight_bit
        self.store = store
        self.timings: dict[AttentionShape, dict[str, float | str]] = {}
        self.choices: dict[AttentionShape, str | None] = {}
        self.stored: set[AttentionShape] = set()  # shapes whose choice came from the store, not measured here

    def choose(
        self, model: torch.nn.Module, video: TransformerArgs | None, audio: TransformerArgs | None
    ) -> dict[str, str | None]:
        """Backend name (or None: PyTorch's default) per ``Kernels`` attention field."""
        shapes = attention_shapes(model, video, audio)
        return {name: self.eight_bit_backend(name, shape) or self.backend(shape) for name, shape in shapes.items()}

    def eight_bit_backend(self, name: str, shape: AttentionShape) -> str | None:
        """``"8bit"`` for a self-attention the 8-bit kernel takes (when asked for), else None."""
        from ltx_pipelines.acceleration import attention_8bit

        if not self.eight_bit or name not in ("video_self", "audio_self"):
            return None
        if not attention_8bit.qualifies(shape.head_dim, shape.masked, shape.device, shape.dtype):
            return None
        attention_8bit.attention_op()  # registered before any (compiled) block calls it
        return EIGHT_BIT

    def backend(self, shape: AttentionShape) -> str | None:
        if shape not in self.choices:
            if not shape.device.startswith("cuda"):
                self.choices[shape] = None
            elif not self._from_store(shape):
                self.choices[shape] = self._measure(shape)
                self._to_store(shape)
        return self.choices[shape]

    def _read_store(self) -> dict:
        if self.store is None or not self.store.is_file():
            return {}
        try:
            data = json.loads(self.store.read_text())
        except (OSError, ValueError) as e:
            logger.warning("Attention choices: ignored %s (%s)", self.store, str(e).splitlines()[0][:120])
            return {}
        return data if isinstance(data, dict) else {}

    def _from_store(self, shape: AttentionShape) -> bool:
        entry = self._read_store().get(shape_key(shape))  # read again per new shape: another process may have added it
        if not isinstance(entry, dict) or "choice" not in entry:
            return False
        choice = entry["choice"]
        if choice is not None and choice not in self.candidates:
            return False  # a name this version does not know: measure again
        self.choices[shape] = choice
        self.timings[shape] = dict(entry.get("ms") or {})
        self.stored.add(shape)
        logger.info("SDPA for %s: %s (kept from %s)", shape, choice or "default", self.store)
        return True

    def _to_store(self, shape: AttentionShape) -> None:
        if self.store is None:
            return
        from ltx_pipelines.acceleration.compile_cache import write_atomically

        data = self._read_store()
        data[shape_key(shape)] = {"choice": self.choices[shape], "ms": self.timings.get(shape, {})}
        try:
            write_atomically(self.store, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode())
        except OSError as e:  # the next process measures again: slower to compile, never wrong
            logger.warning("Attention choices: could not write %s (%s)", self.store, str(e).splitlines()[0][:120])
            self.store = None  # warned once

    def _measure(self, shape: AttentionShape) -> str | None:
        times: dict[str, float | str] = {}
        for backend in self.candidates:
            try:
                times[backend] = round(_time_ms(shape, backend, self.repeats), 4)
            except RuntimeError as e:  # this backend does not take this shape / dtype / mask
                times[backend] = f"unavailable: {str(e).splitlines()[0][:80]}"
        self.timings[shape] = times
        measured = {b: t for b, t in times.items() if isinstance(t, float)}
        if not measured:
            return None
        best = min(measured, key=measured.get)
        default = measured.get("default")
        if best == "default" or (default is not None and measured[best] > default * (1 - MIN_GAIN)):
            choice = None
        else:
            choice = best
        logger.info("SDPA for %s: %s (ms: %s)", shape, choice or "default", times)
        return choice

    def table(self) -> list[dict]:
        """One row per measured shape: its dimensions, each backend's time and the choice."""
        return [
            {"batch": s.batch, "heads": s.heads, "q_tokens": s.q_tokens, "kv_tokens": s.kv_tokens,
             "head_dim": s.head_dim, "masked": s.masked, "ms": t, "chosen": self.choices.get(s) or "default"}
            for s, t in self.timings.items()
        ]  # fmt: skip


__all__ = ["CANDIDATES", "AttentionChooser", "AttentionShape", "attention_shapes", "shape_key"]
