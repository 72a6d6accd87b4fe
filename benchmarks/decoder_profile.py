"""Where a diffusion-decoder decode spends its time: ``benchmarks/diffusion_decoder.py --profile``.

Two decodes, each seen one way, from outside the decoder (its methods are wrapped for the run, then restored):

* stage wall times, the device synchronised at every edge: the labels below, each with its own (self) time, and
  inside the stages the parts (``attention qkv/rope/proj``: the attention module around ``neighborhood
  attention``, i.e. its pre-norm and modulation, Q/K/V, Q/K norms, RoPE and output projection; ``neighborhood
  attention``: the windowed attention call with its token reordering; ``mlp``: norm, SwiGLU, residual, over token
  chunks; ``upsample``; ``context proj``; ``rest``: the stage's own residual adds, modulation, patchify), beside
  the stage's matmul/attention FLOPs (:func:`decoder_flops`) and the TFLOP/s they make;
* ``torch.profiler``: the 30 kernels with the most self device time (CPU self time on the CPU) and the totals per
  category (attention, GEMM, normalisation/RoPE/elementwise, copies, other).

Stage labels: ``plan`` (padding, the repeated last frame, the schedule), ``noise`` (drawing it), ``stage1 in``
(un-normalising, ``conv_in``), ``stage1``..``stage4`` (blocks and upsampling), ``tile cut`` (cutting a tile's
noise, resizing its pixels), ``stage5 step<i>`` (one model evaluation), ``stage5 euler`` (the updates),
``blend``, ``emit`` (the overlap carried to the next group, cropping), ``output to host``.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.autograd import DeviceType

from ltx_pipelines.models.ltx25 import diffusion_decoder as dd
from ltx_pipelines.models.ltx25.diffusion_tiling import TileGeometry

TOP_KERNELS = 30
NAME_CHARS = 160
#: Left out of the kernel names printed (C++ scopes and qualifiers; the template arguments stay).
NAME_NOISE = ("void ", "at::native::", "(anonymous namespace)::", "at::", "c10::", "std::")
#: Name fragments (lower case) per category, tried in this order: the first that matches wins. On the GPU the
#: names are kernels' (``triton_tem``: inductor's template kernels, which in the uncompiled decoder only the
#: compiled FlexAttention makes; ``nvjet``: cuBLAS's Hopper GEMMs); on the CPU they are aten operators'. Random
#: number kernels (the noise) go to ``other`` before ``elementwise`` or ``norm`` can take them.
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("other", ("distribution", "philox", "aten::normal_", "randn")),
    ("attention", ("flex", "natten", "na3d", "fmha", "flash", "attention", "sdpa", "triton_tem")),
    ("gemm", ("gemm", "cutlass", "sm90", "cublas", "nvjet", "xmma", "aten::mm", "aten::addmm", "aten::bmm",
              "aten::linear", "matmul")),  # fmt: skip
    ("copies", ("memcpy", "memset", "copy", "cat", "permute", "contiguous", "clone", "transpose", "index",
                "gather", "pad", "expand")),  # fmt: skip
    ("norm/rope/elementwise", ("triton", "elementwise", "vectorized", "norm", "reduce", "silu", "mul", "add", "sub",
                               "div", "cos", "sin", "pow", "rsqrt", "mean", "exp", "where", "fill")),  # fmt: skip
)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class StageClock:
    """Self wall time and calls per label; the device is synchronised at every span's start and end.

    A *part* span is booked under the innermost stage (non-part) span around it, as ``"<stage>: <part>"``."""

    def __init__(self, device: torch.device):
        self.device = device
        self.seconds: dict[str, float] = {}  # in the order the labels were first opened
        self.calls: Counter[str] = Counter()
        self._open: list[list[Any]] = []  # [label, is_part, seconds spent in nested spans]

    @contextlib.contextmanager
    def span(self, label: str, part: bool = False) -> Iterator[None]:
        if part:
            label = f"{next((s[0] for s in reversed(self._open) if not s[1]), 'outside')}: {label}"
        self.seconds.setdefault(label, 0.0)
        sync(self.device)
        self._open.append([label, part, 0.0])
        start = time.perf_counter()
        try:
            yield
        finally:
            sync(self.device)
            elapsed = time.perf_counter() - start
            _, _, nested = self._open.pop()
            self.seconds[label] += elapsed - nested
            self.calls[label] += 1
            if self._open:
                self._open[-1][2] += elapsed

    def wrap(self, fn: Callable, label: str | Callable[..., str], part: bool = False) -> Callable:
        """``fn`` timed under ``label`` (or ``label(*args, **kwargs)``)."""

        def timed(*args: Any, **kwargs: Any) -> Any:
            with self.span(label(*args, **kwargs) if callable(label) else label, part):
                return fn(*args, **kwargs)

        return timed

    def wrap_generator(self, fn: Callable[..., Iterator], label: str) -> Callable[..., Iterator]:
        """A generator function timed under ``label`` while it runs (not while its consumer does)."""

        def timed(*args: Any, **kwargs: Any) -> Iterator:
            items = fn(*args, **kwargs)
            while True:
                with self.span(label):
                    item = next(items, StopIteration)
                if item is StopIteration:
                    return
                yield item

        return timed


@contextlib.contextmanager
def patched(owner: object, name: str, value: object) -> Iterator[None]:
    """``owner.name = value`` inside the block; afterwards what was there (an instance attribute is removed)."""
    own = vars(owner)
    had, old = name in own, own.get(name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        if had:
            setattr(owner, name, old)
        else:
            delattr(owner, name)


@contextlib.contextmanager
def instrumented(decoder: dd.DiffusionVideoDecoder, clock: StageClock) -> Iterator[None]:
    """The decoder's stage methods and parts timed by ``clock`` inside the block (its results unchanged)."""
    steps = itertools.count()
    n_steps = decoder.config.num_steps
    stages: list[tuple[object, str, Callable]] = [
        (decoder, "plan_decode", clock.wrap(decoder.plan_decode, "plan")),
        (decoder, "_noise", clock.wrap(decoder._noise, "noise")),
        (decoder, "stages_1_to_3", clock.wrap(decoder.stages_1_to_3, "stage1 in")),
        (decoder, "_det_stage", clock.wrap(decoder._det_stage, lambda x, stage, **_: f"stage{stage + 1}")),
        (decoder, "stage_4", clock.wrap(decoder.stage_4, "stage4")),
        (decoder, "decode_tile", clock.wrap(decoder.decode_tile, "tile cut")),
        (decoder, "denoise", clock.wrap(decoder.denoise, "stage5 euler")),
        (decoder, "denoise_step", clock.wrap(decoder.denoise_step,
                                             lambda *_: f"stage5 step{next(steps) % n_steps + 1}")),  # fmt: skip
        (decoder, "_blend_group", clock.wrap(decoder._blend_group, "blend")),
        (decoder, "_emit", clock.wrap_generator(decoder._emit, "emit")),
    ]
    parts: list[tuple[object, str, Callable]] = [
        (dd, "neighborhood_attention", clock.wrap(dd.neighborhood_attention, "neighborhood attention", True)),
        (dd, "_residual_mlp", clock.wrap(dd._residual_mlp, "mlp", True)),
    ]
    for module in decoder.modules():
        if isinstance(module, dd.NeighborhoodAttention):
            parts.append((module, "forward", clock.wrap(module.forward, "attention qkv/rope/proj", True)))
        elif isinstance(module, dd.PixelShuffleUpsample):
            parts.append((module, "forward", clock.wrap(module.forward, "upsample", True)))
        elif isinstance(module, dd.DiffusionBlock):
            proj = module.context_proj
            parts.append((proj, "forward", clock.wrap(proj.forward, "context proj", True)))
    with contextlib.ExitStack() as stack:
        for owner, name, value in stages + parts:
            stack.enter_context(patched(owner, name, value))
        yield


# -- FLOPs ----------------------------------------------------------------------------------------------------


def _linear(tokens: int, fan_in: int, fan_out: int) -> int:
    return 2 * tokens * fan_in * fan_out


def _blocks(dims: tuple[int, int, int], width: int, kernel: tuple[int, int, int], depth: int,
            query_dims: tuple[int, int, int] | None = None) -> dict[str, int]:  # fmt: skip
    """Matmul FLOPs of ``depth`` neighborhood-attention blocks over a ``dims`` volume: Q/K/V/out projections and
    attention (4 x tokens x window x width) over ``query_dims`` (the volume attention runs on), SwiGLU over ``dims``."""
    query_dims = query_dims or dims
    queries, tokens = math.prod(query_dims), math.prod(dims)
    window = math.prod(min(k, n) for k, n in zip(kernel, query_dims, strict=True))
    hidden = (width * 4 + 15) // 16 * 16
    return {"linear": depth * (4 * _linear(queries, width, width) + 3 * _linear(tokens, width, hidden)),
            "attention": depth * 4 * queries * window * width}  # fmt: skip


def _upsampled(dims: tuple[int, int, int], stride: tuple[int, int, int], drop_first: bool) -> tuple[int, int, int]:
    t, h, w = (n * s for n, s in zip(dims, stride, strict=True))
    return (t - 1 if stride[0] == 2 and drop_first else t, h, w)


def decoder_flops(config: dd.DiffusionDecoderConfig, size: tuple[int, int, int], w_edges: str = "replicate",
                  ) -> dict[str, dict[str, int]]:  # fmt: skip
    """Matmul and attention FLOPs of one decode of the whole (untiled) ``size`` video, per stage label (those of
    :class:`StageClock`; each ``stage5 step<i>`` the same): ``tokens``, ``width``, ``linear`` (every per-token
    linear, from its weight shape) and ``attention``. Work a plan adds (tile overlaps, slab halos) is not counted;
    the latent padding, the repeated last frames and stage 5's W-edge copies (``w_edges="replicate"``) are."""
    width, height, frames = size
    c, geometry = config, TileGeometry.of(config)
    st, sh, sw = c.scale
    latent = ((frames - 1) // st + 1, height // sh, width // sw)
    dims = tuple(max(n, m) for n, m in zip(latent, geometry.minimum_latent, strict=True))
    dims = (dims[0] + c.trailing_frames, dims[1], dims[2])
    tokens = math.prod(dims)
    out = {"stage1 in": {"tokens": tokens, "width": c.stage_channels[0], "attention": 0,
                         "linear": _linear(tokens, c.latent_channels, c.stage_channels[0])}}  # fmt: skip
    for stage, ((stride, reduction), channels) in enumerate(zip(c.upsamples, c.stage_channels, strict=False)):
        record = {"tokens": math.prod(dims), "width": channels,
                  **_blocks(dims, channels, c.stage_kernels[stage], c.stage_depths[stage])}  # fmt: skip
        if stage == 3:  # the repeated last frames cut before the upsampling (DiffusionVideoDecoder.stage_4)
            ghost = c.trailing_frames * (c.scale[0] // stride[0])
            keep = min(dims[0], max(max(dims[0] - ghost, 1), -(-c.stage5_kernel[0] // stride[0])))
            dims = (keep, dims[1], dims[2])
        record["linear"] += _linear(math.prod(dims), channels, math.prod(stride) * (channels // reduction))
        dims = _upsampled(dims, stride, drop_first=True)
        out[f"stage{stage + 1}"] = record
    w5, tokens = c.stage5_width, math.prod(dims)
    query_dims = (dims[0], dims[1], dims[2] + 2 * (c.stage5_kernel[2] // 2)) if w_edges == "replicate" else dims
    blocks = _blocks(dims, w5, c.stage5_kernel, c.stage5_depth, query_dims)
    step = {"tokens": tokens, "width": w5, "attention": blocks["attention"],
            "linear": blocks["linear"] + c.stage5_depth * _linear(tokens, c.context_width, w5)
            + 2 * _linear(tokens, c.pixel_channels, w5)}  # fmt: skip
    out.update({f"stage5 step{i + 1}": dict(step) for i in range(c.num_steps)})
    return out


# -- the stage report -----------------------------------------------------------------------------------------


def _sig(value: float) -> float:
    """Three significant digits."""
    return float(f"{value:.3g}")


def _tflops(flop: int, seconds: float) -> float | None:
    return _sig(flop / seconds / 1e12) if flop and seconds > 0 else None


def stage_report(clock: StageClock, wall: float, flops: dict[str, dict[str, int]]) -> dict:
    """Per stage: seconds (self time plus its parts), calls, the parts' seconds (``rest``: the stage's own), and
    where the stage has FLOPs: GFLOP, TFLOP/s of the stage and of its neighborhood attention alone."""
    stages: dict[str, dict] = {}
    for label, seconds in clock.seconds.items():
        stage, _, part = label.partition(": ")
        entry = stages.setdefault(stage, {"s": 0.0, "calls": 0})
        entry["s"] += seconds
        if part:
            entry.setdefault("parts", {})[part] = round(seconds, 4)
        else:
            entry["calls"] = clock.calls[label]
            entry["self_s"] = seconds
    for stage, entry in stages.items():
        own = entry.pop("self_s", 0.0)
        if "parts" in entry:
            entry["parts"]["rest"] = round(own, 4)
        work = flops.get(stage)
        if work:
            attention_s = entry.get("parts", {}).get("neighborhood attention", 0.0)
            entry.update(tokens=work["tokens"], width=work["width"],
                         gflop={"linear": _sig(work["linear"] / 1e9), "attention": _sig(work["attention"] / 1e9)},
                         tflop_per_s=_tflops(work["linear"] + work["attention"], entry["s"]),
                         attention_tflop_per_s=_tflops(work["attention"], attention_s))  # fmt: skip
        entry["s"] = round(entry["s"], 4)
    timed = sum(clock.seconds.values())
    total_flop = sum(w["linear"] + w["attention"] for w in flops.values())
    return {"wall_s": round(wall, 3), "timed_s": round(timed, 3), "unattributed_s": round(wall - timed, 3),
            "gflop": _sig(total_flop / 1e9), "tflop_per_s": _tflops(total_flop, wall), "stages": stages}  # fmt: skip


def stage_times(decoder: dd.DiffusionVideoDecoder, decode: Callable[[Callable], torch.Tensor],
                device: torch.device, size: tuple[int, int, int],
                to_host: Callable[[torch.Tensor], torch.Tensor] = lambda chunk: chunk.float().cpu()) -> dict:  # fmt: skip
    """One decode with every stage timed; ``decode(receive)`` runs it, handing each chunk to ``receive`` (which
    times ``to_host``)."""
    clock = StageClock(device)
    sync(device)
    start = time.perf_counter()
    with instrumented(decoder, clock):
        decode(clock.wrap(to_host, "output to host"))
    sync(device)
    wall = time.perf_counter() - start
    return stage_report(clock, wall, decoder_flops(decoder.config, size, decoder.stage5_w_edges))


# -- torch.profiler -------------------------------------------------------------------------------------------


def category(name: str) -> str:
    lower = name.lower()
    return next((cat for cat, keys in CATEGORIES if any(k in lower for k in keys)), "other")


def short_name(name: str) -> str:
    """A kernel's name without scopes, qualifiers and its argument list, cut to ``NAME_CHARS``."""
    for noise in NAME_NOISE:
        name = name.replace(noise, "")
    if name.endswith(")") and ">(" in name:
        name = name[: name.rindex(">(") + 1]
    return name[:NAME_CHARS]


def kernel_times(events: list, device: torch.device) -> list[tuple[str, float, int]]:
    """``(name, self ms, calls)`` of the device's kernels and copies (on the CPU: its operators), most time first."""
    on_gpu = device.type == "cuda"
    rows = []
    for event in events:
        if on_gpu and event.device_type == DeviceType.CUDA:
            rows.append((event.key, event.self_device_time_total / 1e3, event.count))
        elif not on_gpu and event.device_type == DeviceType.CPU:
            rows.append((event.key, event.self_cpu_time_total / 1e3, event.count))
    return sorted((r for r in rows if r[1] > 0), key=lambda r: -r[1])


def profile_summary(rows: list[tuple[str, float, int]], wall: float, device: torch.device) -> dict:
    """Totals per category (ms, share of the busy time) and the top kernels, from :func:`kernel_times`' rows."""
    busy = sum(ms for _, ms, _ in rows)
    totals: dict[str, list[float]] = {cat: [0.0, 0] for cat, _ in CATEGORIES if cat != "other"}
    totals["other"] = [0.0, 0]  # last
    for name, ms, calls in rows:
        totals[category(name)][0] += ms
        totals[category(name)][1] += calls
    return {
        "time": "self device time" if device.type == "cuda" else "self CPU time",
        "wall_ms": round(wall * 1e3, 1), "busy_ms": round(busy, 1),  # busy < wall: the device waited (launches, host)
        "categories": {cat: {"ms": round(ms, 1), "share": round(ms / busy, 3) if busy else 0.0, "calls": int(calls)}
                       for cat, (ms, calls) in totals.items()},
        "top": [{"ms": round(ms, 2), "calls": calls, "category": category(name), "name": short_name(name)}
                for name, ms, calls in rows[:TOP_KERNELS]],
    }  # fmt: skip


def profiled(decode: Callable[[], object], device: torch.device) -> dict:
    """One decode under ``torch.profiler`` (CPU, and CUDA on a GPU), summarised."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as prof:
        sync(device)
        start = time.perf_counter()
        decode()
        sync(device)
        wall = time.perf_counter() - start
    return profile_summary(kernel_times(list(prof.key_averages()), device), wall, device)


__all__ = ["StageClock", "category", "decoder_flops", "instrumented", "profiled", "stage_times"]
