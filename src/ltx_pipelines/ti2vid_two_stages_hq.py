"""Two-stage text/image-to-video, high-quality settings: the res_2s sampler.

The same two stages as ``ti2vid_two_stages`` with what makes fewer steps enough:
res_2s (the reference's stochastic second-order sampler, see ``engine.denoising``) instead of
Euler in both stages, stage 1's schedule shifted for its own token count, the distilled LoRA
at a light strength in stage 1 and a medium one in stage 2, no STG, stronger guidance
rescale, 15 steps, and a 1088x1920 output. These defaults were tuned (by the model's
authors) for exactly this sampler.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Unpack

import torch
from ltx_core.components.guiders import MultiModalGuiderParams
from ltx_core.components.schedulers import LTX2Scheduler
from ltx_core.loader import LoraPathStrengthAndSDOps
from ltx_core.model.video_vae import TilingConfig
from ltx_core.quantization import QuantizationPolicy
from ltx_core.types import VideoLatentShape

from ltx_pipelines.engine import cli
from ltx_pipelines.engine.conditioning import ImageConditioningInput
from ltx_pipelines.engine.denoising import DenoisingLoop, res2s_denoising_loop
from ltx_pipelines.engine.duration import AutoDuration
from ltx_pipelines.engine.model_ledger import MemoryPolicy
from ltx_pipelines.engine.pipeline_base import GenerationResult
from ltx_pipelines.engine.stages import VideoGeometry
from ltx_pipelines.models.files import ComponentPaths
from ltx_pipelines.ti2vid_two_stages import TwoStagePipelineBase, run_two_stage_cli, two_stage_parser
from ltx_pipelines.utils import constants as C
from ltx_pipelines.utils.errors import InputError


def at_strength(loras: tuple[LoraPathStrengthAndSDOps, ...], strength: float) -> tuple[LoraPathStrengthAndSDOps, ...]:
    """The given LoRAs at one strength; none at all for strength 0 (the stage runs the bare model)."""
    if strength < 0:
        raise InputError(f"Distilled LoRA strengths must not be negative; got {strength}.")
    return () if strength == 0 else tuple(lora._replace(strength=strength) for lora in loras)


def without_idle_stg_blocks(params: MultiModalGuiderParams) -> MultiModalGuiderParams:
    """With STG off no block is perturbed: say so in the settings written to the video."""
    return replace(params, stg_blocks=[]) if params.stg_scale == 0 else params


class TI2VidTwoStagesHQPipeline(TwoStagePipelineBase):
    """res_2s sampling, distilled LoRA at separate strengths per stage, HQ guidance defaults."""

    pipeline_name = "ti2vid_two_stages_hq"

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
        distilled_lora_strength_stage_1: float = C.DEFAULT_HQ_DISTILLED_LORA_STRENGTH_STAGE_1,
        distilled_lora_strength_stage_2: float = C.DEFAULT_HQ_DISTILLED_LORA_STRENGTH_STAGE_2,
        **paths: Unpack[ComponentPaths],
    ):
        """The distilled LoRA's own strength is replaced by the per-stage ones (a call may override them)."""
        super().__init__(
            checkpoint_path=checkpoint_path, distilled_lora=distilled_lora,
            spatial_upsampler_path=spatial_upsampler_path, gemma_root=gemma_root, loras=loras, device=device,
            quantization=quantization, dtype=dtype, memory_policy=memory_policy, offload=offload,
            max_gpu_memory=max_gpu_memory, compile=compile, step_cache=step_cache,
            compile_cache=compile_cache, attention=attention, **paths,
        )  # fmt: skip
        at_strength(self.distilled_lora, distilled_lora_strength_stage_1)  # refuse a negative strength now
        at_strength(self.distilled_lora, distilled_lora_strength_stage_2)
        self.distilled_lora_strength_stage_1 = distilled_lora_strength_stage_1
        self.distilled_lora_strength_stage_2 = distilled_lora_strength_stage_2

    def default_num_inference_steps(self) -> int:
        return C.DEFAULT_HQ_NUM_INFERENCE_STEPS

    def default_guider_params(self) -> tuple[MultiModalGuiderParams, MultiModalGuiderParams]:
        return C.DEFAULT_HQ_VIDEO_GUIDER_PARAMS, C.DEFAULT_HQ_AUDIO_GUIDER_PARAMS

    def stage_1_sigmas(self, steps: int, geometry: VideoGeometry) -> torch.Tensor:
        """LTX-2's schedule shifted for stage 1's own token count (the HQ defaults were tuned with it)."""
        latent_shape = VideoLatentShape.from_pixel_shape(geometry.pixel_shape())
        return LTX2Scheduler().execute(steps=steps, latent=torch.empty(latent_shape.to_torch_shape(), device="meta"))

    def __call__(
        self,
        prompt: str,
        output_path: str | Path | None = None,
        negative_prompt: str | None = None,
        seed: int = C.DEFAULT_SEED,
        height: int = C.DEFAULT_HQ_HEIGHT,
        width: int = C.DEFAULT_HQ_WIDTH,
        num_frames: int | AutoDuration | None = C.DEFAULT_NUM_FRAMES,
        frame_rate: float = C.DEFAULT_FRAME_RATE,
        num_inference_steps: int | None = None,
        video_guider_params: MultiModalGuiderParams | None = None,
        audio_guider_params: MultiModalGuiderParams | None = None,
        images: list[ImageConditioningInput] | None = None,
        denoising_loop: DenoisingLoop | None = None,
        tiling_config: TilingConfig | None = None,
        overwrite: bool = False,
        enhance_prompt: bool = False,
        distilled_lora_strength_stage_1: float | None = None,
        distilled_lora_strength_stage_2: float | None = None,
    ) -> GenerationResult:
        """``denoising_loop`` None: res_2s as the reference samples it (its own SDE noise seeds), in both stages.

        The distilled LoRA strengths default to the constructor's.
        """
        if distilled_lora_strength_stage_1 is None:
            distilled_lora_strength_stage_1 = self.distilled_lora_strength_stage_1
        if distilled_lora_strength_stage_2 is None:
            distilled_lora_strength_stage_2 = self.distilled_lora_strength_stage_2
        loop = denoising_loop or res2s_denoising_loop
        video_params, audio_params = (
            without_idle_stg_blocks(p) if p is not None else None for p in (video_guider_params, audio_guider_params)
        )
        stage_1_loras = at_strength(self.distilled_lora, distilled_lora_strength_stage_1)
        return self.generate(
            prompt=prompt, negative_prompt=negative_prompt, seed=seed, num_inference_steps=num_inference_steps,
            geometry=self.video_geometry(height, width, num_frames, frame_rate),
            video_guider_params=video_params, audio_guider_params=audio_params, images=images,
            output_path=output_path, overwrite=overwrite, enhance_prompt=enhance_prompt, tiling_config=tiling_config,
            stage_1_loop=loop, stage_2_loop=loop, stage_1_loras=stage_1_loras,
            stage_2_loras=at_strength(self.distilled_lora, distilled_lora_strength_stage_2),
            settings={"stage_1_distilled_lora": [f"{Path(lo.path).name}:{lo.strength}" for lo in stage_1_loras]},
        )  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = two_stage_parser(
        "High-quality two-stage text/image-to-video with LTX-2: res_2s sampler, distilled LoRA in both stages "
        "(separate strengths), guided half-size stage, x2 upsample, refinement.",
        height=C.DEFAULT_HQ_HEIGHT, width=C.DEFAULT_HQ_WIDTH,
        steps_help=f"Denoising steps of stage 1 (default: {C.DEFAULT_HQ_NUM_INFERENCE_STEPS}).",
        video_defaults=C.DEFAULT_HQ_VIDEO_GUIDER_PARAMS, audio_defaults=C.DEFAULT_HQ_AUDIO_GUIDER_PARAMS,
        loop_default="res2s",
        distilled_lora_help="Distilled LoRA used in both stages; its STRENGTH is replaced by the per-stage strengths.",
    )  # fmt: skip
    parser.add_argument(
        "--distilled-lora-strength-stage-1", type=float, default=C.DEFAULT_HQ_DISTILLED_LORA_STRENGTH_STAGE_1,
        help="Distilled LoRA strength in stage 1; 0 runs stage 1 on the bare model.",
    )  # fmt: skip
    parser.add_argument(
        "--distilled-lora-strength-stage-2", type=float, default=C.DEFAULT_HQ_DISTILLED_LORA_STRENGTH_STAGE_2,
        help="Distilled LoRA strength in stage 2 (the refinement).",
    )  # fmt: skip
    cli.add_auto_duration_args(parser)
    args = parser.parse_args(argv)
    run_two_stage_cli(
        TI2VidTwoStagesHQPipeline, args,
        distilled_lora_strength_stage_1=args.distilled_lora_strength_stage_1,
        distilled_lora_strength_stage_2=args.distilled_lora_strength_stage_2,
    )  # fmt: skip


if __name__ == "__main__":
    cli.run_cli(main)
