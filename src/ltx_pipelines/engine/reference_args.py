"""The reference package's ``ltx_pipelines.engine.reference_args``, on our CLI layer.

Code written for ltx-pipelines 1.0.0 imports ``ImageConditioningInput`` from here, and scripts
build their command lines with these actions and parser builders. The parsers are ours
(:mod:`ltx_pipelines.engine.cli`: every flag of our pipelines, our checks and help), with the
namespace a reference script reads: ``args.lora`` (not ``args.loras``), ``args.quantization`` a
``QuantizationPolicy``, ``args.distilled_checkpoint_path`` on the distilled builder, and the
defaults of the given :class:`PipelineParams`.
"""

from __future__ import annotations

import argparse
import sys

from ltx_core.loader import LTXV_LORA_COMFY_RENAMING_MAP, LoraPathStrengthAndSDOps
from ltx_core.quantization import QuantizationPolicy

from ltx_pipelines.engine import cli
from ltx_pipelines.engine.conditioning import ImageConditioningInput
from ltx_pipelines.utils.constants import (
    DEFAULT_HQ_DISTILLED_LORA_STRENGTH_STAGE_1,
    DEFAULT_HQ_DISTILLED_LORA_STRENGTH_STAGE_2,
    DEFAULT_IMAGE_CRF,
    DEFAULT_LORA_STRENGTH,
    DEFAULT_NEGATIVE_PROMPT,
    LTX_2_3_HQ_PARAMS,
    LTX_2_3_PARAMS,
    LTX_2_PARAMS,
    PipelineParams,
)

resolve_path = cli.resolve_path
QUANTIZATION_POLICIES = cli.QUANTIZATION_POLICIES


class ImageAction(cli._ImageAction):
    """--image PATH FRAME_IDX STRENGTH [CRF] (repeatable) -> a list of ImageConditioningInput."""


class LoraAction(cli._LoraAction):
    """--lora PATH [STRENGTH] (repeatable) -> a list of LoraPathStrengthAndSDOps in ComfyUI key naming."""


class QuantizationAction(cli._QuantizationAction):
    """--quantization POLICY [AMAX_PATH] -> a QuantizationPolicy (AMAX_PATH is not needed by our FP8 matmuls)."""

    def __call__(self, parser, namespace, values, option_string=None):  # noqa: ANN001
        super().__call__(parser, namespace, values, option_string)
        setattr(namespace, self.dest, cli.quantization_from_arg(getattr(namespace, self.dest)))


class VideoConditioningAction(argparse.Action):
    """--video-conditioning PATH STRENGTH (repeatable) -> a list of (path, strength)."""

    def __call__(self, parser, namespace, values, option_string=None):  # noqa: ANN001
        try:
            reference = (resolve_path(values[0]), float(values[1]))
        except ValueError:
            parser.error(f"{option_string} {' '.join(values)}: STRENGTH must be a number")
        setattr(namespace, self.dest, [*(getattr(namespace, self.dest, None) or []), reference])


class VideoMaskConditioningAction(argparse.Action):
    """--conditioning-attention-mask MASK_PATH STRENGTH -> (path, strength); or one WEIGHT -> a number (ours)."""

    def __call__(self, parser, namespace, values, option_string=None):  # noqa: ANN001
        if len(values) not in (1, 2):
            parser.error(f"{option_string} takes WEIGHT or MASK_PATH STRENGTH, got {len(values)} values")
        try:
            value = float(values[0]) if len(values) == 1 else (resolve_path(values[0]), float(values[1]))
        except ValueError:
            parser.error(f"{option_string} {' '.join(values)}: WEIGHT and STRENGTH must be numbers")
        setattr(namespace, self.dest, value)


def detect_checkpoint_path(distilled: bool = False) -> str:
    """The checkpoint named on the command line, read before the full parser is built (to pick its defaults)."""
    flag = "--distilled-checkpoint-path" if distilled else "--checkpoint-path"
    early = argparse.ArgumentParser(add_help=False)
    early.add_argument(flag, dest="path", type=resolve_path, required=True)
    known, _ = early.parse_known_args(sys.argv[1:])
    return known.path


def detect_params(checkpoint_path: str) -> PipelineParams:
    """LTX-2.3 defaults for checkpoints whose metadata says model_version 2.3.x, else LTX-2's."""
    from ltx_pipelines.models.checkpoints import read_header
    from ltx_pipelines.utils.errors import InputError

    try:
        version = str(read_header(checkpoint_path).metadata.get("model_version", ""))
    except InputError:
        return LTX_2_PARAMS
    return LTX_2_3_PARAMS if version.startswith("2.3") else LTX_2_PARAMS


# --------------------------------------------------------------------------- parser builders


def _reference_namespace(parser: argparse.ArgumentParser, distilled: bool) -> None:
    """Rename and convert what a reference script reads from ``parse_args()``."""
    parser._option_string_actions["--lora"].dest = "lora"
    quantization = parser._option_string_actions["--quantization"]
    parser._remove_action(quantization)
    for flag in quantization.option_strings:
        del parser._option_string_actions[flag]
    parser.add_argument(
        "--quantization", action=QuantizationAction, nargs="+", default=None, metavar=("POLICY", "AMAX_PATH"),
        help=quantization.help,
    )  # fmt: skip
    if distilled:
        checkpoint = parser._option_string_actions["--checkpoint-path"]
        checkpoint.dest = "distilled_checkpoint_path"
        checkpoint.help = "Distilled LTX-2 checkpoint (.safetensors)."
        cli.add_flag_alias(parser, "--checkpoint-path", "--distilled-checkpoint-path")


def _parser(
    params: PipelineParams, *, two_stage: bool, guided: bool, distilled: bool = False
) -> argparse.ArgumentParser:
    height = params.stage_2_height if two_stage else params.stage_1_height
    width = params.stage_2_width if two_stage else params.stage_1_width
    parser = cli.base_parser(
        "LTX-2 video generation (the reference's command line, on ltx-pipelines).",
        height=height, width=width, size_multiple=64 if two_stage else 32,
    )  # fmt: skip
    parser.set_defaults(seed=params.seed, num_frames=params.num_frames, frame_rate=params.frame_rate)
    _reference_namespace(parser, distilled)
    if guided:
        video, audio = params.video_guider_params, params.audio_guider_params
        cli.add_guidance_args(parser, video_defaults=video, audio_defaults=audio)
        parser.set_defaults(
            video_stg_blocks=list(video.stg_blocks or []), audio_stg_blocks=list(audio.stg_blocks or [])
        )
    else:
        parser.add_argument("--num-inference-steps", type=int, help="Denoising steps.")
    parser.set_defaults(num_inference_steps=params.num_inference_steps)
    return parser


def basic_arg_parser(params: PipelineParams = LTX_2_3_PARAMS, distilled: bool = False) -> argparse.ArgumentParser:
    """Model files, prompt, output, size, length, steps, images, LoRAs, quantization."""
    return _parser(params, two_stage=False, guided=False, distilled=distilled)


def default_1_stage_arg_parser(params: PipelineParams = LTX_2_3_PARAMS) -> argparse.ArgumentParser:
    """The basic flags plus the negative prompt and the per-modality guidance."""
    return _parser(params, two_stage=False, guided=True)


def default_2_stage_arg_parser(params: PipelineParams = LTX_2_3_PARAMS) -> argparse.ArgumentParser:
    """The one-stage flags at the two-stage output size, plus the distilled LoRA and the upsampler."""
    parser = _parser(params, two_stage=True, guided=True)
    cli.add_distilled_lora_arg(parser)
    cli.add_upsampler_arg(parser)
    return parser


def hq_2_stage_arg_parser(params: PipelineParams = LTX_2_3_HQ_PARAMS) -> argparse.ArgumentParser:
    """The two-stage flags plus the HQ pipeline's per-stage distilled-LoRA strengths."""
    parser = default_2_stage_arg_parser(params)
    strengths = (DEFAULT_HQ_DISTILLED_LORA_STRENGTH_STAGE_1, DEFAULT_HQ_DISTILLED_LORA_STRENGTH_STAGE_2)
    for stage, default in enumerate(strengths, start=1):
        parser.add_argument(
            f"--distilled-lora-strength-stage-{stage}", type=float, default=default,
            help=f"Distilled LoRA strength in stage {stage}.",
        )  # fmt: skip
    return parser


def default_2_stage_distilled_arg_parser(params: PipelineParams = LTX_2_3_PARAMS) -> argparse.ArgumentParser:
    """The basic flags for the distilled model (--distilled-checkpoint-path) at two-stage size, plus the upsampler."""
    parser = _parser(params, two_stage=True, guided=False, distilled=True)
    cli.add_upsampler_arg(parser)
    return parser


__all__ = [
    "DEFAULT_IMAGE_CRF",
    "DEFAULT_LORA_STRENGTH",
    "DEFAULT_NEGATIVE_PROMPT",
    "LTXV_LORA_COMFY_RENAMING_MAP",
    "LTX_2_3_HQ_PARAMS",
    "LTX_2_3_PARAMS",
    "QUANTIZATION_POLICIES",
    "ImageAction",
    "ImageConditioningInput",
    "LoraAction",
    "LoraPathStrengthAndSDOps",
    "PipelineParams",
    "QuantizationAction",
    "QuantizationPolicy",
    "VideoConditioningAction",
    "VideoMaskConditioningAction",
    "basic_arg_parser",
    "default_1_stage_arg_parser",
    "default_2_stage_arg_parser",
    "default_2_stage_distilled_arg_parser",
    "detect_checkpoint_path",
    "detect_params",
    "hq_2_stage_arg_parser",
    "resolve_path",
]
