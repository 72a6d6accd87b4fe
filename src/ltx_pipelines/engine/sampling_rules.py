"""Where the reference releases sample differently, and which way a generation goes.

LTX-2 and LTX-2.3 checkpoints keep ltx-pipelines 1.0.0's sampling (CI checks our frames against it bit for
bit); LTX-2.5 checkpoints follow the reference 1.2.0, which changed how conditioning and noise meet:

* conditioning items write only the clean latent: a replaced frame keeps its noisy latent, and tokens that an
  item appends (image keyframes, IC-LoRA references) start as zeros;
* the noiser starts from the clean latent: ``x' = lerp(clean, lerp(x, noise, s), mask)`` in float32
  (1.0.0: ``noise * mask * s + x * (1 - mask * s)``), the same draw from the same generator;
* an image keyframe's tokens span one pixel frame in time, ``[f, f + 1)`` (1.0.0: the whole latent frame);
* guidance combines its passes in float32, and each guided pass reads a contiguous copy of the latent (1.2.0
  stacks its passes in one batch, a copy; the transformer's first projection then rounds as it does);
* the two-stage text/image-to-video pipelines (and HQ) decode stage 1's audio: stage 2 still refines it for the
  audio-video attention, but what is heard is stage 1's;
* the transformer marks the first latent frame of the generated video (the 2.5 keyframe embedding);
* a stream whose every token is given (audio-to-video's soundtrack) runs at sigma 0, so its prompt AdaLN and
  the other stream's cross-attention gate see a clean stream;
* the transformer gets the sigma in the precision the sampler computed it: res_2s's substep sigma is float64
  (1.0.0 rounded the timesteps to float32);
* a retake reads its source's audio for exactly the clip's duration and encodes it as read, latent frames past
  it being zeros (1.0.0 read the whole track);
* a conditioning image goes through its H.264 round trip (libx264 veryfast) at its own size and is then scaled
  bilinearly to the stage size, as both reference releases do (ours for LTX-2 and 2.3: Lanczos to the stage size
  first, within the 1.0.0 parity tolerances).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from ltx_core.types import LatentState

from ltx_pipelines.models.files import ModelFiles


@dataclass(frozen=True)
class SamplingRules:
    """The switches one generation runs with (all off: ltx-pipelines 1.0.0's behaviour)."""

    conditioning_keeps_latent: bool = False
    noise_from_clean_latent: bool = False
    one_pixel_frame_keyframes: bool = False
    guidance_in_float32: bool = False
    #: Guided passes read a contiguous copy of the latent: its memory layout picks the matmul kernel, so the last bit.
    guided_latent_contiguous: bool = False
    stage_1_audio: bool = False
    frozen_streams_at_sigma_0: bool = False
    #: The transformer adds its keyframe embedding to the generated video's first latent frame.
    marks_first_frame: bool = False
    #: Sigma and timesteps reach the transformer in the sigma's own dtype (float64 at res_2s substeps).
    keeps_sigma_precision: bool = False
    #: A retake's source audio: exactly the clip's duration, encoded as read (missing latent frames are zeros).
    exact_source_audio: bool = False
    #: Conditioning images: H.264 round trip at the source size, then a bilinear resize (the reference's order).
    images_compressed_first: bool = False

    @classmethod
    def for_model(cls, files: ModelFiles) -> SamplingRules:
        """The reference release the model's generation follows, and what its transformer config asks for."""
        marks = bool(files.config.get("transformer", {}).get("use_keyframes_abs_pos_embedding", False))
        if files.generation.follows_reference == "1.0.0":
            return cls(marks_first_frame=marks)
        return cls(conditioning_keeps_latent=True, noise_from_clean_latent=True, one_pixel_frame_keyframes=True,
                   guidance_in_float32=True, guided_latent_contiguous=True, stage_1_audio=True,
                   frozen_streams_at_sigma_0=True, keeps_sigma_precision=True, exact_source_audio=True,
                   images_compressed_first=True, marks_first_frame=marks)  # fmt: skip


#: ltx-pipelines 1.0.0's behaviour (what LTX-2 and 2.3 checkpoints get).
REFERENCE_1_0 = SamplingRules()


def keep_noisy_latent(before: LatentState, after: LatentState) -> LatentState:
    """``after`` (a conditioning item applied to ``before``) with the noisy latent of the tokens ``before`` had
    restored and the tokens the item appended set to zero: conditioning writes only the clean latent."""
    count = before.latent.shape[1]
    latent = torch.cat([before.latent, torch.zeros_like(after.latent[:, count:])], dim=1)
    return replace(after, latent=latent)


class CleanLatentNoiser:
    """The reference 1.2.0's Gaussian noiser: noise blended in from the clean latent, in float32."""

    def __init__(self, generator: torch.Generator):
        self.generator = generator

    def __call__(self, state: LatentState, noise_scale: float = 1.0) -> LatentState:
        latent = state.latent
        noise = torch.randn(*latent.shape, device=latent.device, dtype=latent.dtype, generator=self.generator)
        noisy = torch.lerp(latent.to(torch.float32), noise.to(torch.float32), noise_scale)
        clean = state.clean_latent.to(torch.float32)
        blended = torch.lerp(clean, noisy, state.denoise_mask.to(torch.float32))
        return replace(state, latent=blended.to(latent.dtype))


__all__ = ["REFERENCE_1_0", "CleanLatentNoiser", "SamplingRules", "keep_noisy_latent"]
