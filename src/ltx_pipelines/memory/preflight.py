"""The memory pre-flight: before any model loads, decide where the weights live, or refuse.

:func:`plan_memory` is a pure function of the request, the model sizes (from the files' headers)
and the memory there is, so every threshold is unit-tested with faked figures. ``auto`` takes the
first that fits:

1. ``none``: everything resident on the GPU (the fastest);
2. the same with the feed-forward computed in token chunks (same result, smaller peak);
3. ``cpu``: transformer blocks streamed from pinned host memory, if host memory allows;
4. ``disk``: blocks streamed from the memory-mapped checkpoint (least host memory).

A request that fits none is refused with the figures and what to change. Independently, the Gemma
text encoder is streamed by layer when it does not fit whole (the device then holds two layers,
the vision tower and the norms; the token embedding stays in host memory), and the VAE decodes in
tiles sized to what is left: the convolutional decoder's from ``VAE_BYTES_PER_VOXEL``, LTX-2.5's diffusion
decoder's from its architecture (``diffusion_tiling.tiles_for_budget``: the whole-video stage-4 input, the blend
buffers and one tile's stage-5 working set).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ltx_core.model.video_vae import SpatialTilingConfig, TemporalTilingConfig, TilingConfig

from ltx_pipelines.memory.budget import (
    GPU_RESERVE,
    ModelSizes,
    StageLoad,
    stage_activation_bytes,
    vae_decode_bytes,
)
from ltx_pipelines.memory.host import GIB, HostMemory
from ltx_pipelines.memory.offload import OffloadMode
from ltx_pipelines.models.ltx25.diffusion_tiling import TileSizes, stage4_input_bytes, tiles_for_budget
from ltx_pipelines.utils.errors import InputError

#: Activation savings tried in order: feed-forward chunk in video tokens (None: the whole sequence at
#: once), and compact timesteps (one AdaLN row per sample instead of one per token: the same values,
#: but a smaller matmul may round differently, so only as the last resort).
ACTIVATION_STEPS: tuple[tuple[int | None, bool], ...] = ((None, False), (4096, False), (1024, False), (1024, True))
#: VAE tiles tried, largest first: (pixels, overlap in pixels, frames, overlap in frames); ltx-core wants
#: pixels in multiples of 32 (>= 64) and frames in multiples of 8 (>= 16).
VAE_TILES = ((512, 64, 64, 24), (384, 64, 48, 16), (256, 64, 32, 16), (192, 32, 24, 8), (128, 32, 16, 8))
#: Host memory kept free for everything else (the OS, the decoded audio, Python).
HOST_MARGIN = 4 * GIB
TEXT_ENCODER_ACTIVATIONS = int(1.5 * GIB)  # all hidden states of two 1024-token prompts, with room
#: The embeddings processor's working set for two 1024-token prompts: both prompts' 49 hidden states
#: (0.36 GiB each in bf16) and the feature extractor's stacked, masked and normalised copies of one, the
#: normalised ones in float32 (0.72 GiB each). Measured on the H200: 3.9 GiB above the weights.
EMBEDDINGS_ACTIVATIONS = int(4.0 * GIB)
#: The same run in parts, with one prompt's hidden states on the device at a time.
STAGED_EMBEDDINGS_ACTIVATIONS = int(3.5 * GIB)
STREAM_SLOTS = 2


@dataclass(frozen=True)
class MemoryRequest:
    """What one generation will run: its denoising stages and its output size."""

    stages: tuple[StageLoad, ...]
    height: int
    width: int
    num_frames: int
    has_loras: bool = False  # any LoRA on the transformer (fused block by block when streaming)


@dataclass(frozen=True)
class MemoryPlan:
    """Where things live for one generation, and what that is expected to cost."""

    offload: OffloadMode  # resolved: none, cpu or disk
    reason: str
    gpu_budget: int | None  # bytes we may use on the GPU (None: no GPU)
    gpu_peak: int  # estimated
    host_peak: int  # estimated, for the weights we hold
    ff_chunk: int | None
    stream_text_encoder: bool
    vae_tiling: TilingConfig | TileSizes | None  # TileSizes: the diffusion decoder's
    slots: int = STREAM_SLOTS
    compact_timesteps: bool = False
    stage_embeddings: bool = False  # embeddings processor on the GPU one part at a time (kept on the host)
    keep_models: bool = False  # every model stays loaded between stages and calls (memory policy keep)

    def describe(self) -> str:
        parts = [f"offload={self.offload.value} ({self.reason})"]
        if self.keep_models:
            parts.append("every model stays loaded")
        if self.gpu_budget is not None:
            parts.append(f"estimated GPU peak {self.gpu_peak / GIB:.1f} of {self.gpu_budget / GIB:.1f} GiB")
        if self.host_peak:
            parts.append(f"host weights {self.host_peak / GIB:.1f} GiB")
        if self.ff_chunk:
            parts.append(f"feed-forward in chunks of {self.ff_chunk} tokens")
        if self.compact_timesteps:
            parts.append("one timestep row per sample")
        if self.stream_text_encoder:
            parts.append("Gemma streamed by layer")
        if self.stage_embeddings:
            parts.append("embeddings processor one part at a time")
        if isinstance(self.vae_tiling, TileSizes):
            parts.append("diffusion decoder tiles " + _describe_tiles(self.vae_tiling))
        elif self.vae_tiling is not None and self.vae_tiling.spatial_config is not None:
            s, t = self.vae_tiling.spatial_config, self.vae_tiling.temporal_config
            parts.append(f"VAE tiles {s.tile_size_in_pixels}px x {t.tile_size_in_frames} frames")
        return "; ".join(parts)


def _describe_tiles(sizes: TileSizes) -> str:
    """``frames x height x width`` of a tile ("whole" where an axis is not cut), and whether attention goes in slabs."""
    shape = " x ".join(str(axis[0]) if axis else "whole" for axis in (sizes.frames, sizes.height, sizes.width))
    return shape + (", attention in slabs of frames" if sizes.attention_slab else "")


def _gib(n: int) -> str:
    return f"{n / GIB:.1f} GiB"


@dataclass(frozen=True)
class _Need:
    """GPU bytes of one way to run the transformer, and the stage that peaks."""

    total: int
    weights: int
    activations: int
    stage: str


def _transformer_need(sizes: ModelSizes, request: MemoryRequest, offload: OffloadMode, ff_chunk: int | None,
                      compute_bytes: int, compact: bool = False, fp8: bool = False) -> _Need:  # fmt: skip
    t = sizes.transformer
    if offload is OffloadMode.NONE:  # ltx-core's build also moves the text connectors in, then drops them
        weights = t.total
        transient = sizes.components.connectors
    else:  # the rest and the ring; LoRAs are added into the slot (bf16), FP8 from disk quantizes into a copy
        weights = t.rest + STREAM_SLOTS * t.block + (t.block if fp8 and offload is OffloadMode.DISK else 0)
        transient = 0
    worst, stage_name = transient, "loading the weights"
    for stage in request.stages:
        batched = stage.video_tokens <= 2048
        act = stage_activation_bytes(stage, t, compute_bytes, batched=batched, ff_chunk=ff_chunk, compact=compact)
        if act > worst:
            worst, stage_name = act, stage.name
    return _Need(weights + worst, weights, worst, stage_name)


def _vae_tiling(budget: int, sizes: ModelSizes, request: MemoryRequest, compute_bytes: int = 2,
                ) -> TilingConfig | TileSizes | None:  # fmt: skip
    """None when the whole video decodes at once within the budget, else the largest tiling that fits."""
    free = budget - sizes.components.video_decoder
    if sizes.diffusion_decoder is not None:
        return _diffusion_tiling(free, budget, sizes, request, compute_bytes)
    if vae_decode_bytes(request.num_frames, request.height, request.width) <= free:
        return None
    for pixels, pixel_overlap, frames, frame_overlap in VAE_TILES:
        tile_frames = min(frames, request.num_frames)
        tile = vae_decode_bytes(tile_frames, min(pixels, request.height), min(pixels, request.width), request.height,
                                request.width)  # fmt: skip
        if tile <= free:
            return TilingConfig(
                spatial_config=SpatialTilingConfig(pixels, pixel_overlap),
                temporal_config=TemporalTilingConfig(frames, frame_overlap),
            )
    raise InputError(
        f"Decoding {request.width}x{request.height} video needs more GPU memory than the {_gib(budget)} left, "
        "even in the smallest tiles. Free GPU memory, raise --max-gpu-memory or lower the size."
    )


def _diffusion_tiling(free: int, budget: int, sizes: ModelSizes, request: MemoryRequest,
                      compute_bytes: int) -> TileSizes | None:  # fmt: skip
    """The diffusion decoder's tiles for what is left after its weights, or a refusal that says what to change.

    Its stages 1-3 run on the whole video and their output stays on the device, so no tiling gets below that:
    a video whose stage-4 input does not fit (4K under a 6 GiB cap) is refused before anything loads.
    """
    config = sizes.diffusion_decoder
    frames, height, width = request.num_frames, request.height, request.width
    try:
        return tiles_for_budget(config, frames, height, width, max(0, free), element=compute_bytes)
    except ValueError:
        features = stage4_input_bytes(config, frames, height, width, compute_bytes)
        raise InputError(
            f"LTX-2.5's diffusion decoder cannot decode {width}x{height}x{frames} in the {_gib(budget)} left: its "
            f"first three stages run on the whole video and keep {_gib(features)} (about twice that while the "
            f"last one upsamples) besides its {_gib(sizes.components.video_decoder)} of weights, whatever the "
            "tiles. Use --vae-decoder conv (the convolutional decoder file, which tiles everything), raise "
            "--max-gpu-memory, or lower --height/--width/--num-frames."
        ) from None


def _host_need(sizes: ModelSizes, request: MemoryRequest, fp8: bool) -> int:
    """Private host memory of ``cpu`` mode: the pinned blocks (FP8: one copy per LoRA set, two at most)."""
    copies = 2 if fp8 and request.has_loras else 1
    return copies * sizes.transformer.blocks


def _refusal(need: _Need, budget: int, free: int, cap: float | None, offload: OffloadMode) -> InputError:
    where = f"{_gib(free)} free" + (f", --max-gpu-memory {cap:g}" if cap is not None else "")
    advice = [] if offload is not OffloadMode.NONE else ["--offload cpu (stream the weights from host memory)"]
    advice += ["--quantization fp8-cast (halves the transformer)", "a smaller --height/--width or fewer --num-frames"]
    return InputError(
        f"This request needs about {_gib(need.total)} of GPU memory (transformer weights {_gib(need.weights)} with "
        f"--offload {offload.value}, activations {_gib(need.activations)} in {need.stage}), but only "
        f"{_gib(budget)} can be used ({where}, {_gib(GPU_RESERVE)} kept for the CUDA libraries). "
        f"Try {', '.join(advice)}."
    )


def plan_memory(
    *,
    sizes: ModelSizes,
    request: MemoryRequest,
    requested: OffloadMode,
    free_gpu: int | None,
    host: HostMemory,
    max_gpu_memory: float | None = None,
    fp8: bool = False,
    keep_resident: bool = False,
    compute_bytes: int = 2,
) -> MemoryPlan:
    """Where the weights live for this request, or an InputError that says what to change.

    ``free_gpu`` is the device's free memory in bytes (None for a CPU device); ``keep_resident``
    means every component stays loaded (memory policy ``keep``), so they must all fit together,
    with each stage's working set (text encoding, denoising, VAE tiles) on top of them all.
    """
    if free_gpu is None:  # CPU: nothing to plan; an explicit cpu/disk still streams (the tests do)
        mode = OffloadMode.NONE if requested is OffloadMode.AUTO else requested
        return MemoryPlan(mode, "no GPU", None, 0, 0, None, False, None, keep_models=keep_resident)
    budget = min(free_gpu, int(max_gpu_memory * GIB) if max_gpu_memory is not None else free_gpu) - GPU_RESERVE
    others = _kept_components(sizes, request, fp8) if keep_resident else 0
    modes = [requested] if requested is not OffloadMode.AUTO else [OffloadMode.NONE, OffloadMode.CPU, OffloadMode.DISK]
    host_need = _host_need(sizes, request, fp8)
    smallest: _Need | None = None
    for mode in modes:
        if mode is OffloadMode.CPU and requested is OffloadMode.AUTO and host_need > host.available - HOST_MARGIN:
            continue  # auto does not pick cpu without the host memory for it (an explicit cpu is obeyed)
        for ff_chunk, compact in ACTIVATION_STEPS:
            need = _transformer_need(sizes, request, mode, ff_chunk, compute_bytes, compact, fp8)
            smallest = need if smallest is None or need.total < smallest.total else smallest
            held = need.weights + others  # loaded throughout, under keep
            text_fits = not keep_resident or held + max(EMBEDDINGS_ACTIVATIONS, TEXT_ENCODER_ACTIVATIONS) <= budget
            if need.total + others <= budget and text_fits:
                plan = _finish_plan(mode, ff_chunk, compact, need, budget, sizes, request, requested, host, host_need,
                                    held if keep_resident else 0, compute_bytes)  # fmt: skip
                return replace(plan, keep_models=keep_resident)
    raise _refusal(smallest, budget, free_gpu, max_gpu_memory, modes[-1])


def plan_with_policy(*, keep: bool, sizes: ModelSizes, request: MemoryRequest, requested: OffloadMode,
                     host: HostMemory, **kwargs: object) -> MemoryPlan:  # fmt: skip
    """The plan under memory policy ``low``, or under ``keep`` when everything still fits together that way.

    Keeping every model loaded saves the reloads of a generation (Gemma, the transformer twice in the
    two-stage pipelines) but never moves the transformer out of the GPU, nor costs the last-resort
    activation saving: when ``keep`` would need either, each model is freed after use instead. A
    resident transformer that swaps LoRAs in memory keeps the originals of the weights they touch
    on the host (the blocks' size): without that much host memory free, it is not kept either.
    The other arguments are :func:`plan_memory`'s.
    """
    common = dict(sizes=sizes, request=request, host=host, **kwargs)
    low = plan_memory(requested=requested, keep_resident=False, **common)
    if not keep:
        return low
    backup = sizes.transformer.blocks if request.has_loras and low.offload is OffloadMode.NONE else 0
    if low.gpu_budget is not None and backup > host.available - HOST_MARGIN:
        return low
    try:
        kept = plan_memory(requested=low.offload, keep_resident=True, **common)
    except InputError:
        return low
    return low if kept.compact_timesteps and not low.compact_timesteps else replace(kept, reason=low.reason)


def _kept_components(sizes: ModelSizes, request: MemoryRequest, fp8: bool) -> int:
    """Bytes of everything but the transformer's own weights that stays loaded under ``keep``."""
    c = sizes.components
    kept = c.video_decoder + c.video_encoder + c.audio_decoder + c.upsampler + c.embeddings_processor
    kept += sizes.text_encoder.total
    if fp8 and request.has_loras:  # quantized weights cannot take a LoRA off again: a second transformer stays
        kept += sizes.transformer.total
    return kept


def _finish_plan(mode: OffloadMode, ff_chunk: int | None, compact: bool, need: _Need, budget: int, sizes: ModelSizes,
                 request: MemoryRequest, requested: OffloadMode, host: HostMemory, host_need: int,
                 held: int = 0, compute_bytes: int = 2) -> MemoryPlan:  # fmt: skip
    """``held``: bytes every model kept loaded holds (``keep``), which the VAE's tiles must leave room for."""
    te = sizes.text_encoder
    stream_te = te.total + TEXT_ENCODER_ACTIVATIONS > budget
    streamed_te = te.streamed(STREAM_SLOTS) + TEXT_ENCODER_ACTIVATIONS  # the layers in flight, no embedding
    if stream_te and streamed_te > budget:
        raise InputError(
            f"The Gemma text encoder needs at least {_gib(streamed_te)} of GPU memory even streamed by layer; "
            f"only {_gib(budget)} can be used. Free GPU memory or raise --max-gpu-memory."
        )
    stage_embeddings = _stage_embeddings(budget, sizes)
    tiling = _vae_tiling(budget - max(0, held - sizes.components.video_decoder), sizes, request,
                         compute_bytes)
    if requested is not OffloadMode.AUTO:
        reason = "asked for"
    elif mode is OffloadMode.NONE:
        reason = f"auto: {_gib(need.total)} fits in {_gib(budget)}"
    else:
        resident = sizes.transformer.total + need.activations
        reason = f"auto: resident needs {_gib(resident)}, {_gib(budget)} usable"
        if mode is OffloadMode.DISK:
            reason += f"; host memory {_gib(host.available)} ({host.source}) is short of {_gib(host_need)} pinned"
    return MemoryPlan(
        offload=mode,
        reason=reason,
        gpu_budget=budget,
        gpu_peak=need.total,
        host_peak=host_need if mode is OffloadMode.CPU else 0,
        ff_chunk=ff_chunk,
        stream_text_encoder=stream_te,
        vae_tiling=tiling,
        compact_timesteps=compact,
        stage_embeddings=stage_embeddings,
    )


def _stage_embeddings(budget: int, sizes: ModelSizes) -> bool:
    """Whether the embeddings processor must run one part at a time (feature extractor, then connectors)."""
    c = sizes.components
    if c.embeddings_processor + EMBEDDINGS_ACTIVATIONS <= budget:
        return False
    staged = max(c.feature_extractor, c.connectors) + STAGED_EMBEDDINGS_ACTIVATIONS
    if staged > budget:
        raise InputError(
            f"Turning the prompt into embeddings needs at least {_gib(staged)} of GPU memory, one part of the "
            f"embeddings processor at a time; only {_gib(budget)} can be used. Free GPU memory or raise "
            "--max-gpu-memory."
        )
    return True


__all__ = ["MemoryPlan", "MemoryRequest", "plan_memory", "plan_with_policy"]
