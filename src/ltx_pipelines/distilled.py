"""Fastest text/image-to-video: the distilled model, no guidance, fixed sigmas.

Stage 1: 8 steps at half size. x2 latent upsample. Stage 2: 3 refinement steps at full size.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Unpack

from ltx_core.loader import LoraPathStrengthAndSDOps
from ltx_core.model.video_vae import TilingConfig
from ltx_core.quantization import QuantizationPolicy

from ltx_pipelines.engine import cli
from ltx_pipelines.engine.conditioning import ImageConditioningInput
from ltx_pipelines.engine.denoising import DenoisingLoop, euler_ancestral_denoising_loop, euler_denoising_loop
from ltx_pipelines.engine.duration import AutoDuration
from ltx_pipelines.engine.model_ledger import MemoryPolicy
from ltx_pipelines.engine.pipeline_base import GenerationResult, PipelineBase
from ltx_pipelines.models.files import ComponentPaths
from ltx_pipelines.utils import constants as C
from ltx_pipelines.utils.aliases import reference_names
from ltx_pipelines.utils.validation import check_prompt

#: LTX-2.5's stage-1 noise generator is seeded this far from the generation's seed (the reference 1.2.0's offset).
ANCESTRAL_NOISE_SEED_OFFSET = 10000


class DistilledPipeline(PipelineBase):
    """Two distilled stages around a x2 latent upsample."""

    pipeline_name = "distilled"
    size_multiple = 64
    memory_stages = ((0.5, False), (1.0, False))
    needs_upsampler = True
    runs_distilled_model = True

    @reference_names(distilled_checkpoint_path="checkpoint_path")
    def __init__(
        self,
        checkpoint_path: str | Path | None = None,
        gemma_root: str | Path | None = None,
        spatial_upsampler_path: str | Path | None = None,
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
        super().__init__(
            checkpoint_path=checkpoint_path, gemma_root=gemma_root, loras=loras, quantization=quantization,
            spatial_upsampler_path=spatial_upsampler_path, device=device, dtype=dtype, memory_policy=memory_policy,
            offload=offload, max_gpu_memory=max_gpu_memory, compile=compile, step_cache=step_cache,
            compile_cache=compile_cache, attention=attention, **paths,
        )  # fmt: skip

    def __call__(
        self,
        prompt: str,
        output_path: str | Path | None = None,
        seed: int = C.DEFAULT_SEED,
        height: int = C.DEFAULT_2_STAGE_HEIGHT,
        width: int = C.DEFAULT_2_STAGE_WIDTH,
        num_frames: int | AutoDuration | None = C.DEFAULT_NUM_FRAMES,
        frame_rate: float = C.DEFAULT_FRAME_RATE,
        images: list[ImageConditioningInput] | None = None,
        tiling_config: TilingConfig | None = None,
        overwrite: bool = False,
        enhance_prompt: bool = False,
    ) -> GenerationResult:
        geometry = self.video_geometry(height, width, num_frames, frame_rate)
        images = self.image_inputs(images)
        check_prompt(prompt, conditioned_by="the images" if images else None)
        output = self.check_request(geometry, images, output_path, overwrite)

        prompt_used, enhancement = self.enhance_prompt(prompt, enhance_prompt, images, seed)
        (positive,) = self.encode_prompts([prompt_used])
        geometry = self.settle_duration(geometry, positive, images)
        generator = self.generator(seed)
        low_geometry = geometry.halved()
        low = self.distilled_stage(
            name="stage 1",
            geometry=low_geometry,
            prompt=positive,
            sigma_values=C.DISTILLED_SIGMA_VALUES,
            conditionings=self.image_conditionings(images, low_geometry),
            generator=generator,
            loop=self.stage_1_loop(seed),
        )
        high = self.upsample_and_refine(low=low, geometry=geometry, prompt=positive, images=images, generator=generator)
        settings = {"prompt": prompt, "seed": seed, "sigmas": C.DISTILLED_SIGMA_VALUES, "images": [list(i) for i in images]}
        settings.update(enhancement)
        return self.finish(high, geometry, generator, output, overwrite, settings, tiling_config)

    def stage_1_loop(self, seed: int) -> DenoisingLoop:
        """Euler for LTX-2 / 2.3; from LTX-2.5 on, Euler-ancestral with noise of its own (seeded seed + 10000,
        so that its first draw is not the initial noise again)."""
        if not self.files.generation.ancestral_distilled_stage_1:
            return euler_denoising_loop
        return partial(euler_ancestral_denoising_loop, noise_seed=seed + ANCESTRAL_NOISE_SEED_OFFSET)


def main(argv: list[str] | None = None) -> None:
    parser = cli.base_parser(
        "Fast two-stage text/image-to-video with the distilled LTX-2 model (8 + 3 steps, no guidance).",
        height=C.DEFAULT_2_STAGE_HEIGHT, width=C.DEFAULT_2_STAGE_WIDTH, size_multiple=64,
    )  # fmt: skip
    parser._option_string_actions["--checkpoint-path"].help = "Distilled LTX-2 checkpoint (.safetensors)."
    cli.add_flag_alias(parser, "--checkpoint-path", "--distilled-checkpoint-path")
    cli.add_fixed_steps_flag(parser)
    cli.add_upsampler_arg(parser)
    cli.add_auto_duration_args(parser)
    args = parser.parse_args(argv)
    cli.start(args)
    cli.warn_fixed_steps(args)
    pipeline = DistilledPipeline(**cli.model_kwargs(args), spatial_upsampler_path=args.spatial_upsampler_path)
    pipeline(**cli.request_kwargs(args))


if __name__ == "__main__":
    cli.run_cli(main)
