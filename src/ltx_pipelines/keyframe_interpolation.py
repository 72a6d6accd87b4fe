"""Keyframe interpolation: a video that passes through given images at given frames.

The two stages of ``ti2vid_two_stages``, but every ``--image PATH FRAME STRENGTH`` becomes
guiding keyframe tokens (appended to the sequence at that frame's position) in both
stages instead of replacing latent frames, which gives smoother motion between keyframes.
"""

from __future__ import annotations

from pathlib import Path

from ltx_core.components.guiders import MultiModalGuiderParams
from ltx_core.model.video_vae import TilingConfig

from ltx_pipelines.ti2vid_two_stages import TwoStagePipelineBase, run_two_stage_cli, two_stage_parser
from ltx_pipelines.utils import cli
from ltx_pipelines.utils import constants as C
from ltx_pipelines.utils.conditioning import ImageConditioningInput
from ltx_pipelines.utils.denoising import DenoisingLoop, euler_denoising_loop
from ltx_pipelines.utils.pipeline_base import GenerationResult
from ltx_pipelines.utils.stages import VideoGeometry


class KeyframeInterpolationPipeline(TwoStagePipelineBase):
    """Guided half-size stage and distilled-LoRA refinement, both conditioned on keyframe tokens."""

    pipeline_name = "keyframe_interpolation"
    by_guiding_latent = True

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
        enhance_prompt: bool = False,
    ) -> GenerationResult:
        """``images``: the keyframes as (path, frame index, strength[, crf])."""
        return self.generate(
            prompt=prompt, negative_prompt=negative_prompt, seed=seed,
            geometry=VideoGeometry(height, width, num_frames, frame_rate), num_inference_steps=num_inference_steps,
            video_guider_params=video_guider_params, audio_guider_params=audio_guider_params, images=images,
            output_path=output_path, overwrite=overwrite, enhance_prompt=enhance_prompt, tiling_config=tiling_config,
            stage_1_loop=denoising_loop,
        )  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = two_stage_parser(
        "Keyframe interpolation with LTX-2: a video through the --image keyframes (PATH FRAME_IDX STRENGTH), "
        "two stages like ti2vid_two_stages with the keyframes as guiding tokens in both.",
        height=C.DEFAULT_2_STAGE_HEIGHT, width=C.DEFAULT_2_STAGE_WIDTH,
    )  # fmt: skip
    run_two_stage_cli(KeyframeInterpolationPipeline, parser.parse_args(argv))


if __name__ == "__main__":
    cli.run_cli(main)
