"""Command-line flags shared by the pipelines, and the one way every CLI runs."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from ltx_core.components.guiders import MultiModalGuiderParams
from ltx_core.loader import LoraPathStrengthAndSDOps
from ltx_core.quantization import QuantizationPolicy

from ltx_pipelines.acceleration.cli_flags import acceleration_kwargs, add_acceleration_args
from ltx_pipelines.engine.conditioning import ImageConditioningInput
from ltx_pipelines.engine.duration import AutoDuration
from ltx_pipelines.engine.model_ledger import comfy_lora
from ltx_pipelines.engine.pipeline_base import frames_not_kept
from ltx_pipelines.models.files import VAE_DECODERS, ComponentPaths
from ltx_pipelines.utils import constants as C
from ltx_pipelines.utils.errors import InputError


def resolve_path(path: str) -> str:
    return str(Path(path).expanduser().resolve())


class _ImageAction(argparse.Action):
    """--image PATH FRAME_IDX STRENGTH [CRF]"""

    def __call__(self, parser, namespace, values, option_string=None):  # noqa: ANN001
        if len(values) not in (3, 4):
            parser.error(f"{option_string} takes PATH FRAME_IDX STRENGTH [CRF], got {len(values)} values")
        try:
            crf = int(values[3]) if len(values) == 4 else None  # None: the model's own, read from its files
            image = ImageConditioningInput(resolve_path(values[0]), int(values[1]), float(values[2]), crf)
        except ValueError:
            parser.error(f"{option_string} {' '.join(values)}: FRAME_IDX and CRF must be integers, STRENGTH a number")
        setattr(namespace, self.dest, [*(getattr(namespace, self.dest, None) or []), image])


class _LoraAction(argparse.Action):
    """--lora PATH [STRENGTH]"""

    default_strength = C.DEFAULT_LORA_STRENGTH

    def __call__(self, parser, namespace, values, option_string=None):  # noqa: ANN001
        if len(values) not in (1, 2):
            parser.error(f"{option_string} takes PATH [STRENGTH], got {len(values)} values")
        try:
            strength = float(values[1]) if len(values) == 2 else self.default_strength
        except ValueError:
            parser.error(f"{option_string} {' '.join(values)}: STRENGTH must be a number")
        current = getattr(namespace, self.dest, None) or []
        setattr(namespace, self.dest, [*current, comfy_lora(resolve_path(values[0]), strength)])


class _DistilledLoraAction(_LoraAction):
    default_strength = C.DEFAULT_DISTILLED_LORA_STRENGTH


QUANTIZATION_POLICIES = ("fp8-cast", "fp8-scaled-mm")


class _QuantizationAction(argparse.Action):
    """--quantization POLICY [AMAX_PATH]: stores the policy name (AMAX_PATH, the reference's calibration file
    for fp8-scaled-mm, is accepted and not needed: our FP8 matmuls scale activations per token)."""

    def __call__(self, parser, namespace, values, option_string=None):  # noqa: ANN001
        policy, *rest = values
        if policy not in QUANTIZATION_POLICIES:
            parser.error(f"{option_string}: unknown policy {policy!r}; choose {' or '.join(QUANTIZATION_POLICIES)}")
        if len(rest) > (1 if policy == "fp8-scaled-mm" else 0):
            parser.error(f"{option_string} {' '.join(values)}: only fp8-scaled-mm takes an AMAX_PATH")
        if rest:
            logging.getLogger("ltx_pipelines").warning(
                "%s: %s is not read; our FP8 matmuls scale activations per token and need no calibration.",
                option_string, rest[0],
            )  # fmt: skip
        setattr(namespace, self.dest, policy)


def _help_formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.ArgumentDefaultsHelpFormatter(prog, max_help_position=36, width=110)


def base_parser(description: str, *, height: int, width: int, size_multiple: int) -> argparse.ArgumentParser:
    """Flags every pipeline takes."""
    parser = argparse.ArgumentParser(description=description, formatter_class=_help_formatter)
    add_model_file_args(parser)
    parser.add_argument("--prompt", required=True, help="What the video should show and sound like.")
    parser.add_argument("--output-path", type=resolve_path, required=True, help="The .mp4 file to write.")
    parser.add_argument("--overwrite", action="store_true", help="Replace --output-path if it exists.")
    parser.add_argument("--seed", type=int, default=C.DEFAULT_SEED, help="Random seed (same seed, same video).")
    parser.add_argument("--height", type=int, default=height, help=f"Output height; a multiple of {size_multiple}.")
    parser.add_argument("--width", type=int, default=width, help=f"Output width; a multiple of {size_multiple}.")
    parser.add_argument("--num-frames", type=int, default=C.DEFAULT_NUM_FRAMES, help="Frames to generate; 8k+1.")
    parser.add_argument("--frame-rate", type=float, default=C.DEFAULT_FRAME_RATE, help="Frames per second.")
    parser.add_argument(
        "--image", dest="images", action=_ImageAction, nargs="+", default=[],
        metavar="PATH FRAME_IDX STRENGTH [CRF]",
        help="Condition frame FRAME_IDX on an image (repeatable). CRF re-compresses it like a video frame; 0 keeps "
        f"it as is (default: the model's, {C.DEFAULT_IMAGE_CRF} for LTX-2 and 2.3, {C.LTX_2_4_IMAGE_CRF} from 2.4 on).",
    )  # fmt: skip
    parser.add_argument(
        "--lora", dest="loras", action=_LoraAction, nargs="+", default=[], metavar="PATH [STRENGTH]",
        help=f"A LoRA to apply (repeatable); STRENGTH defaults to {C.DEFAULT_LORA_STRENGTH}.",
    )  # fmt: skip
    parser.add_argument(
        "--quantization", action=_QuantizationAction, nargs="+", default=None, metavar=("POLICY", "AMAX_PATH"),
        help="fp8-cast or fp8-scaled-mm: store transformer linear weights in FP8 (default: no quantization). "
        "An AMAX_PATH after fp8-scaled-mm is accepted and not needed (activations are scaled per token). "
        "fp8-scaled-mm also runs the "
        "matmuls in FP8 (torch._scaled_mm, GPUs of compute capability >= 8.9; elsewhere a slower fallback).",
    )  # fmt: skip
    parser.add_argument("--device", default=None, help="cuda, cuda:1, cpu, ... (default: cuda if available).")
    parser.add_argument(
        "--memory-policy", choices=["keep", "low"], default=None,
        help="keep: models stay loaded between stages and calls; low: free each model after use "
        "(default: keep where every model fits on the device together, as on the CPU or an 80 GB+ GPU, else low).",
    )  # fmt: skip
    parser.add_argument(
        "--offload", choices=["none", "cpu", "disk", "auto"], default="auto",
        help="Where the transformer's weights live: none = on the GPU; cpu = pinned host memory, streamed to the "
        "GPU block by block; disk = read from the checkpoint file on demand (least host memory); auto = none if "
        "the request fits in free GPU memory, else cpu if host memory allows, else disk.",
    )  # fmt: skip
    parser.add_argument(
        "--max-gpu-memory", type=float, default=None, metavar="GIB",
        help="Use at most this much GPU memory (for shared GPUs); drives --offload auto and the memory check.",
    )  # fmt: skip
    add_acceleration_args(parser)
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument(
        "--enhance-prompt", action="store_true",
        help="Let Gemma rewrite the prompt in detail first (seeded by --seed; stored as enhanced_prompt in the mp4).",
    )  # fmt: skip
    parser.add_argument(
        "--prompt-enhancer-gemma-root", type=resolve_path, metavar="DIR",
        help="A generative Gemma 3 folder, or a dense Gemma 4 instruct one (text prompts only), that rewrites the "
        "prompt for --enhance-prompt instead of the text encoder (needed for LTX-2.5, whose Gemma 4 only encodes).",
    )  # fmt: skip
    return parser


def add_model_file_args(parser: argparse.ArgumentParser) -> None:
    """The model's files: a monolithic checkpoint + Gemma folder, one file per component, or a folder to search."""
    group = parser.add_argument_group(
        "model files", "LTX-2 / LTX-2.3: --checkpoint-path and --gemma-root. LTX-2.5 (one file per component): "
        "--transformer-path, --text-encoder-path, --video-vae-path, --audio-vae-path, or just --model-dir.",
    )  # fmt: skip
    group.add_argument("--checkpoint-path", type=resolve_path, help="Monolithic LTX-2 / 2.3 checkpoint.")
    group.add_argument("--gemma-root", type=resolve_path, help="Gemma-3 text encoder folder (with --checkpoint-path).")
    group.add_argument("--transformer-path", type=resolve_path, help="Split transformer file (diffusion_models/).")
    group.add_argument("--text-encoder-path", type=resolve_path, help="Packed text-encoder file (text_encoders/).")
    group.add_argument(
        "--video-vae-path", type=resolve_path,
        help="Video VAE file (vae/); with --checkpoint-path it replaces the checkpoint's VAE.",
    )  # fmt: skip
    group.add_argument(
        "--vae-decoder", choices=VAE_DECODERS, default="auto",
        help="Video decoder: auto (what the video VAE file carries; with --model-dir, LTX-2.5's diffusion decoder "
        "where both files are there), diffusion, or conv (LTX-2.5's lighter convolutional decoder file).",
    )  # fmt: skip
    group.add_argument("--audio-vae-path", type=resolve_path, help="Audio VAE and vocoder file (vae/).")
    group.add_argument("--duration-head-path", type=resolve_path, help="Duration head file (model_patches/).")
    group.add_argument(
        "--model-dir", type=resolve_path, metavar="DIR",
        help="A downloaded model folder (the LTX-2.5 layout, a ComfyUI models/ folder, or LTX-2 files with a Gemma "
        "folder): every file not named by its own flag is found there, recognised by its contents; the log says "
        "which file was picked for each flag.",
    )  # fmt: skip


def add_auto_duration_args(parser: argparse.ArgumentParser) -> None:
    """--auto-duration MIN MAX, and --num-frames left out: the model's duration head chooses the length."""
    frames = parser._option_string_actions["--num-frames"]
    frames.default = None
    frames.help = (f"Frames to generate; 8k+1 (default: chosen by the model's duration head where it has one, "
                   f"else {C.DEFAULT_NUM_FRAMES}).")  # fmt: skip
    parser.add_argument(
        "--auto-duration", type=float, nargs=2, default=None, metavar=("MIN_SECONDS", "MAX_SECONDS"),
        help="Let the duration head (--duration-head-path, LTX-2.5) choose the length from the prompt, between "
        "MIN and MAX seconds (default range without --num-frames: 1 to 20 s).",
    )  # fmt: skip


def frames_request(args: argparse.Namespace) -> int | AutoDuration | None:
    """--num-frames if given (it wins over --auto-duration, with a warning), else the --auto-duration range."""
    auto = getattr(args, "auto_duration", None)
    if args.num_frames is not None:
        if auto is not None:
            logging.getLogger("ltx_pipelines").warning("--num-frames %d is given: --auto-duration is not used.",
                                                       args.num_frames)  # fmt: skip
        return args.num_frames
    return AutoDuration(*auto) if auto is not None else None


def add_guidance_args(
    parser: argparse.ArgumentParser,
    steps_help: str | None = None,
    *,
    video_defaults: MultiModalGuiderParams | None = None,
    audio_defaults: MultiModalGuiderParams | None = None,
    loop_default: str = "euler",
) -> None:
    """Negative prompt, step count and per-modality multimodal guidance (defaults per pipeline)."""
    v = video_defaults or C.DEFAULT_VIDEO_GUIDER_PARAMS
    a = audio_defaults or C.DEFAULT_AUDIO_GUIDER_PARAMS
    parser.add_argument("--negative-prompt", default=C.DEFAULT_NEGATIVE_PROMPT, help="What to steer away from.")
    parser.add_argument(
        "--num-inference-steps", type=int, default=None,
        help=steps_help or f"Denoising steps (default: {C.DEFAULT_NUM_INFERENCE_STEPS}; "
        f"{C.LTX_2_3_NUM_INFERENCE_STEPS} for LTX-2.3 checkpoints).",
    )  # fmt: skip
    parser.add_argument(
        "--denoising-loop", choices=["euler", "gradient-estimation", "res2s", "res2s-ode"], default=loop_default,
        help="gradient-estimation reaches similar quality in ~20-30 steps; res2s is the reference's second-order "
        "sampler (two model calls per step, SDE noise from its own fixed seeds), res2s-ode the same without noise.",
    )  # fmt: skip
    parser.add_argument("--ge-gamma", type=float, default=2.0, help="Gradient-estimation coefficient.")
    blocks_help = f"(default: {C.DEFAULT_STG_BLOCK}; {C.LTX_2_3_STG_BLOCK} for LTX-2.3 checkpoints)"
    for prefix, p, cross in (("video", v, "a2v"), ("audio", a, "v2a")):
        parser.add_argument(f"--{prefix}-cfg-guidance-scale", type=float, default=p.cfg_scale, help=f"{prefix} CFG; 1 disables.")
        parser.add_argument(f"--{prefix}-stg-guidance-scale", type=float, default=p.stg_scale, help=f"{prefix} STG; 0 disables.")
        parser.add_argument(f"--{prefix}-rescale-scale", type=float, default=p.rescale_scale, help=f"{prefix} rescale; 0 disables.")
        parser.add_argument(
            f"--{prefix}-stg-blocks", type=int, nargs="*", default=None, help=f"Transformer blocks perturbed for {prefix} STG {blocks_help}."
        )
        parser.add_argument(
            f"--{cross}-guidance-scale", type=float, default=p.modality_scale,
            help=f"Modality CFG of the {prefix} ({cross}); 1 disables.",
        )  # fmt: skip
        parser.add_argument(f"--{prefix}-skip-step", type=int, default=p.skip_step, help="Guide every N+1-th step only; 0 guides all.")


def add_upsampler_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--spatial-upsampler-path", type=resolve_path,
        help="x2 latent upsampler (.safetensors); required unless --model-dir holds it.",
    )  # fmt: skip


def add_distilled_lora_arg(parser: argparse.ArgumentParser, help_text: str | None = None) -> None:
    """--distilled-lora PATH [STRENGTH]; the pipelines that need it say so when neither it nor --model-dir gives one."""
    parser.add_argument(
        "--distilled-lora", dest="distilled_lora", action=_DistilledLoraAction, nargs="+", default=[],
        metavar="PATH [STRENGTH]",
        help=help_text or f"Distilled LoRA used by stage 2; STRENGTH defaults to {C.DEFAULT_DISTILLED_LORA_STRENGTH}.",
    )  # fmt: skip


def guider_params_from_args(args: argparse.Namespace, stg_block: int) -> tuple[MultiModalGuiderParams, MultiModalGuiderParams]:
    """(video, audio) guider params; unset STG blocks take the checkpoint's default block."""

    def params(prefix: str, cross: str) -> MultiModalGuiderParams:
        blocks = getattr(args, f"{prefix}_stg_blocks")
        return MultiModalGuiderParams(
            cfg_scale=getattr(args, f"{prefix}_cfg_guidance_scale"),
            stg_scale=getattr(args, f"{prefix}_stg_guidance_scale"),
            rescale_scale=getattr(args, f"{prefix}_rescale_scale"),
            modality_scale=getattr(args, f"{cross}_guidance_scale"),
            skip_step=getattr(args, f"{prefix}_skip_step"),
            stg_blocks=list(blocks) if blocks is not None else [stg_block],
        )

    return params("video", "a2v"), params("audio", "v2a")


def quantization_from_arg(name: str | None) -> QuantizationPolicy | None:
    if name is None:
        return None
    if name == "fp8-cast":
        return QuantizationPolicy.fp8_cast()
    # Our own torch._scaled_mm policy: no TensorRT-LLM needed (falls back, with a warning, without FP8 matmul).
    from ltx_pipelines.models.fp8 import fp8_scaled_mm_policy

    return fp8_scaled_mm_policy()


def loop_from_args(args: argparse.Namespace):  # noqa: ANN201
    from functools import partial

    from ltx_pipelines.engine.denoising import (
        euler_denoising_loop,
        gradient_estimating_euler_denoising_loop,
        res2s_denoising_loop,
    )

    if args.denoising_loop in ("res2s", "res2s-ode"):
        return partial(res2s_denoising_loop, sde_noise=args.denoising_loop == "res2s")
    if args.denoising_loop == "gradient-estimation":
        return partial(gradient_estimating_euler_denoising_loop, ge_gamma=args.ge_gamma)
    return euler_denoising_loop


def start(args: argparse.Namespace) -> None:
    """Logging, before anything else happens (the pipeline warns when its model is the smoke model)."""
    setup_logging(args.log_level)


#: The model-file flags, as the constructors' keyword arguments.
MODEL_FILE_ARGS = ("checkpoint_path", "gemma_root", *ComponentPaths.__annotations__)


def model_kwargs(args: argparse.Namespace) -> dict[str, object]:
    """Constructor arguments every pipeline takes, from the shared flags (model files only where given)."""
    files = {name: getattr(args, name) for name in MODEL_FILE_ARGS if getattr(args, name, None) is not None}
    return {
        **files,
        "loras": args.loras,
        "quantization": quantization_from_arg(args.quantization),
        "device": args.device,
        "memory_policy": args.memory_policy,
        "offload": args.offload,
        "max_gpu_memory": args.max_gpu_memory,
        **acceleration_kwargs(args),
    }


def request_kwargs(args: argparse.Namespace) -> dict[str, object]:
    """Call arguments of a generation request, from the shared flags."""
    return {
        "prompt": args.prompt,
        "output_path": args.output_path,
        "seed": args.seed,
        "height": args.height,
        "width": args.width,
        "num_frames": frames_request(args),
        "frame_rate": args.frame_rate,
        "images": args.images,
        "overwrite": args.overwrite,
        "enhance_prompt": args.enhance_prompt,
    }


def guidance_kwargs(args: argparse.Namespace, stg_block: int) -> dict[str, object]:
    """Call arguments of the guided pipelines, from the guidance flags."""
    video_params, audio_params = guider_params_from_args(args, stg_block)
    return {
        "negative_prompt": args.negative_prompt,
        "num_inference_steps": args.num_inference_steps,
        "video_guider_params": video_params,
        "audio_guider_params": audio_params,
        "denoising_loop": loop_from_args(args),
    }


# -- the reference package's flags where ours differ (ltx-pipelines 1.0.0) -------------------------


def add_flag_alias(parser: argparse.ArgumentParser, flag: str, alias: str) -> None:
    """Let ``alias`` (a reference flag name) do exactly what ``flag`` does; the help names both."""
    action = parser._option_string_actions[flag]
    action.option_strings.append(alias)
    parser._option_string_actions[alias] = action
    if action.help and action.help is not argparse.SUPPRESS:
        action.help = f"{action.help} Also accepted as {alias}."


#: What the distilled pipelines run, whatever step count is asked for.
DISTILLED_SCHEDULE = "its fixed schedule (8 steps at half size, then 3 at full size)"


def add_fixed_steps_flag(parser: argparse.ArgumentParser) -> None:
    """--num-inference-steps on a distilled pipeline: the reference parses it and does not use it; so do we."""
    parser.add_argument(
        "--num-inference-steps", dest="ignored_num_inference_steps", type=int, default=None, metavar="N",
        help=f"Accepted for the reference's command lines and not used: the distilled model runs {DISTILLED_SCHEDULE}.",
    )  # fmt: skip


def warn_fixed_steps(args: argparse.Namespace) -> None:
    if getattr(args, "ignored_num_inference_steps", None) is not None:
        logging.getLogger("ltx_pipelines").warning(
            "--num-inference-steps %d is not used: the distilled model runs %s.", args.ignored_num_inference_steps,
            DISTILLED_SCHEDULE,
        )  # fmt: skip


def run_cli(main: Callable[[list[str] | None], object], argv: list[str] | None = None) -> None:
    """Run a pipeline's main(); user errors become one clear line and exit code 2.

    Under torchrun (WORLD_SIZE > 1) main() runs inside one process group (``ltx_pipelines.parallel``).
    """
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from ltx_pipelines.parallel.launch import run_cli_distributed

        return run_cli_distributed(main, argv)
    try:
        with frames_not_kept():  # the CLI writes the mp4 and never reads the frames back
            main(argv)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: no output was written", file=sys.stderr)
        sys.exit(130)


def setup_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level), format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    for noisy in ("httpx", "urllib3", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


__all__ = [
    "add_auto_duration_args",
    "frames_request",
    "QUANTIZATION_POLICIES",
    "LoraPathStrengthAndSDOps",
    "add_fixed_steps_flag",
    "add_flag_alias",
    "add_distilled_lora_arg",
    "add_guidance_args",
    "add_upsampler_arg",
    "base_parser",
    "guider_params_from_args",
    "loop_from_args",
    "quantization_from_arg",
    "replace",
    "run_cli",
    "setup_logging",
    "warn_fixed_steps",
]
