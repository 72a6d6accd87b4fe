"""Two-stage text/image-to-video, the recommended pipeline.

Stage 1 denoises at half size with multimodal guidance; the latent is upsampled x2;
stage 2 refines at full size with the distilled LoRA and the short distilled schedule.
"""

from __future__ import annotations

from pathlib import Path

from ltx_core.components.guiders import MultiModalGuiderParams
from ltx_core.loader import LoraPathStrengthAndSDOps
from ltx_core.model.video_vae import TilingConfig
from ltx_core.quantization import QuantizationPolicy

from ltx_pipelines.utils import cli
from ltx_pipelines.utils import constants as C
from ltx_pipelines.utils.checkpoints import check_lora_matches
from ltx_pipelines.utils.conditioning import ImageConditioningInput, as_image_inputs
from ltx_pipelines.utils.denoising import DenoisingLoop, euler_denoising_loop
from ltx_pipelines.utils.model_ledger import MemoryPolicy
from ltx_pipelines.utils.pipeline_base import GenerationResult, PipelineBase, _lora_list, guider_metadata
from ltx_pipelines.utils.prompts import encode_prompts
from ltx_pipelines.utils.stages import VideoGeometry


class TwoStagePipelineBase(PipelineBase):
    """Full model for stage 1, full model + distilled LoRA for stage 2."""

    size_multiple = 64
    needs_upsampler = True

    def __init__(
        self,
        checkpoint_path: str | Path,
        distilled_lora: list[LoraPathStrengthAndSDOps] | LoraPathStrengthAndSDOps,
        spatial_upsampler_path: str | Path,
        gemma_root: str | Path,
        loras: list[LoraPathStrengthAndSDOps] | tuple = (),
        quantization: QuantizationPolicy | None = None,
        device: object | None = None,
        dtype: object | None = None,
        memory_policy: MemoryPolicy | str | None = None,
    ):
        super().__init__(
            checkpoint_path=checkpoint_path, gemma_root=gemma_root, loras=loras, quantization=quantization,
            spatial_upsampler_path=spatial_upsampler_path, device=device, dtype=dtype, memory_policy=memory_policy,
        )  # fmt: skip
        self.distilled_lora = _lora_list(distilled_lora)
        if not self.distilled_lora:
            raise ValueError(f"{type(self).__name__} needs a distilled LoRA for stage 2.")
        for lora in self.distilled_lora:
            check_lora_matches(lora.path, checkpoint_path, "distilled LoRA (--distilled-lora)")


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
        num_frames: int = C.DEFAULT_NUM_FRAMES,
        frame_rate: float = C.DEFAULT_FRAME_RATE,
        num_inference_steps: int | None = None,
        video_guider_params: MultiModalGuiderParams | None = None,
        audio_guider_params: MultiModalGuiderParams | None = None,
        images: list[ImageConditioningInput] | None = None,
        denoising_loop: DenoisingLoop = euler_denoising_loop,
        tiling_config: TilingConfig | None = None,
        overwrite: bool = False,
    ) -> GenerationResult:
        geometry = VideoGeometry(height, width, num_frames, frame_rate)
        images = as_image_inputs(images)
        output = self.check_request(geometry, images, output_path, overwrite)
        steps, video_params, audio_params = self.resolve_guidance(num_inference_steps, video_guider_params, audio_guider_params)
        negative_prompt = C.DEFAULT_NEGATIVE_PROMPT if negative_prompt is None else negative_prompt

        positive, negative = encode_prompts(self.ledger, [prompt, negative_prompt])
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
            conditionings=self.image_conditionings(images, low_geometry),
            generator=generator,
            loop=denoising_loop,
        )
        high = self.upsample_and_refine(
            low=low, geometry=geometry, prompt=positive, images=images, generator=generator,
            extra_loras=self.distilled_lora,
        )  # fmt: skip
        settings = {
            "prompt": prompt, "negative_prompt": negative_prompt, "seed": seed, "num_inference_steps": steps,
            "video_guidance": guider_metadata(video_params), "audio_guidance": guider_metadata(audio_params),
            "images": [list(i) for i in images],
            "distilled_lora": [f"{Path(lora.path).name}:{lora.strength}" for lora in self.distilled_lora],
        }  # fmt: skip
        return self.finish(high, geometry, generator, output, overwrite, settings, tiling_config)


def main(argv: list[str] | None = None) -> None:
    parser = cli.base_parser(
        "Two-stage text/image-to-video with LTX-2 (recommended): guided half-size stage, x2 upsample, "
        "distilled-LoRA refinement.",
        height=C.DEFAULT_2_STAGE_HEIGHT, width=C.DEFAULT_2_STAGE_WIDTH, size_multiple=64,
    )  # fmt: skip
    cli.add_guidance_args(parser)
    cli.add_distilled_lora_arg(parser)
    cli.add_upsampler_arg(parser)
    args = parser.parse_args(argv)
    cli.setup_logging(args.log_level)
    cli.smoke_warning(args.checkpoint_path)
    pipeline = TI2VidTwoStagesPipeline(
        checkpoint_path=args.checkpoint_path,
        distilled_lora=args.distilled_lora,
        spatial_upsampler_path=args.spatial_upsampler_path,
        gemma_root=args.gemma_root,
        loras=args.loras,
        quantization=cli.quantization_from_arg(args.quantization),
        device=args.device,
        memory_policy=args.memory_policy,
    )
    video_params, audio_params = cli.guider_params_from_args(args, pipeline.default_stg_block())
    pipeline(
        prompt=args.prompt, output_path=args.output_path, negative_prompt=args.negative_prompt, seed=args.seed,
        height=args.height, width=args.width, num_frames=args.num_frames, frame_rate=args.frame_rate,
        num_inference_steps=args.num_inference_steps, video_guider_params=video_params,
        audio_guider_params=audio_params, images=args.images, denoising_loop=cli.loop_from_args(args),
        overwrite=args.overwrite,
    )  # fmt: skip


if __name__ == "__main__":
    cli.run_cli(main)
