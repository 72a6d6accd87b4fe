"""IC-LoRA: video-to-video control (depth, pose, edges, ...) with the distilled model.

An IC-LoRA ("in-context" LoRA) was trained on sequences where clean reference tokens (the
control video) sit next to the noisy target tokens; it learned to read the reference through
attention. Inference rebuilds that layout: each ``--video-conditioning`` clip is encoded and
appended to the video tokens with ltx-core's ``VideoConditionByReferenceLatent``.

Why the reference-latent item and not ``VideoConditionByKeyframeIndex(frame_idx=0)``: both
append clean tokens that start at time 0, but only the reference item knows the LoRA's
``reference_downscale_factor``. IC-LoRAs may be trained with references at 1/d of the target
size; the item then multiplies the reference's spatial positions by d so that reference and
target share one coordinate frame, as in training. The factor is read from the LoRA file's
metadata (1 if absent), and the reference is encoded at 1/d of the stage's size.

Stages: stage 1 runs the distilled model + IC-LoRA at half size with the references (and any
``--image`` conditioning); the latent is upsampled x2; stage 2 refines at full size with the
plain distilled model and the images only -- the structure is set by then, refinement adds
detail, and the IC-LoRA without its reference tokens would only get in the way (it would also
double the full-size sequence). ``skip_stage_2`` stops after stage 1 and returns its
half-size video (as the reference pipeline does).

How strongly the generated tokens attend to the reference tokens: ``conditioning_attention_strength``
(0..1, 1 = fully), optionally times a pixel-space ``conditioning_attention_mask`` (a [B, 1, F, H, W]
tensor in [0, 1], e.g. a grayscale mask video) that is brought to the reference's latent grid (area
average in space; frame 0 alone, then groups of 8 frames averaged, like the causal VAE).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Unpack

import torch
from ltx_core.conditioning import (
    ConditioningItem,
    ConditioningItemAttentionStrengthWrapper,
    VideoConditionByReferenceLatent,
)
from ltx_core.loader import LoraPathStrengthAndSDOps
from ltx_core.model.video_vae import TilingConfig
from ltx_core.quantization import QuantizationPolicy

from ltx_pipelines.engine import cli
from ltx_pipelines.engine.conditioning import ImageConditioningInput, check_image_inputs
from ltx_pipelines.engine.media_latents import VIDEO_TIME_SCALE, encode_video_frames, fit_frame_count
from ltx_pipelines.engine.model_ledger import MemoryPolicy
from ltx_pipelines.engine.pipeline_base import GenerationResult, PipelineBase, _lora_list
from ltx_pipelines.engine.reference_args import VideoConditioningAction, VideoMaskConditioningAction
from ltx_pipelines.engine.stages import VideoGeometry
from ltx_pipelines.models.checkpoints import check_lora_matches, read_header
from ltx_pipelines.models.files import ComponentPaths
from ltx_pipelines.utils import constants as C
from ltx_pipelines.utils.aliases import reference_names
from ltx_pipelines.utils.errors import InputError
from ltx_pipelines.utils.media_io import check_output_path, probe_media, read_video
from ltx_pipelines.utils.validation import check_generation, check_prompt

logger = logging.getLogger(__name__)

#: LoRA metadata key: target size / reference size the IC-LoRA was trained with.
REFERENCE_DOWNSCALE_KEY = "reference_downscale_factor"


class VideoConditioningInput(NamedTuple):
    """A reference (control) video and how strictly it is kept (1 = clean reference tokens)."""

    path: str
    strength: float = 1.0


def as_video_inputs(videos: list | tuple | None) -> list[VideoConditioningInput]:
    """Accept VideoConditioningInput objects or plain (path, strength) tuples."""
    return [v if isinstance(v, VideoConditioningInput) else VideoConditioningInput(*v) for v in videos or []]


def reference_downscale_factor(loras: tuple[LoraPathStrengthAndSDOps, ...]) -> int:
    """The factor the IC-LoRA(s) declare; 1 when none does. Disagreeing LoRAs are refused."""
    factors = {}
    for lora in loras:
        raw = read_header(lora.path, "LoRA (--lora)").metadata.get(REFERENCE_DOWNSCALE_KEY)
        if raw is not None:
            try:
                factors[Path(lora.path).name] = int(float(raw))
            except ValueError as e:
                raise InputError(f"LoRA {lora.path} has {REFERENCE_DOWNSCALE_KEY}={raw!r}; expected an integer.") from e
    if len(set(factors.values())) > 1:
        raise InputError(f"The IC-LoRAs disagree on {REFERENCE_DOWNSCALE_KEY}: {factors}; use them one at a time.")
    factor = next(iter(factors.values()), 1)
    if factor < 1:
        raise InputError(f"{REFERENCE_DOWNSCALE_KEY} must be at least 1; the LoRA says {factor}.")
    if not factors:
        logger.info("No LoRA declares %s; references are used at the target size.", REFERENCE_DOWNSCALE_KEY)
    return factor


class ICLoraPipeline(PipelineBase):
    """Distilled model + IC-LoRA guided by reference videos; x2 upsample; plain distilled refinement."""

    pipeline_name = "ic_lora"
    size_multiple = 64
    memory_stages = ((0.5, False), (1.0, False))
    needs_upsampler = True
    runs_distilled_model = True

    @reference_names(distilled_checkpoint_path="checkpoint_path")
    def __init__(
        self,
        checkpoint_path: str | Path | None = None,
        spatial_upsampler_path: str | Path | None = None,
        gemma_root: str | Path | None = None,
        loras: list[LoraPathStrengthAndSDOps] | tuple = (),
        device: object | None = None,
        quantization: QuantizationPolicy | None = None,
        dtype: object | None = None,
        memory_policy: MemoryPolicy | str | None = None,
        offload: str = "auto",
        max_gpu_memory: float | None = None,
        compile: bool | None = None,  # noqa: A002 - the --compile flag
        step_cache: float | None = None,
        compile_cache: str | None = None,
        attention: str = "auto",
        **paths: Unpack[ComponentPaths],
    ):
        """``checkpoint_path``: the distilled weights (also accepted as ``distilled_checkpoint_path``)."""
        ic_loras = _lora_list(loras)
        if not ic_loras:
            raise InputError("ICLoraPipeline needs an IC-LoRA: pass it with --lora PATH [STRENGTH].")
        # The ledger holds the plain distilled model; the IC-LoRA is added for stage 1 only (extra_loras).
        super().__init__(
            checkpoint_path=checkpoint_path, gemma_root=gemma_root, loras=(), quantization=quantization,
            spatial_upsampler_path=spatial_upsampler_path, device=device, dtype=dtype, memory_policy=memory_policy,
            offload=offload, max_gpu_memory=max_gpu_memory, compile=compile, step_cache=step_cache,
            compile_cache=compile_cache, attention=attention, **paths,
        )  # fmt: skip
        if not self.files.transformer.distilled:
            raise InputError(
                f"IC-LoRA inference runs the distilled model, but {self.files.transformer.path.name} is not a "
                "distilled checkpoint. Pass the distilled LTX-2 weights with --checkpoint-path."
            )
        for lora in ic_loras:
            check_lora_matches(lora.path, self.files.transformer.path, "IC-LoRA (--lora)")
        self.loras = ic_loras  # listed in the output metadata
        self.reference_downscale_factor = reference_downscale_factor(ic_loras)

    def __call__(
        self,
        prompt: str,
        video_conditioning: list[VideoConditioningInput],
        output_path: str | Path | None = None,
        seed: int = C.DEFAULT_SEED,
        height: int = C.DEFAULT_2_STAGE_HEIGHT,
        width: int = C.DEFAULT_2_STAGE_WIDTH,
        num_frames: int = C.DEFAULT_NUM_FRAMES,
        frame_rate: float = C.DEFAULT_FRAME_RATE,
        images: list[ImageConditioningInput] | None = None,
        conditioning_attention_mask: torch.Tensor | float | None = None,
        skip_stage_2: bool = False,
        enhance_prompt: bool = False,
        tiling_config: TilingConfig | None = None,
        overwrite: bool = False,
        conditioning_attention_strength: float = 1.0,
    ) -> GenerationResult:
        """``conditioning_attention_mask``: a pixel mask tensor, or one number (a weight, like the strength)."""
        geometry = VideoGeometry(height, width, num_frames, frame_rate)
        references = as_video_inputs(video_conditioning)
        images = self.image_inputs(images)
        stage_1 = geometry.halved()
        check_prompt(prompt, conditioned_by="the reference video")
        attention = ReferenceAttention(conditioning_attention_strength, conditioning_attention_mask)
        output = self.check_ic_request(geometry, stage_1, references, images, attention, output_path, overwrite)

        prompt_used, enhancement = self.enhance_prompt(prompt, enhance_prompt, images, seed)
        (positive,) = self.encode_prompts([prompt_used])
        generator = self.generator(seed)
        latents = self.distilled_stage(
            name="stage 1",
            geometry=stage_1,
            prompt=positive,
            sigma_values=C.DISTILLED_SIGMA_VALUES,
            conditionings=[
                *self.image_conditionings(images, stage_1),
                *self.reference_conditionings(references, stage_1, attention),
            ],
            generator=generator,
            extra_loras=self.loras,
        )
        if not skip_stage_2:
            latents = self.upsample_and_refine(
                low=latents, geometry=geometry, prompt=positive, images=images, generator=generator
            )
        settings = {
            "prompt": prompt, **enhancement, "seed": seed, "sigmas": C.DISTILLED_SIGMA_VALUES,
            "stage_2_sigmas": None if skip_stage_2 else C.STAGE_2_DISTILLED_SIGMA_VALUES,
            "video_conditioning": [[Path(r.path).name, r.strength] for r in references],
            "reference_downscale_factor": self.reference_downscale_factor,
            "conditioning_attention_strength": attention.strength, "conditioning_attention_mask": attention.describe(),
            "skip_stage_2": skip_stage_2, "images": [list(i) for i in images],
        }  # fmt: skip
        output_geometry = stage_1 if skip_stage_2 else geometry
        return self.finish(latents, output_geometry, generator, output, overwrite, settings, tiling_config)

    # -- checks (before any model is built) ------------------------------------------------------

    def check_ic_request(
        self,
        geometry: VideoGeometry,
        stage_1: VideoGeometry,
        references: list[VideoConditioningInput],
        images: list[ImageConditioningInput],
        attention: "ReferenceAttention",
        output_path: str | Path | None,
        overwrite: bool,
    ) -> Path | None:
        """Sizes, references, attention settings and output path."""
        check_generation(geometry.height, geometry.width, geometry.num_frames, geometry.frame_rate, self.size_multiple)
        check_image_inputs(images, geometry.num_frames)
        if not references:
            raise InputError("IC-LoRA needs at least one reference video: --video-conditioning PATH STRENGTH.")
        attention.check(geometry.num_frames)
        factor = self.reference_downscale_factor
        if factor > 1 and (stage_1.height % (32 * factor) or stage_1.width % (32 * factor)):
            raise InputError(
                f"This IC-LoRA takes references at 1/{factor} of the size; {stage_1.width}x{stage_1.height} (the "
                f"stage-1 size) must then be a multiple of {32 * factor}."
            )
        for reference in references:
            self._check_reference(reference, geometry.num_frames)
        return check_output_path(output_path, overwrite) if output_path is not None else None

    @staticmethod
    def _check_reference(reference: VideoConditioningInput, num_frames: int) -> None:
        if not 0.0 <= reference.strength <= 1.0:
            raise InputError(f"Reference video {reference.path} has strength {reference.strength}; use 0 to 1.")
        info = probe_media(reference.path)
        if not info.has_video:
            raise InputError(f"Reference video {reference.path} has no video stream.")
        if info.num_frames > num_frames:
            logger.info(
                "Reference video %s has %d frames; only the first %d are used.",
                reference.path, info.num_frames, num_frames,
            )  # fmt: skip

    # -- conditioning ------------------------------------------------------------------------------

    def reference_conditionings(
        self, references: list[VideoConditioningInput], geometry: VideoGeometry, attention: "ReferenceAttention"
    ) -> list[ConditioningItem]:
        """Each reference, read at 1/d of the stage size, fitted to its frame count, as appended clean tokens."""
        factor = self.reference_downscale_factor
        height, width = geometry.height // factor, geometry.width // factor
        items: list[ConditioningItem] = []
        for reference in references:
            clip = read_video(reference.path, height, width, max_frames=geometry.num_frames, with_audio=False)
            frames = fit_frame_count(clip.frames, geometry.num_frames, f"Reference video {Path(reference.path).name}")
            latent = encode_video_frames(self.ledger, frames)
            item: ConditioningItem = VideoConditionByReferenceLatent(
                latent=latent, downscale_factor=factor, strength=reference.strength
            )
            weight = attention.weight(latent.shape[2:])
            if weight is not None:
                item = ConditioningItemAttentionStrengthWrapper(item, attention_mask=weight)
            items.append(item)
        return items


@dataclass(frozen=True)
class ReferenceAttention:
    """How strongly generated tokens attend to the reference tokens: strength x (pixel mask or weight)."""

    strength: float = 1.0
    mask: torch.Tensor | float | None = None

    def check(self, num_frames: int) -> None:
        if not 0.0 <= self.strength <= 1.0:
            raise InputError(f"conditioning_attention_strength must be between 0 and 1; got {self.strength}.")
        if self.mask is None:
            return
        if not isinstance(self.mask, torch.Tensor):
            if not 0.0 <= float(self.mask) <= 1.0:
                raise InputError(f"--conditioning-attention-mask must be between 0 and 1; got {self.mask}.")
            return
        shape = tuple(self.mask.shape)
        if len(shape) != 5 or shape[1] != 1:
            raise InputError(f"conditioning_attention_mask must be a [B, 1, F, H, W] tensor; got shape {shape}.")
        if float(self.mask.min()) < 0.0 or float(self.mask.max()) > 1.0:
            raise InputError("conditioning_attention_mask values must be between 0 and 1.")
        latent_frames = (num_frames - 1) // VIDEO_TIME_SCALE + 1
        if shape[2] > 1 and latent_frames > 1 and (shape[2] - 1) % (latent_frames - 1):
            raise InputError(
                f"conditioning_attention_mask has {shape[2]} frames; for {num_frames} video frames ({latent_frames} "
                f"latent) its frame count minus 1 must be a multiple of {latent_frames - 1} (e.g. {num_frames})."
            )

    def weight(self, latent_grid: tuple[int, int, int]) -> torch.Tensor | float | None:
        """Per-token weights [B, F*H*W] (mask), one number, or None for full attention."""
        if isinstance(self.mask, torch.Tensor):
            return latent_attention_mask(self.mask, *latent_grid) * self.strength
        if self.mask is not None:
            return float(self.mask) * self.strength
        return self.strength if self.strength < 1.0 else None

    def describe(self) -> object:
        if isinstance(self.mask, torch.Tensor):
            return f"pixel mask {'x'.join(map(str, self.mask.shape[2:]))}"
        return self.mask


def latent_attention_mask(mask: torch.Tensor, frames: int, height: int, width: int) -> torch.Tensor:
    """[B, 1, F, H, W] pixel mask -> [B, frames * height * width] token weights (the patchifier's f, h, w order).

    Space: area average down to the latent grid. Time: frame 0 on its own, then every (F - 1) / (frames - 1)
    frames averaged, as the causal video VAE groups them.
    """
    batch, _, pixel_frames = mask.shape[:3]
    small = torch.nn.functional.interpolate(mask.float().flatten(0, 2).unsqueeze(1), size=(height, width), mode="area")
    small = small.view(batch, pixel_frames, height, width)
    grouped = small[:, :1]
    if pixel_frames > 1 and frames > 1:
        rest = small[:, 1:].view(batch, frames - 1, (pixel_frames - 1) // (frames - 1), height, width).mean(dim=2)
        grouped = torch.cat([grouped, rest], dim=1)
    return grouped.flatten(1)


def load_attention_mask_video(path: str, height: int, width: int, num_frames: int) -> torch.Tensor:
    """A grayscale mask video -> [1, 1, F, H, W] in [0, 1] (the channels' mean, white = full attention)."""
    clip = read_video(path, height, width, max_frames=num_frames, with_audio=False)
    frames = fit_frame_count(clip.frames, num_frames, f"Attention mask video {Path(path).name}")
    gray = (frames.float() / 127.5 - 1.0).mean(dim=-1)
    return ((gray + 1.0) / 2.0).clamp(0.0, 1.0).unsqueeze(0).unsqueeze(0)


def main(argv: list[str] | None = None) -> None:
    parser = cli.base_parser(
        "IC-LoRA video-to-video with the distilled LTX-2 model: reference (control) videos steer stage 1, "
        "then x2 upsample and distilled refinement.",
        height=C.DEFAULT_2_STAGE_HEIGHT, width=C.DEFAULT_2_STAGE_WIDTH, size_multiple=64,
    )  # fmt: skip
    parser.add_argument(
        "--video-conditioning", dest="video_conditioning", action=VideoConditioningAction, nargs=2, default=[],
        metavar=("PATH", "STRENGTH"), required=True,
        help="Reference video for the IC-LoRA (repeatable); trimmed or padded to --num-frames, read at the stage's "
        "size (divided by the LoRA's reference_downscale_factor). STRENGTH 1 keeps it clean.",
    )  # fmt: skip
    parser.add_argument(
        "--conditioning-attention-mask", action=VideoMaskConditioningAction, nargs="+", default=None,
        metavar=("WEIGHT | MASK_PATH", "STRENGTH"),
        help="How strongly the generated tokens attend to the reference ones (default: fully): one WEIGHT "
        "(0..1), or a grayscale MASK_PATH video (white = full) read at the stage-1 size, times STRENGTH.",
    )  # fmt: skip
    parser.add_argument(
        "--skip-stage-2", action="store_true",
        help="Stop after stage 1: the output is its half-size video (no upsampling or refinement).",
    )
    cli.add_upsampler_arg(parser)
    parser._option_string_actions["--checkpoint-path"].help = "Distilled LTX-2 checkpoint (.safetensors)."
    cli.add_flag_alias(parser, "--checkpoint-path", "--distilled-checkpoint-path")
    cli.add_fixed_steps_flag(parser)
    args = parser.parse_args(argv)
    cli.start(args)
    cli.warn_fixed_steps(args)
    mask, strength = args.conditioning_attention_mask, 1.0
    if isinstance(mask, tuple):  # MASK_PATH STRENGTH, read before any model loads
        mask, strength = load_attention_mask_video(mask[0], args.height // 2, args.width // 2, args.num_frames), mask[1]
    pipeline = ICLoraPipeline(**cli.model_kwargs(args), spatial_upsampler_path=args.spatial_upsampler_path)
    pipeline(
        **cli.request_kwargs(args),
        video_conditioning=args.video_conditioning,
        conditioning_attention_mask=mask,
        conditioning_attention_strength=strength,
        skip_stage_2=args.skip_stage_2,
    )


if __name__ == "__main__":
    cli.run_cli(main)
