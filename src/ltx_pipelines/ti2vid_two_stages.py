"""Two-stage text/image-to-video, the recommended pipeline.

Stage 1 denoises at half size with multimodal guidance; the latent is upsampled x2;
stage 2 refines at full size with the distilled LoRA and the short distilled schedule.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Unpack

import torch
from ltx_core.components.guiders import MultiModalGuiderParams
from ltx_core.loader import LoraPathStrengthAndSDOps
from ltx_core.model.video_vae import TilingConfig
from ltx_core.quantization import QuantizationPolicy

from ltx_pipelines.engine import cli
from ltx_pipelines.engine.conditioning import ImageConditioningInput
from ltx_pipelines.engine.denoising import DenoisingLoop, euler_denoising_loop
from ltx_pipelines.engine.duration import AutoDuration
from ltx_pipelines.engine.model_ledger import MemoryPolicy, comfy_lora
from ltx_pipelines.engine.pipeline_base import GenerationResult, PipelineBase, _lora_list, guider_metadata
from ltx_pipelines.engine.stages import VideoGeometry
from ltx_pipelines.models.checkpoints import check_lora_matches
from ltx_pipelines.models.files import ComponentPaths
from ltx_pipelines.utils import constants as C
from ltx_pipelines.utils.errors import InputError
from ltx_pipelines.utils.validation import check_prompt


class TwoStagePipelineBase(PipelineBase):
    """Full model for stage 1, full model + distilled LoRA for stage 2."""

    size_multiple = 64
    memory_stages = ((0.5, True), (1.0, False))
    needs_upsampler = True
    #: Condition on images with appended keyframe tokens in both stages (interpolation) instead of replacing latents.
    by_guiding_latent = False
    #: Under the reference 1.2.0's rules (LTX-2.5) the output carries stage 1's audio (not keyframe interpolation's).
    hears_stage_1_audio = True

    def __init__(
        self,
        checkpoint_path: str | Path | None = None,
        distilled_lora: list[LoraPathStrengthAndSDOps] | LoraPathStrengthAndSDOps | None = None,
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
        super().__init__(
            checkpoint_path=checkpoint_path, gemma_root=gemma_root, loras=loras, quantization=quantization,
            spatial_upsampler_path=spatial_upsampler_path, device=device, dtype=dtype, memory_policy=memory_policy,
            offload=offload, max_gpu_memory=max_gpu_memory, compile=compile, step_cache=step_cache,
            compile_cache=compile_cache, attention=attention, **paths,
        )  # fmt: skip
        if not distilled_lora and self.found.distilled_lora_path is not None:
            distilled_lora = comfy_lora(self.found.distilled_lora_path, C.DEFAULT_DISTILLED_LORA_STRENGTH)
        self.distilled_lora = _lora_list(distilled_lora)
        if not self.distilled_lora:
            raise InputError(f"{type(self).__name__} needs the distilled LoRA for stage 2: pass --distilled-lora "
                             "(distilled_lora=).")  # fmt: skip
        for lora in self.distilled_lora:
            check_lora_matches(lora.path, self.files.transformer.path, "distilled LoRA (--distilled-lora)")

    def stage_1_sigmas(self, steps: int, geometry: VideoGeometry) -> torch.Tensor | None:  # noqa: ARG002
        """Stage 1's sigma schedule; None: LTX-2's schedule at its default token count (as the reference)."""
        return None

    def generate(
        self,
        *,
        prompt: str,
        negative_prompt: str | None,
        seed: int,
        geometry: VideoGeometry,
        num_inference_steps: int | None,
        video_guider_params: MultiModalGuiderParams | None,
        audio_guider_params: MultiModalGuiderParams | None,
        images: list[ImageConditioningInput] | None,
        output_path: str | Path | None,
        overwrite: bool,
        tiling_config: TilingConfig | None = None,
        stage_1_loop: DenoisingLoop = euler_denoising_loop,
        stage_2_loop: DenoisingLoop = euler_denoising_loop,
        stage_1_loras: tuple[LoraPathStrengthAndSDOps, ...] = (),
        stage_2_loras: tuple[LoraPathStrengthAndSDOps, ...] | None = None,
        settings: dict | None = None,
        enhance_prompt: bool = False,
    ) -> GenerationResult:
        """What every two-stage pipeline runs; they differ in defaults, loops, LoRAs and ``by_guiding_latent``."""
        images = self.image_inputs(images)
        check_prompt(prompt, conditioned_by="the images" if images else None)
        output = self.check_request(geometry, images, output_path, overwrite)
        steps, video_params, audio_params = self.resolve_guidance(num_inference_steps, video_guider_params, audio_guider_params)
        negative_prompt = C.DEFAULT_NEGATIVE_PROMPT if negative_prompt is None else negative_prompt
        stage_2_loras = self.distilled_lora if stage_2_loras is None else stage_2_loras

        prompt_used, enhancement = self.enhance_prompt(prompt, enhance_prompt, images, seed)
        positive, negative = self.encode_prompts([prompt_used, negative_prompt])
        geometry = self.settle_duration(geometry, positive, images)
        generator = self.generator(seed)
        low_geometry = geometry.halved()
        low = self.guided_stage(
            name="stage 1",
            geometry=low_geometry,
            positive=positive,
            negative=negative,
            video_guider_params=video_params,
            audio_guider_params=audio_params,
            num_inference_steps=steps,
            conditionings=self.image_conditionings(images, low_geometry, self.by_guiding_latent),
            generator=generator,
            loop=stage_1_loop,
            extra_loras=stage_1_loras,
            sigmas=self.stage_1_sigmas(steps, low_geometry),
        )
        high = self.upsample_and_refine(
            low=low, geometry=geometry, prompt=positive, images=images, generator=generator,
            extra_loras=stage_2_loras, by_guiding_latent=self.by_guiding_latent, loop=stage_2_loop,
        )  # fmt: skip
        if self.rules.stage_1_audio and self.hears_stage_1_audio:
            high = replace(high, audio=low.audio)
        settings = {
            "prompt": prompt, "negative_prompt": negative_prompt, "seed": seed, "num_inference_steps": steps,
            "video_guidance": guider_metadata(video_params), "audio_guidance": guider_metadata(audio_params),
            "images": [list(i) for i in images], "distilled_lora": _lora_names(stage_2_loras), **enhancement,
            **(settings or {}),
        }  # fmt: skip
        return self.finish(high, geometry, generator, output, overwrite, settings, tiling_config)


def _lora_names(loras: tuple[LoraPathStrengthAndSDOps, ...]) -> list[str]:
    return [f"{Path(lora.path).name}:{lora.strength}" for lora in loras]


class TI2VidTwoStagesPipeline(TwoStagePipelineBase):
    """Guided half-size generation, x2 upsample, distilled-LoRA refinement."""

    pipeline_name = "ti2vid_two_stages"

    def __call__(
        self,
        prompt: str,
        output_path: str | Path | None = None,
        negative_prompt: str | None = None,
        seed: int = C.DEFAULT_SEED,
        height: int = C.DEFAULT_2_STAGE_HEIGHT,
        width: int = C.DEFAULT_2_STAGE_WIDTH,
        num_frames: int | AutoDuration | None = C.DEFAULT_NUM_FRAMES,
        frame_rate: float = C.DEFAULT_FRAME_RATE,
        num_inference_steps: int | None = None,
        video_guider_params: MultiModalGuiderParams | None = None,
        audio_guider_params: MultiModalGuiderParams | None = None,
        images: list[ImageConditioningInput] | None = None,
        denoising_loop: DenoisingLoop = euler_denoising_loop,
        tiling_config: TilingConfig | None = None,
        overwrite: bool = False,
        enhance_prompt: bool = False,
    ) -> GenerationResult:
        return self.generate(
            prompt=prompt, negative_prompt=negative_prompt, seed=seed, num_inference_steps=num_inference_steps,
            geometry=self.video_geometry(height, width, num_frames, frame_rate),
            video_guider_params=video_guider_params, audio_guider_params=audio_guider_params, images=images,
            output_path=output_path, overwrite=overwrite, tiling_config=tiling_config, stage_1_loop=denoising_loop,
            enhance_prompt=enhance_prompt,
        )  # fmt: skip


def two_stage_parser(
    description: str,
    *,
    height: int,
    width: int,
    steps_help: str | None = None,
    video_defaults: MultiModalGuiderParams | None = None,
    audio_defaults: MultiModalGuiderParams | None = None,
    loop_default: str = "euler",
    distilled_lora_help: str | None = None,
) -> argparse.ArgumentParser:
    """The flags every two-stage pipeline takes, with that pipeline's defaults."""
    parser = cli.base_parser(description, height=height, width=width, size_multiple=TwoStagePipelineBase.size_multiple)
    cli.add_guidance_args(
        parser, steps_help, video_defaults=video_defaults, audio_defaults=audio_defaults, loop_default=loop_default
    )
    cli.add_distilled_lora_arg(parser, help_text=distilled_lora_help)
    cli.add_upsampler_arg(parser)
    return parser


def run_two_stage_cli(
    pipeline_cls: type[TwoStagePipelineBase], args: argparse.Namespace, **call_kwargs: object
) -> None:
    """Build a two-stage pipeline from parsed flags and generate once."""
    cli.start(args)
    pipeline = pipeline_cls(
        **cli.model_kwargs(args),
        distilled_lora=args.distilled_lora,
        spatial_upsampler_path=args.spatial_upsampler_path,
    )
    pipeline(**cli.request_kwargs(args), **cli.guidance_kwargs(args, pipeline.default_stg_block()), **call_kwargs)


def main(argv: list[str] | None = None) -> None:
    parser = two_stage_parser(
        "Two-stage text/image-to-video with LTX-2 (recommended): guided half-size stage, x2 upsample, "
        "distilled-LoRA refinement.",
        height=C.DEFAULT_2_STAGE_HEIGHT, width=C.DEFAULT_2_STAGE_WIDTH,
    )  # fmt: skip
    cli.add_auto_duration_args(parser)
    args = parser.parse_args(argv)
    run_two_stage_cli(TI2VidTwoStagesPipeline, args)


if __name__ == "__main__":
    cli.run_cli(main)
