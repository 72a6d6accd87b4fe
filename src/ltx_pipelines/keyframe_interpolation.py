"""Keyframe interpolation: a video that passes through given images at given frames.

The two stages of ``ti2vid_two_stages``, but every ``--image PATH FRAME STRENGTH`` becomes
guiding keyframe tokens (appended to the sequence at that frame's position) in both
stages instead of replacing latent frames, which gives smoother motion between keyframes.
"""

from __future__ import annotations

from ltx_pipelines.engine import cli
from ltx_pipelines.ti2vid_two_stages import TI2VidTwoStagesPipeline, run_two_stage_cli, two_stage_parser
from ltx_pipelines.utils import constants as C


class KeyframeInterpolationPipeline(TI2VidTwoStagesPipeline):
    """Guided half-size stage and distilled-LoRA refinement, both conditioned on keyframe tokens.

    Same constructor and call as TI2VidTwoStagesPipeline; ``images`` are the keyframes as
    (path, frame index, strength[, crf]).
    """

    pipeline_name = "keyframe_interpolation"
    by_guiding_latent = True
    hears_stage_1_audio = False


def main(argv: list[str] | None = None) -> None:
    parser = two_stage_parser(
        "Keyframe interpolation with LTX-2: a video through the --image keyframes (PATH FRAME_IDX STRENGTH), "
        "two stages like ti2vid_two_stages with the keyframes as guiding tokens in both.",
        height=C.DEFAULT_2_STAGE_HEIGHT, width=C.DEFAULT_2_STAGE_WIDTH,
    )  # fmt: skip
    run_two_stage_cli(KeyframeInterpolationPipeline, parser.parse_args(argv))


if __name__ == "__main__":
    cli.run_cli(main)
