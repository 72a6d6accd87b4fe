"""LTX-2.5's diffusion video decoder (the ``CausalDiffusionVAE`` file's decoder; the reference's DiffVAE).

The latent goes through four deterministic stages of 3D neighborhood-attention blocks (RMSNorm, Q/K RMSNorm,
absolute 3D RoPE, SwiGLU), each followed by a linear pixel-shuffle upsampling; the last stage's output is a
context volume at a quarter of the pixel resolution. Stage 5 then denoises patchified pixel noise: a few Euler
steps (v-prediction, or one x0 step) of blocks conditioned on that context (added through a projection) and on
the timestep (AdaLN-Zero modulation). The noise is drawn once, over the whole video, from the pipeline's
generator, so tiles cut from it agree with each other.

Stages 1-3 run once on the whole latent; stages 4-5 run per tile of the stage-4 grid
(:mod:`~ltx_pipelines.models.ltx25.diffusion_tiling`) and the decoded tiles are blended in pixel space and
handed out one temporal group at a time, as ltx-core's convolutional decoder hands out its temporal tiles.
The last latent frame is repeated before stages 1-4 and the copies cropped before stage 5 (NATTEN's shifted
border windows would otherwise see fewer real frames at the end); latents smaller than the windows are
edge-padded and the padding cropped from the pixels.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ltx_pipelines.models.ltx25 import decoder_kernels as kernels
from ltx_pipelines.models.ltx25 import diffusion_tiling as tiling
from ltx_pipelines.models.ltx25.diffusion_config import (  # noqa: F401 - the config's names, re-exported here
    DEFAULT_STAGE5_KERNEL,
    DEFAULT_STAGE_CHANNELS,
    DEFAULT_STAGE_DEPTHS,
    DEFAULT_STAGE_KERNELS,
    DEFAULT_UPSAMPLES,
    MLP_CHUNK_TOKENS,
    RMS_EPS,
    DiffusionDecoderConfig,
    Upsample,
    slab_frames,
)
from ltx_pipelines.models.ltx25.neighborhood_attention import Kernel, forget_block_masks, neighborhood_attention

logger = logging.getLogger(__name__)

def rope_frequencies(dim: int, base: float = 10000.0) -> torch.Tensor:
    """Inverse frequencies of one axis' share of a head (``1 / base^(2i / dim)``)."""
    exponents = torch.arange(0, dim, 2, dtype=torch.float64) / dim
    return (1.0 / base**exponents).to(torch.float32)


def rope_split(head_dim: int) -> tuple[int, int, int]:
    """How a head's channels are shared between the t, h and w rotations (even counts, t about a quarter)."""
    if head_dim % 8:
        raise ValueError(f"diffusion decoder head_dim {head_dim} must be a multiple of 8")
    t = (head_dim // 4) // 2 * 2
    hw = (head_dim - t) // 2
    if hw % 2:
        t -= 2
        hw = (head_dim - t) // 2
    return (t, hw, hw)


class NeighborhoodAttention(nn.Module):
    """Q/K/V (separate projections: each can go as soon as it is used), Q/K RMSNorm, 3D RoPE, windowed attention."""

    def __init__(self, dim: int, kernel: Kernel, head_dim: int):
        super().__init__()
        self.dim, self.kernel, self.head_dim, self.heads = dim, kernel, head_dim, dim // head_dim
        self.split = rope_split(head_dim)
        self.to_q = nn.Linear(dim, dim)
        self.to_k = nn.Linear(dim, dim)
        self.to_v = nn.Linear(dim, dim)
        self.q_norm = nn.RMSNorm(head_dim, eps=RMS_EPS)
        self.k_norm = nn.RMSNorm(head_dim, eps=RMS_EPS)
        self.proj = nn.Linear(dim, dim)
        #: Elements of one slab of frames (set per decode from the memory plan); None: the whole volume at once.
        self.slab_elements: int | None = None
        for name, width in zip(("inv_t", "inv_h", "inv_w"), self.split, strict=True):
            self.register_buffer(name, rope_frequencies(width), persistent=False)

    def _turns(self, x: torch.Tensor, scale: float) -> list[torch.Tensor]:
        """Each grid axis' rotation over ``x``'s volume (positions local to ``x``), times ``scale``."""
        return [kernels.rotations(torch.arange(x.shape[axis], dtype=torch.float32, device=x.device),
                                  inv.to(x.device), axis, scale)
                for axis, inv in zip((1, 2, 3), (self.inv_t, self.inv_h, self.inv_w), strict=True)]  # fmt: skip

    def _norm_rope(self, x: torch.Tensor, norm: nn.RMSNorm, scale: float = 1.0) -> torch.Tensor:
        """Q/K RMSNorm, then 3D RoPE in float32 (times ``scale``: the query's softmax scale rides along for free).

        On CUDA one fused kernel (:mod:`decoder_kernels`). Eager: adjacent channels (even, odd) are one complex
        number, one float32 copy rotated in place per axis, three kernels over the volume where slicing, rotating
        and concatenating took about twenty (profiled on an H200: a third of stage 5's time). Inside a compiled
        block: the same arithmetic on real pairs (inductor generates no code for complex numbers).
        """
        turns = self._turns(x, scale)
        done = kernels.fused(kernels.norm_rope, x, norm.weight, norm.eps, turns)
        if done is not None:
            return done
        x = norm(x)
        if torch.compiler.is_compiling():
            return kernels.rotate_real(x, turns).to(x.dtype)
        out = x.to(torch.float32, copy=True)
        pairs = torch.view_as_complex(out.unflatten(-1, (-1, 2)))
        start = 0
        for turn in turns:
            pairs[..., start : start + turn.shape[-2]].mul_(torch.view_as_complex(turn.contiguous()))
            start += turn.shape[-2]
        return out.to(x.dtype)

    def forward(self, x: torch.Tensor, replicate_w: bool = False,
                prepare: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:  # fmt: skip
        """Channels-last ``[B, T, H, W, C]`` in and out; ``prepare`` (the pre-norm and modulation) is applied here.

        With ``slab_elements`` set, the volume goes through in slabs of frames, each with half a temporal window of
        neighbours on both sides (all slabs the same length: one compiled shape): a query's window lies inside its
        slab, so the result is the whole volume's (up to summation order) while the temporaries span one slab
        only; the neighbours' queries are computed and dropped (slower: the memory plan's second choice).
        ``replicate_w``: along W the volume is extended by half a window of copies of its edge columns, so edge
        queries see centred windows over those copies instead of NATTEN's shifted ones: what the reference's
        default (W-chunked) decode does in stage 5.
        """
        frames = x.shape[1]
        per_frame = x[0, 0].numel() * x.shape[0]
        step = slab_frames(self.slab_elements, per_frame) if self.slab_elements else frames
        halo = self.kernel[0] // 2
        if step + 2 * halo >= frames:
            return self._attend(x if prepare is None else prepare(x), replicate_w)
        length = step + 2 * halo
        out = torch.empty_like(x)
        for start in range(0, frames, step):
            stop = min(start + step, frames)
            first = min(max(start - halo, 0), frames - length)
            slab = x[:, first : first + length]
            done = self._attend(slab if prepare is None else prepare(slab), replicate_w)
            out[:, start:stop] = done[:, start - first : stop - first]
        return out

    def _attend(self, x: torch.Tensor, replicate_w: bool) -> torch.Tensor:
        """RoPE positions local to ``x``: they cancel inside each window."""
        if replicate_w:
            half = self.kernel[2] // 2
            padded = torch.cat([x[:, :, :, :1].expand(-1, -1, -1, half, -1), x,
                                x[:, :, :, -1:].expand(-1, -1, -1, half, -1)], dim=3)  # fmt: skip
            return self._attend(padded, False)[:, :, :, half : half + x.shape[3]]
        shape = (*x.shape[:4], self.heads, self.head_dim)
        q = self._norm_rope(self.to_q(x).view(shape), self.q_norm, self.head_dim**-0.5)
        k = self._norm_rope(self.to_k(x).view(shape), self.k_norm)
        v = self.to_v(x).view(shape)
        return self.proj(neighborhood_attention(q, k, v, self.kernel))


class SwiGLU(nn.Module):
    """``w_down(silu(w_gate(x)) * w_up(x))``, hidden width 4x rounded up to 16."""

    def __init__(self, dim: int):
        super().__init__()
        hidden = (dim * 4 + 15) // 16 * 16
        self.w_gate = nn.Linear(dim, hidden, bias=False)
        self.w_up = nn.Linear(dim, hidden, bias=False)
        self.w_down = nn.Linear(hidden, dim, bias=False)

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """``silu(w_gate(x)) * w_up(x)``: what ``w_down`` projects (the product one fused kernel on CUDA)."""
        gate, up = self.w_gate(x), self.w_up(x)
        done = kernels.fused(kernels.silu_mul, gate, up)
        return done if done is not None else F.silu(gate) * up

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_down(self.hidden(x))

    def add_to(self, x: torch.Tensor, residual: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """``out = residual + self(x)`` for 2D rows, the residual added inside the down projection's matrix product
        (one rounding, no extra pass over the rows; ``out`` may be ``residual``)."""
        return torch.addmm(residual, self.hidden(x), self.w_down.weight.t(), out=out)


def _residual_mlp(x: torch.Tensor, norm: nn.RMSNorm, mlp: SwiGLU, scale: torch.Tensor | None = None,
                  shift: torch.Tensor | None = None, in_place: bool = False) -> torch.Tensor:  # fmt: skip
    """``x + mlp(modulated norm(x))`` over token chunks, so the 4x hidden activation never spans the volume.

    ``in_place``: the result overwrites ``x`` chunk by chunk (each chunk is read before it is written), for an
    ``x`` the caller owns: one volume copy less."""
    flat = x.reshape(-1, x.shape[-1])
    out = flat if in_place else torch.empty_like(flat)
    s = scale.reshape(-1, x.shape[-1]) if scale is not None else None
    b = shift.reshape(-1, x.shape[-1]) if shift is not None else None
    for start in range(0, flat.shape[0], MLP_CHUNK_TOKENS):
        part = flat[start : start + MLP_CHUNK_TOKENS]
        y = norm(part) if s is None else modulate(norm(part), s, b)
        mlp.add_to(y, part, out[start : start + MLP_CHUNK_TOKENS])
    return out.view(x.shape)


def modulate(x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """AdaLN's ``x * (1 + scale) + shift`` in one pass over ``x`` (one rounding)."""
    return torch.addcmul(shift, x, 1.0 + scale)


class NABlock(nn.Module):
    """Deterministic-stage block: pre-norm neighborhood attention and SwiGLU, both residual."""

    def __init__(self, dim: int, kernel: Kernel, head_dim: int):
        super().__init__()
        self.norm1 = nn.RMSNorm(dim, eps=RMS_EPS)
        self.attn = NeighborhoodAttention(dim, kernel, head_dim)
        self.norm2 = nn.RMSNorm(dim, eps=RMS_EPS)
        self.mlp = SwiGLU(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x, prepare=self.norm1)  # not in place: x may be a view of the resident stage-4 input
        return _residual_mlp(x, self.norm2, self.mlp, in_place=True)


class DiffusionBlock(nn.Module):
    """Stage-5 block: adds the projected context, then AdaLN-modulated attention and SwiGLU (gates folded at load)."""

    def __init__(self, dim: int, kernel: Kernel, head_dim: int, context_width: int):
        super().__init__()
        self.context_proj = nn.Linear(context_width, dim)
        self.scale_shift_table = nn.Parameter(torch.zeros(AdaLN.CHUNKS, dim))
        self.norm1 = nn.RMSNorm(dim, eps=RMS_EPS)
        self.attn = NeighborhoodAttention(dim, kernel, head_dim)
        self.norm2 = nn.RMSNorm(dim, eps=RMS_EPS)
        self.mlp = SwiGLU(dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor, modulation: list[torch.Tensor],
                replicate_w: bool = False) -> torch.Tensor:  # fmt: skip
        table = self.scale_shift_table
        scale_attn, shift_attn = modulation[0] + table[0], modulation[1] + table[1]
        scale_mlp, shift_mlp = modulation[3] + table[3], modulation[4] + table[4]
        x = x + self.context_proj(context)  # from here on x is this block's own: updated in place
        x.add_(self.attn(x, replicate_w, prepare=lambda part: modulate(self.norm1(part), scale_attn, shift_attn)))
        return _residual_mlp(x, self.norm2, self.mlp, scale_mlp, shift_mlp, in_place=True)


def _eager_on_failure(compiled: Callable, eager: Callable) -> Callable:
    """``compiled``, until it raises: then a warning, and ``eager`` for this and every later call."""
    state = {"failed": False}

    def forward(*args: object, **kwargs: object) -> object:
        if not state["failed"]:
            try:
                return compiled(*args, **kwargs)
            except Exception as error:  # noqa: BLE001 -- any compile failure: the eager block gives the same result
                state["failed"] = True
                logger.warning("diffusion decoder: torch.compile failed (%s: %s); this block runs eager",
                               type(error).__name__, str(error).splitlines()[0] if str(error) else "")  # fmt: skip
        return eager(*args, **kwargs)

    return forward


class AdaLN(nn.Module):
    """Timestep embedding -> seven per-channel vectors; stage-5 blocks use (scale, shift) of attention and MLP."""

    CHUNKS = 7

    def __init__(self, dim: int, t_emb_dim: int):
        super().__init__()
        self.proj = nn.Linear(t_emb_dim, self.CHUNKS * dim)

    def forward(self, t_emb: torch.Tensor) -> list[torch.Tensor]:
        return [c[:, None, None, None, :] for c in self.proj(F.silu(t_emb)).chunk(self.CHUNKS, dim=-1)]


class TimestepEmbedder(nn.Module):
    """256 sinusoidal channels (cos first) -> linear -> SiLU -> linear (``t_embedder.mlp.{0,2}`` in the file)."""

    CHANNELS = 256

    def __init__(self, dim: int):
        super().__init__()
        self.linear_1 = nn.Linear(self.CHANNELS, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        half = self.CHANNELS // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
        angles = t.float()[:, None] * freqs[None, :]
        sinusoid = torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1).to(dtype)
        return self.linear_2(F.silu(self.linear_1(sinusoid)))


class PixelShuffleUpsample(nn.Module):
    """Linear channel expansion then depth-to-space; a x2 temporal step drops its duplicated first frame at t=0."""

    def __init__(self, dim: int, stride: Kernel, reduction: int):
        super().__init__()
        self.stride = stride
        self.out_dim = dim // reduction
        self.proj = nn.Linear(dim, math.prod(stride) * self.out_dim)

    def forward(self, x: torch.Tensor, drop_first_frame: bool) -> torch.Tensor:
        b, t, h, w, _ = x.shape
        st, sh, sw = self.stride
        x = self.proj(x).view(b, t, h, w, self.out_dim, st, sh, sw)
        x = x.permute(0, 1, 5, 2, 6, 3, 7, 4).reshape(b, t * st, h * sh, w * sw, self.out_dim)
        return x[:, 1:] if st == 2 and drop_first_frame else x


def patchify(x: torch.Tensor, p: int) -> torch.Tensor:
    """``[B, C, F, H, W]`` pixels -> channels-last ``[B, F, H/p, W/p, C*p*p]`` (channel order c, w-offset, h-offset)."""
    b, c, f, h, w = x.shape
    x = x.view(b, c, f, h // p, p, w // p, p)
    return x.permute(0, 2, 3, 5, 1, 6, 4).reshape(b, f, h // p, w // p, c * p * p)


def unpatchify(x: torch.Tensor, p: int, channels: int) -> torch.Tensor:
    """Inverse of :func:`patchify`: channels-last patches -> ``[B, C, F, H, W]``."""
    b, f, h, w, _ = x.shape
    x = x.view(b, f, h, w, channels, p, p)  # last two: w-offset, h-offset
    return x.permute(0, 4, 1, 2, 6, 3, 5).reshape(b, channels, f, h * p, w * p)


class PerChannelStatistics(nn.Module):
    """The latent's per-channel mean and std (the file's ``per_channel_statistics``); the decoder un-normalises."""

    def __init__(self, channels: int):
        super().__init__()
        self.register_buffer("std-of-means", torch.ones(channels))
        self.register_buffer("mean-of-means", torch.zeros(channels))

    def un_normalize(self, x: torch.Tensor) -> torch.Tensor:
        std = self.get_buffer("std-of-means").view(1, -1, 1, 1, 1).to(x)
        return x * std + self.get_buffer("mean-of-means").view(1, -1, 1, 1, 1).to(x)


@dataclass
class _Stream:
    """The blended pixels of the temporal group being assembled and what the next group must add to."""

    carry: torch.Tensor | None = None
    carry_weights: torch.Tensor | None = None
    pending: list[torch.Tensor] = field(default_factory=list)


@dataclass
class DecodePlan:
    """What every tile of one decode needs, computed once per video: its schedule, the whole-video stage-4 input
    and noise, and the boxes that crop the blended pixels. Several processes holding the same plan decode the same
    tiles bit for bit, which is what lets the tiles be shared across ranks."""

    schedule: tiling.Schedule
    features: torch.Tensor  # channels-last stage-4 input (stages 1-3 of the whole padded latent)
    stage4_shape: tuple[int, int, int]
    noise: torch.Tensor  # pixel noise over the whole padded video
    full: tiling.PixelBox  # the padded video
    content: tiling.PixelBox  # the video asked for
    pads: tiling.Pads
    dtype: torch.dtype  # of the frames handed out

    @property
    def tiles(self) -> list[tiling.Tile]:
        return self.schedule.tiles

    def tile_shape(self, tile: tiling.Tile) -> tuple[int, ...]:
        """The shape of a decoded tile's pixels (what a receiver allocates)."""
        return (self.full.batch, self.full.channels, *tile.pixel_extent)


class DiffusionVideoDecoder(nn.Module):
    """The decoder; ``forward`` and ``tiled_decode`` behave as ltx-core's ``VideoDecoder`` (``[B, 3, F, H, W]`` in
    [-1, 1]), so ltx-core's ``decode_video`` and the pipelines' streaming to the mp4 writer use it unchanged."""

    def __init__(self, config: DiffusionDecoderConfig, stage5_w_edges: str = "replicate"):
        super().__init__()
        config.check()
        self.config = config
        #: Stage 5's windows at the W edges: "replicate" (the reference's default decode, W-chunked, pads with edge
        #: copies) or "shift" (NATTEN's windows everywhere, as the reference's combined_compile mode).
        self.stage5_w_edges = stage5_w_edges
        c = config
        self.per_channel_statistics = PerChannelStatistics(c.latent_channels)
        self.conv_in = nn.Linear(c.latent_channels, c.stage_channels[0])
        self.det_stages = nn.ModuleList()
        self.upsamples = nn.ModuleList()
        for i, (stride, reduction) in enumerate(c.upsamples):
            width = c.stage_channels[i]
            self.det_stages.append(nn.ModuleList(
                NABlock(width, c.stage_kernels[i], c.head_dim) for _ in range(c.stage_depths[i])))  # fmt: skip
            self.upsamples.append(PixelShuffleUpsample(width, stride, reduction))
        self.t_embedder = TimestepEmbedder(c.t_emb_dim)
        self.conv_in_x_t = nn.Linear(c.pixel_channels, c.stage5_width)
        self.shared_adaln = AdaLN(c.stage5_width, c.t_emb_dim)
        self.diff_blocks = nn.ModuleList(
            DiffusionBlock(c.stage5_width, c.stage5_kernel, c.head_dim, c.context_width) for _ in range(c.stage5_depth)
        )
        self.norm_out = nn.RMSNorm(c.stage5_width, eps=RMS_EPS)
        self.conv_out = nn.Linear(c.stage5_width, c.pixel_channels)
        #: Blocks compiled by :meth:`compile_blocks` (None: eager).
        self._compiled: dict[str, object] = {}

    # -- what callers ask --------------------------------------------------------------------------

    @property
    def geometry(self) -> tiling.TileGeometry:
        return tiling.TileGeometry.of(self.config)

    def forward(self, latent: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The whole video ``[B, 3, F, H, W]`` in [-1, 1] (one tile)."""
        return torch.cat(list(self.decode_chunks(latent, None, generator)), dim=2)

    def tiled_decode(self, latent: torch.Tensor, tiling_config: object, generator: torch.Generator | None = None,
                     ) -> Iterator[torch.Tensor]:  # fmt: skip
        """``[B, 3, f, H, W]`` chunks, one temporal group of tiles at a time, in order."""
        yield from self.decode_chunks(latent, tiling_config, generator)

    def compile_blocks(self, **options: object) -> None:
        """``torch.compile`` each block's forward, one graph per tile shape (a tiled decode has a handful).

        Static shapes: inductor's dynamic-shape lowering of the blocked attention fails on torch 2.11 (CPU check).
        A block whose compilation fails (no compiler, a lowering error) warns once and runs eager from then on.
        """
        import torch._dynamo

        torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
        for block in (*self.diff_blocks, *(b for stage in self.det_stages for b in stage)):
            compiled = torch.compile(block.forward, dynamic=False, **options)
            block.forward = _eager_on_failure(compiled, block.forward)  # type: ignore[method-assign]

    # -- the stages --------------------------------------------------------------------------------

    def stages_1_to_3(self, latent: torch.Tensor) -> torch.Tensor:
        """Latent (already padded) -> channels-last stage-4 input."""
        x = self.per_channel_statistics.un_normalize(latent).permute(0, 2, 3, 4, 1)
        x = self.conv_in(x)
        for stage in range(3):
            x = self._det_stage(x, stage, drop_first_frame=True)
        return x

    def _det_stage(self, x: torch.Tensor, stage: int, drop_first_frame: bool) -> torch.Tensor:
        for block in self.det_stages[stage]:
            x = block(x)
        return self.upsamples[stage](x, drop_first_frame)

    def stage_4(self, features: torch.Tensor, origin: bool, trailing: bool) -> torch.Tensor:
        """A stage-4 tile -> the stage-5 context, without the frames that came from the repeated last latent frame.

        The copies are cut at stage 4's resolution (before the upsampling), keeping at least what the stage-5
        window needs, as the reference's default (chunked) decode does.
        """
        for block in self.det_stages[3]:
            features = block(features)
        if trailing and self.config.trailing_frames:
            st = self.upsamples[3].stride[0]
            ghost = self.config.trailing_frames * (self.config.scale[0] // st)
            length = features.shape[1]
            keep = min(length, max(max(length - ghost, 1), -(-self.config.stage5_kernel[0] // st)))
            features = features[:, :keep]
        return self.upsamples[3](features, origin)

    def denoise_step(self, x_t: torch.Tensor, context: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """One stage-5 model evaluation: noisy pixels ``[B, 3, F, H, W]`` -> the prediction (same shape)."""
        c = self.config
        x = self.conv_in_x_t(patchify(x_t, c.patch_size))
        modulation = self.shared_adaln(self.t_embedder(c.timestep_scale * t, x.dtype))
        for block in self.diff_blocks:
            x = block(x, context, modulation, self.stage5_w_edges == "replicate")
        x = self.conv_out(self.norm_out(x))
        return unpatchify(x, c.patch_size, c.out_channels)

    def denoise(self, noise: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Euler from t=1 over ``num_steps`` evenly spaced times (v-prediction; or x0, whose last step is the answer)."""
        c = self.config
        batch = noise.shape[0]
        times = torch.linspace(1.0, 1.0 / c.num_steps, c.num_steps, device=noise.device)
        x_t = noise
        for i in range(c.num_steps):
            t_now = times[i].expand(batch)
            out = self.denoise_step(x_t, context, t_now)
            if i == c.num_steps - 1 and c.prediction == "x0":
                return out
            t_next = times[i + 1].expand(batch) if i + 1 < c.num_steps else torch.zeros_like(t_now)
            x_t = self._euler(x_t, out.float(), t_now, t_next)
        return x_t

    def _euler(self, x_t: torch.Tensor, out: torch.Tensor, t_now: torch.Tensor, t_next: torch.Tensor) -> torch.Tensor:
        x = x_t.float()
        velocity = out if self.config.prediction == "v" else (x - out) / float(t_now[0])
        dt = (t_now - t_next).float().view(-1, *([1] * (x.ndim - 1)))
        return (x - dt * velocity).to(x_t.dtype)

    # -- decoding ----------------------------------------------------------------------------------

    def decode_chunks(self, latent: torch.Tensor, tiling_config: object, generator: torch.Generator | None,
                      ) -> Iterator[torch.Tensor]:  # fmt: skip
        """Stages 1-3 once, stages 4-5 per tile, blended; yields each temporal group's finished frames."""
        plan = self.plan_decode(latent, tiling_config, generator)
        yield from self.blend(plan, (self.decode_planned_tile(plan, tile) for tile in plan.tiles))

    def schedule(self, latent_shape: torch.Size, tiling_config: object) -> tiling.Schedule:
        """The tiles a decode of a latent of this shape cuts (from the shape alone: no stage runs)."""
        geometry = self.geometry
        t, h, w = latent_shape[2:]
        mt, mh, mw = geometry.minimum_latent
        return geometry.schedule(geometry.stage4_shape((max(t, mt), max(h, mh), max(w, mw))), tiling_config)

    def plan_decode(self, latent: torch.Tensor, tiling_config: object, generator: torch.Generator | None,
                    ) -> DecodePlan:  # fmt: skip
        """What every tile needs, computed once: the noise over the whole video (drawn from ``generator`` before
        anything else, so any process holding the same generator state draws the same), then stages 1-3."""
        geometry = self.geometry
        work, pads = geometry.pad_to_minimum(latent)
        s4_shape = geometry.stage4_shape(work.shape[2:])
        sizes = tiling.TileSizes.of(tiling_config)
        forget_block_masks()
        self._use_attention_slabs(sizes.attention_slab if sizes is not None else None)
        noise = self._noise(work, generator, on_host=sizes is not None)
        return DecodePlan(
            schedule=geometry.schedule(s4_shape, tiling_config),
            features=self.stages_1_to_3(geometry.repeat_last_frame(work)),
            stage4_shape=s4_shape,
            noise=noise,
            full=tiling.PixelBox.of_latent(work.shape, self.config.scale, self.config.out_channels),
            content=tiling.PixelBox.of_latent(latent.shape, self.config.scale, self.config.out_channels),
            pads=pads,
            dtype=latent.dtype,
        )

    def decode_planned_tile(self, plan: DecodePlan, tile: tiling.Tile) -> torch.Tensor:
        """One tile's pixels ``[B, C, f, h, w]`` (:meth:`DecodePlan.tile_shape`), as the blend takes them."""
        return self.decode_tile(tile, plan.features, plan.stage4_shape, plan.noise)

    def blend(self, plan: DecodePlan, pixels: Iterable[torch.Tensor]) -> Iterator[torch.Tensor]:
        """Blend the tiles' pixels, given in ``plan.tiles`` order and taken one at a time (so they can be decoded,
        or received, as the blend asks for them); yields each temporal group's finished frames."""
        stream, pending = _Stream(), iter(pixels)
        for index, group in enumerate(plan.schedule.groups):
            buffer, weights = self._blend_group(group, pending, plan)
            yield from self._emit(stream, plan.schedule, index, buffer, weights, plan.content, plan.pads, plan.dtype)
            # released before the next group's buffer exists: the plan counts one group's buffer, not two
            # (traced with memory.traced_peak: 432 MiB more at the 6 GiB cap's 1536x1024x121 tiles)
            del buffer, weights

    def _use_attention_slabs(self, elements: int | None) -> None:
        for module in self.modules():
            if isinstance(module, NeighborhoodAttention):
                module.slab_elements = elements

    def _noise(self, work: torch.Tensor, generator: torch.Generator | None, on_host: bool) -> torch.Tensor:
        """Pixel noise over the whole (padded) video, drawn once from the pipeline's generator.

        ``on_host``: kept in host memory and cut per tile (a tiled decode is one the device memory is short for:
        at 3840x2176x121 the noise alone is 5.6 GiB in bf16); the values are the same either way."""
        shape = tiling.PixelBox.of_latent(work.shape, self.config.scale).shape
        device = generator.device if generator is not None else work.device
        noise = torch.randn(shape, dtype=work.dtype, generator=generator, device=device)
        return noise.cpu() if on_host else noise.to(work.device)

    def _blend_group(self, group: list[tiling.Tile], pixels: Iterator[torch.Tensor], plan: DecodePlan,
                     ) -> tuple[torch.Tensor, torch.Tensor | None]:  # fmt: skip
        frames = group[0].pixels[0]
        full = plan.full
        shape = (full.batch, full.channels, frames.stop - frames.start, full.height, full.width)
        accum = torch.float16 if plan.features.dtype == torch.bfloat16 else plan.features.dtype
        buffer = torch.zeros(shape, dtype=accum, device=plan.features.device)
        weights = None if plan.schedule.complementary else torch.zeros_like(buffer)
        for tile in group:
            decoded = next(pixels).to(accum)
            region = (slice(None), slice(None), slice(0, shape[2]), tile.pixels[1], tile.pixels[2])
            buffer[region] += tile.weigh(decoded)
            if weights is not None:
                weights[region] += tile.weigh(torch.ones_like(decoded))
        return buffer, weights

    def decode_tile(self, tile: tiling.Tile, features: torch.Tensor, s4_shape: tuple[int, int, int],
                    noise: torch.Tensor) -> torch.Tensor:  # fmt: skip
        """Stages 4-5 of one tile -> its pixels (the tile's own extent)."""
        geometry = self.geometry
        (t0, t1), (h0, h1), (w0, w1) = tile.stage4
        trailing = t1 == s4_shape[0]
        stop = features.shape[1] if trailing else t1  # a trailing tile keeps the repeated frames for stage 4
        context = self.stage_4(features[:, t0:stop, h0:h1, w0:w1], origin=t0 == 0, trailing=trailing)
        f5, h5, w5 = geometry.stage5_extent((t1 - t0, h1 - h0, w1 - w0), origin=t0 == 0, trailing=trailing)
        x_t = tiling.resize(noise[(slice(None), slice(None), *tile.pixels)].to(features.device), (f5, h5, w5))
        pixels = self.denoise(x_t, context)
        return tiling.resize(pixels, tile.pixel_extent)

    def _emit(self, stream: _Stream, plan: tiling.Schedule, index: int, buffer: torch.Tensor,
              weights: torch.Tensor | None, content: tiling.PixelBox, pads: tiling.Pads, dtype: torch.dtype,
              ) -> Iterator[torch.Tensor]:  # fmt: skip
        """Add the previous group's overlap, hand out the frames no later group touches, keep the rest."""
        if stream.carry is not None:
            n = stream.carry.shape[2]
            buffer[:, :, :n] = stream.carry + buffer[:, :, :n]
            if weights is not None:
                weights[:, :, :n] = stream.carry_weights + weights[:, :, :n]
        start = plan.group_frames[index].start
        done = plan.group_frames[index + 1].start - start if index + 1 < len(plan.groups) else buffer.shape[2]
        done = min(max(done, 0), buffer.shape[2])
        stream.carry = buffer[:, :, done:].clone() if index + 1 < len(plan.groups) else None
        stream.carry_weights = (
            weights[:, :, done:].clone() if weights is not None and stream.carry is not None else None
        )
        keep = min(done, content.frames - start)
        for first in range(0, max(keep, 0), tiling.HANDOUT_FRAMES):  # a few frames at a time: see HANDOUT_FRAMES
            frames = slice(first, min(first + tiling.HANDOUT_FRAMES, keep))
            chunk = buffer[:, :, frames]
            if weights is not None:
                chunk = chunk / weights[:, :, frames].clamp(min=max(1e-8, torch.finfo(weights.dtype).tiny))
            yield pads.crop_pixels(chunk, content, self.config.scale).to(dtype)


__all__ = ["DecodePlan", "DiffusionDecoderConfig", "DiffusionVideoDecoder", "patchify", "rope_split", "unpatchify"]
