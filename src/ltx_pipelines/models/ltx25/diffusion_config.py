"""The diffusion video decoder's architecture, read from a VAE file's ``config.vae`` (no torch modules here).

Its own module so that the decoder and the tiling both read it without importing each other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ltx_pipelines.models.ltx25.neighborhood_attention import Kernel

Upsample = tuple[Kernel, int]  # (stride (t, h, w), channel reduction)

#: The published decoder's layout (the reference 1.2.0's class defaults, used where the file's config is silent).
DEFAULT_STAGE_CHANNELS = (1024, 512, 256, 256, 128)
DEFAULT_STAGE_DEPTHS = (4, 6, 4, 2, 8)
DEFAULT_STAGE_KERNELS: tuple[Kernel, ...] = ((3, 7, 7), (3, 7, 7), (3, 5, 5), (3, 5, 5), (3, 3, 3))
DEFAULT_UPSAMPLES: tuple[Upsample, ...] = (((1, 2, 2), 2), ((2, 1, 1), 2), ((2, 2, 2), 1), ((2, 2, 2), 2))
DEFAULT_STAGE5_KERNEL: Kernel = (3, 7, 7)
RMS_EPS = 1e-6
#: Tokens one SwiGLU call processes at once (its hidden activation is 4x the width).
MLP_CHUNK_TOKENS = 1 << 16
#: Elements (tokens x width) of one attention slab's input: what the Q/K/V, window and output temporaries scale
#: with (a slab is 128 MiB in bf16; at 1536x1024 stage 5 that is 5 frames of queries, 7 with their neighbours).
ATTENTION_SLAB_ELEMENTS = 1 << 26


def slab_frames(slab_elements: int, frame_elements: int) -> int:
    """Frames of queries in one attention slab (at least one): what the decoder cuts and the memory plan prices."""
    return max(1, slab_elements // max(frame_elements, 1))


def _kernel(value: object) -> Kernel:
    t, h, w = (int(v) for v in value)  # type: ignore[attr-defined]
    return (t, h, w)


@dataclass(frozen=True)
class DiffusionDecoderConfig:
    """The decoder's architecture, from ``config.vae`` (settings nested under ``decoder``) with the reference's
    defaults for what a file leaves out."""

    latent_channels: int = 128
    out_channels: int = 3
    patch_size: int = 4
    head_dim: int = 64
    t_emb_dim: int = 384
    stage_channels: tuple[int, ...] = DEFAULT_STAGE_CHANNELS
    stage_depths: tuple[int, ...] = DEFAULT_STAGE_DEPTHS
    stage_kernels: tuple[Kernel, ...] = DEFAULT_STAGE_KERNELS
    upsamples: tuple[Upsample, ...] = DEFAULT_UPSAMPLES
    stage5_kernel: Kernel = DEFAULT_STAGE5_KERNEL
    stage5_channels: int | None = None
    num_steps: int = 2
    timestep_scale: float = 1.0
    prediction: str = "v"

    @classmethod
    def from_vae_config(cls, vae: dict) -> DiffusionDecoderConfig:
        d = vae.get("decoder", vae)
        kwargs: dict = {
            "latent_channels": int(d.get("in_channels", vae.get("latent_channels", 128))),
            "out_channels": int(d.get("out_channels", 3)),
            "patch_size": int(d.get("patch_size", 4)),
            "head_dim": int(d.get("head_dim", d.get("na_head_dim", 64))),
            "t_emb_dim": int(d.get("t_emb_dim", 384)),
            "num_steps": int(d.get("default_num_inference_steps", 2)),
            "timestep_scale": float(d.get("timestep_scale_multiplier", 1.0)),
            "prediction": str(vae.get("model_output_type", "v")),  # beside "decoder", not inside it
        }
        if "stage_channels" in d:
            kwargs["stage_channels"] = tuple(int(c) for c in d["stage_channels"])
        if "stage_depths" in d:
            kwargs["stage_depths"] = tuple(int(c) for c in d["stage_depths"])
        if "stage_kernels" in d:
            kwargs["stage_kernels"] = tuple(_kernel(k) for k in d["stage_kernels"])
        if "upsamples" in d:
            kwargs["upsamples"] = tuple((_kernel(stride), int(red)) for stride, red in d["upsamples"])
        if "stage5_kernel" in d:
            kwargs["stage5_kernel"] = _kernel(d["stage5_kernel"])
        if d.get("stage5_channels") is not None:
            kwargs["stage5_channels"] = int(d["stage5_channels"])
        config = cls(**kwargs)
        config.check()
        return config

    def check(self) -> None:
        """Refuse a config the decoder cannot be built from (before any weight is read)."""
        n = len(self.stage_channels)
        if not (len(self.stage_depths) == len(self.stage_kernels) == n and len(self.upsamples) == n - 1 and n >= 5):
            raise ValueError(
                f"diffusion decoder config: {n} stage widths, {len(self.stage_depths)} depths, "
                f"{len(self.stage_kernels)} kernels and {len(self.upsamples)} upsamplings do not agree"
            )
        for width in (*self.stage_channels, self.context_width if self.stage5_channels is None else self.stage5_width):
            if width % self.head_dim:
                raise ValueError(f"diffusion decoder width {width} is not a multiple of head_dim {self.head_dim}")
        if self.prediction not in ("v", "x0"):
            raise ValueError(f"diffusion decoder model_output_type {self.prediction!r} is neither 'v' nor 'x0'")
        if self.num_steps < 1:
            raise ValueError(f"diffusion decoder default_num_inference_steps {self.num_steps} must be >= 1")

    @property
    def context_width(self) -> int:
        return self.stage_channels[-1]

    @property
    def stage5_width(self) -> int:
        return self.stage5_channels if self.stage5_channels is not None else self.context_width

    @property
    def stage5_depth(self) -> int:
        return self.stage_depths[-1]

    @property
    def pixel_channels(self) -> int:
        return self.out_channels * self.patch_size**2

    @property
    def trailing_frames(self) -> int:
        """Copies of the last latent frame added before stages 1-4."""
        return (self.stage_kernels[0][0] // 2) * 2

    @property
    def scale(self) -> tuple[int, int, int]:
        """Pixels per latent cell (frames, height, width)."""
        t = math.prod(stride[0] for stride, _ in self.upsamples)
        h = math.prod(stride[1] for stride, _ in self.upsamples) * self.patch_size
        w = math.prod(stride[2] for stride, _ in self.upsamples) * self.patch_size
        return (t, h, w)
