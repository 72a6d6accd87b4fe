"""Single-stage text/image-to-video: guided denoising at the target size.

Mostly for learning how the pieces fit; the two-stage pipelines give better results.
"""

from __future__ import annotations

from pathlib import Path

from ltx_core.components.guiders import MultiModalGuiderParams
from ltx_core.model.video_vae import TilingConfig

from ltx_pipelines.engine import cli
from ltx_pipelines.engine.conditioning import ImageConditioningInput
from ltx_pipelines.engine.denoising import DenoisingLoop, euler_denoising_loop
from ltx_pipelines.engine.duration import AutoDuration
from ltx_pipelines.engine.pipeline_base import GenerationResult, PipelineBase, guider_metadata
from ltx_pipelines.utils import constants as C
from ltx_pipelines.utils.validation import check_prompt


class TI2VidOneStagePipeline(PipelineBase):
    """Text (and optional images) to video+audio in one guided stage."""

    pipeline_name = "ti2vid_one_stage"

    def __call__(
        self,
        prompt: str,
        output_path: str | Path | None = None,
        negative_prompt: str | None = None,
        seed: int = C.DEFAULT_SEED,
        height: int = C.DEFAULT_1_STAGE_HEIGHT,
        width: int = C.DEFAULT_1_STAGE_WIDTH,
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
        geometry = self.video_geometry(height, width, num_frames, frame_rate)
        images = self.image_inputs(images)
        check_prompt(prompt, conditioned_by="the images" if images else None)
        output = self.check_request(geometry, images, output_path, overwrite)
        steps, video_params, audio_params = self.resolve_guidance(num_inference_steps, video_guider_params, audio_guider_params)
        negative_prompt = C.DEFAULT_NEGATIVE_PROMPT if negative_prompt is None else negative_prompt

        prompt_used, enhancement = self.enhance_prompt(prompt, enhance_prompt, images, seed)
        positive, negative = self.encode_prompts([prompt_used, negative_prompt])
        geometry = self.settle_duration(geometry, positive, images)
        generator = self.generator(seed)
        latents = self.guided_stage(
            name="stage 1",
            geometry=geometry,
            positive=positive,
            negative=negative,
            video_guider_params=video_params,
            audio_guider_params=audio_params,
            num_inference_steps=steps,
            conditionings=self.image_conditionings(images, geometry),
            generator=generator,
            loop=denoising_loop,
        )
        settings = {
            "prompt": prompt, "negative_prompt": negative_prompt, "seed": seed, "num_inference_steps": steps,
            "video_guidance": guider_metadata(video_params), "audio_guidance": guider_metadata(audio_params),
            "images": [list(i) for i in images], **enhancement,
        }  # fmt: skip
        return self.finish(latents, geometry, generator, output, overwrite, settings, tiling_config)


def main(argv: list[str] | None = None) -> None:
    parser = cli.base_parser(
        "Single-stage text/image-to-video with LTX-2 (educational; two-stage pipelines look better).",
        height=C.DEFAULT_1_STAGE_HEIGHT, width=C.DEFAULT_1_STAGE_WIDTH, size_multiple=32,
    )  # fmt: skip
    cli.add_guidance_args(parser)
    cli.add_auto_duration_args(parser)
    args = parser.parse_args(argv)
    cli.start(args)
    pipeline = TI2VidOneStagePipeline(**cli.model_kwargs(args))
    pipeline(**cli.request_kwargs(args), **cli.guidance_kwargs(args, pipeline.default_stg_block()))


if __name__ == "__main__":
    cli.run_cli(main)
