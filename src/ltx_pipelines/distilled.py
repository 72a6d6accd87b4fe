"""Fastest text/image-to-video: the distilled model, no guidance, fixed sigmas.

Stage 1: 8 steps at half size. x2 latent upsample. Stage 2: 3 refinement steps at full size.
"""

from __future__ import annotations

from pathlib import Path

from ltx_core.model.video_vae import TilingConfig

from ltx_pipelines.utils import cli
from ltx_pipelines.utils import constants as C
from ltx_pipelines.utils.conditioning import ImageConditioningInput, as_image_inputs
from ltx_pipelines.utils.pipeline_base import GenerationResult, PipelineBase
from ltx_pipelines.utils.stages import VideoGeometry


class DistilledPipeline(PipelineBase):
    """Two distilled stages around a x2 latent upsample."""

    pipeline_name = "distilled"
    size_multiple = 64
    needs_upsampler = True

    def __call__(
        self,
        prompt: str,
        output_path: str | Path | None = None,
        seed: int = C.DEFAULT_SEED,
        height: int = C.DEFAULT_2_STAGE_HEIGHT,
        width: int = C.DEFAULT_2_STAGE_WIDTH,
        num_frames: int = C.DEFAULT_NUM_FRAMES,
        frame_rate: float = C.DEFAULT_FRAME_RATE,
        images: list[ImageConditioningInput] | None = None,
        tiling_config: TilingConfig | None = None,
        overwrite: bool = False,
        enhance_prompt: bool = False,
    ) -> GenerationResult:
        geometry = VideoGeometry(height, width, num_frames, frame_rate)
        images = as_image_inputs(images)
        output = self.check_request(geometry, images, output_path, overwrite)

        prompt_used, enhancement = self.enhance_prompt(prompt, enhance_prompt, images, seed)
        (positive,) = self.encode_prompts([prompt_used])
        generator = self.generator(seed)
        low_geometry = geometry.halved()
        low = self.distilled_stage(
            name="stage 1",
            geometry=low_geometry,
            prompt=positive,
            sigma_values=C.DISTILLED_SIGMA_VALUES,
            conditionings=self.image_conditionings(images, low_geometry),
            generator=generator,
        )
        high = self.upsample_and_refine(low=low, geometry=geometry, prompt=positive, images=images, generator=generator)
        settings = {"prompt": prompt, "seed": seed, "sigmas": C.DISTILLED_SIGMA_VALUES, "images": [list(i) for i in images]}
        settings.update(enhancement)
        return self.finish(high, geometry, generator, output, overwrite, settings, tiling_config)


def main(argv: list[str] | None = None) -> None:
    parser = cli.base_parser(
        "Fast two-stage text/image-to-video with the distilled LTX-2 model (8 + 3 steps, no guidance).",
        height=C.DEFAULT_2_STAGE_HEIGHT, width=C.DEFAULT_2_STAGE_WIDTH, size_multiple=64,
    )  # fmt: skip
    for action in parser._actions:  # the distilled weights may also be given under their own name
        if "--checkpoint-path" in action.option_strings:
            action.option_strings.append("--distilled-checkpoint-path")
            parser._option_string_actions["--distilled-checkpoint-path"] = action
            action.help = "Distilled LTX-2 checkpoint (.safetensors); also accepted as --distilled-checkpoint-path."
    cli.add_upsampler_arg(parser)
    args = parser.parse_args(argv)
    cli.start(args)
    pipeline = DistilledPipeline(**cli.model_kwargs(args), spatial_upsampler_path=args.spatial_upsampler_path)
    pipeline(**cli.request_kwargs(args))


if __name__ == "__main__":
    cli.run_cli(main)
