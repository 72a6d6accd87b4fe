"""Retake: regenerate a time window of an existing clip, keeping everything outside it.

The source video (video VAE) and its audio (audio VAE) are encoded; latent tokens inside
[start_time, end_time) get denoise mask 1 (regenerated from noise under the new prompt),
tokens outside get 0 and come out of the stage bit for bit unchanged. Video latent frame 0
is pixel frame 0 and latent frame k covers frames 8k-7..8k, so the regenerated span is the
window widened to whole latent frames; audio latents are 1/25 s each.

Full checkpoints denoise with multimodal guidance (CFG/STG, default step count); distilled
checkpoints use the fixed distilled schedule without guidance. The output has the source's
size, frame rate and frame count.
"""

from __future__ import annotations

import argparse
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from ltx_core.components.guiders import MultiModalGuiderParams
from ltx_core.model.video_vae import TilingConfig
from ltx_core.types import Audio

from ltx_pipelines.engine import cli
from ltx_pipelines.engine.denoising import DenoisingLoop, euler_denoising_loop
from ltx_pipelines.engine.media_latents import (
    MaskedLatent,
    audio_window_mask,
    encode_audio_latent,
    encode_video_frames,
    fit_frame_count,
    pixel_frames_in_window,
    video_window_mask,
)
from ltx_pipelines.engine.model_ledger import comfy_lora
from ltx_pipelines.engine.pipeline_base import GenerationResult, PipelineBase, guider_metadata
from ltx_pipelines.engine.stages import StageLatents, VideoGeometry, audio_latent_tools, video_latent_tools
from ltx_pipelines.utils import constants as C
from ltx_pipelines.utils.errors import InputError
from ltx_pipelines.utils.media_io import check_output_path, probe_media, read_audio, read_video
from ltx_pipelines.utils.validation import check_prompt, nearest_multiples, nearest_valid_frames

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetakeSource:
    """The checked source clip and the part of it to regenerate."""

    path: Path
    geometry: VideoGeometry
    start_time: float
    end_time: float
    frames: range  # pixel frames inside the window
    audio: Audio | None  # the source's own audio track (None: the clip is silent)


@dataclass(frozen=True)
class RetakeLatents:
    """Source and regenerated latents of one retake, with the masks used ([F'] video, [T] audio)."""

    source: StageLatents
    result: StageLatents
    video_mask: torch.Tensor
    audio_mask: torch.Tensor
    settings: dict
    generator: torch.Generator  # after the stage's noise draws: the video decoder continues from it


class RetakePipeline(PipelineBase):
    """Regenerate [start_time, end_time) of a clip's video and/or audio; the rest stays as it was."""

    pipeline_name = "retake"
    size_multiple = 32

    def __call__(
        self,
        video_path: str | Path,
        prompt: str,
        start_time: float,
        end_time: float,
        seed: int = C.DEFAULT_SEED,
        output_path: str | Path | None = None,
        negative_prompt: str | None = None,
        num_inference_steps: int | None = None,
        video_guider_params: MultiModalGuiderParams | None = None,
        audio_guider_params: MultiModalGuiderParams | None = None,
        regenerate_video: bool = True,
        regenerate_audio: bool = True,
        enhance_prompt: bool = False,
        denoising_loop: DenoisingLoop = euler_denoising_loop,
        tiling_config: TilingConfig | None = None,
        overwrite: bool = False,
        distilled: bool | None = None,
    ) -> GenerationResult:
        """Arguments in the reference's order. ``seed`` -1 picks a random seed (stored in the mp4).

        ``distilled``: None follows the checkpoint (its ``distilled`` metadata); True runs the fixed distilled
        schedule without guidance, False guided denoising, whatever the checkpoint says.
        """
        check_prompt(prompt, conditioned_by="the source clip")
        seed = random_seed() if seed == -1 else seed
        source = self.check_source(video_path, start_time, end_time, regenerate_video, regenerate_audio)
        output = check_output_path(output_path, overwrite) if output_path is not None else None
        latents = self.retake_latents(
            source, prompt, negative_prompt=negative_prompt, seed=seed, num_inference_steps=num_inference_steps,
            video_guider_params=video_guider_params, audio_guider_params=audio_guider_params,
            regenerate_video=regenerate_video, regenerate_audio=regenerate_audio, enhance_prompt=enhance_prompt,
            denoising_loop=denoising_loop, distilled=distilled,
        )  # fmt: skip
        # Untouched audio is written from the source waveform itself, not a VAE round trip.
        audio = None
        if not regenerate_audio and source.audio is not None:
            audio = _first_seconds(source.audio, source.geometry.num_frames / source.geometry.frame_rate)
        return self.finish(
            latents.result, source.geometry, latents.generator, output, overwrite, latents.settings,
            tiling_config, audio=audio,
        )  # fmt: skip

    # -- checks (before any model is built) ------------------------------------------------------

    def check_source(
        self,
        video_path: str | Path,
        start_time: float,
        end_time: float,
        regenerate_video: bool = True,
        regenerate_audio: bool = True,
    ) -> RetakeSource:
        """Validate the clip and the window; read the clip's audio (cheap) for later."""
        if not (regenerate_video or regenerate_audio):
            raise InputError("Nothing to retake: regenerate_video and regenerate_audio are both off.")
        info = probe_media(video_path)
        if not info.has_video:
            raise InputError(f"'{info.path}' has no video stream; retake needs a video clip.")
        _check_source_shape(info.path, info.num_frames, info.height, info.width, self.size_multiple)
        geometry = VideoGeometry(info.height, info.width, info.num_frames, info.fps)
        duration = info.num_frames / info.fps
        frames = _check_window(start_time, end_time, duration, info.fps, info.num_frames)
        # 1.0.0: a little past the video's end, so the last audio latents are encoded from the real track, not
        # padding; 1.2.0 (LTX-2.5): exactly the video's duration.
        lookahead = 0.0 if self.rules.exact_source_audio else _AUDIO_LOOKAHEAD_SECONDS
        audio = read_audio(info.path, max_duration=duration + lookahead) if info.has_audio else None
        if audio is None:
            logger.info("'%s' has no audio track: its audio is treated as silence.", info.path.name)
        return RetakeSource(info.path, geometry, float(start_time), float(end_time), frames, audio)

    # -- the retake itself ---------------------------------------------------------------------------

    def encode_source(self, source: RetakeSource) -> StageLatents:
        """Source clip -> (video latent, audio latent) of exactly the stage's shapes."""
        g = source.geometry
        clip = read_video(source.path, max_frames=g.num_frames, with_audio=False)
        frames = fit_frame_count(clip.frames, g.num_frames, f"Source video '{source.path.name}'")
        video = encode_video_frames(self.ledger, frames)
        audio_frames = audio_latent_tools(g, self.ledger.latent_format).target_shape.frames
        audio = source.audio or _silence(g.num_frames / g.frame_rate, self.ledger.latent_format.audio_sample_rate)
        # The mel spectrogram is taken in the model's precision, as the reference pipeline does.
        latent = encode_audio_latent(self.ledger, audio, audio_frames, waveform_dtype=self.dtype,
                                     as_read=self.rules.exact_source_audio)  # fmt: skip
        return StageLatents(video=video, audio=latent)

    def window_masks(
        self, source: RetakeSource, regenerate_video: bool, regenerate_audio: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """[F'] video and [T] audio denoise masks: 1 inside the window (if that modality is retaken)."""
        fmt = self.ledger.latent_format
        video_frames = video_latent_tools(source.geometry, fmt).target_shape.frames
        audio_frames = audio_latent_tools(source.geometry, fmt).target_shape.frames
        video = video_window_mask(source.start_time, source.end_time, video_frames, source.geometry.frame_rate)
        video = video * float(regenerate_video)
        audio = audio_window_mask(source.start_time, source.end_time, audio_frames, fmt) * float(regenerate_audio)
        return video, audio

    def retake_latents(
        self,
        source: RetakeSource,
        prompt: str,
        negative_prompt: str | None = None,
        seed: int = C.DEFAULT_SEED,
        num_inference_steps: int | None = None,
        video_guider_params: MultiModalGuiderParams | None = None,
        audio_guider_params: MultiModalGuiderParams | None = None,
        regenerate_video: bool = True,
        regenerate_audio: bool = True,
        enhance_prompt: bool = False,
        denoising_loop: DenoisingLoop = euler_denoising_loop,
        distilled: bool | None = None,
    ) -> RetakeLatents:
        """Encode the source, mask the window, denoise: the latent-level result (what tests inspect)."""
        prompt_used, enhancement = self.enhance_prompt(prompt, enhance_prompt, seed=seed)
        original = self.encode_source(source)
        video_mask, audio_mask = self.window_masks(source, regenerate_video, regenerate_audio)
        video_items = [MaskedLatent(original.video, video_mask.view(1, 1, -1, 1, 1))]
        audio_items = [MaskedLatent(original.audio, audio_mask.view(1, 1, -1, 1))]
        settings = {
            "prompt": prompt, **enhancement, "seed": seed, "source_video": source.path.name,
            "start_time": source.start_time, "end_time": source.end_time,
            "regenerate_video": regenerate_video, "regenerate_audio": regenerate_audio,
        }  # fmt: skip
        generator = self.generator(seed)
        if self.checkpoint.distilled if distilled is None else distilled:
            (positive,) = self.encode_prompts([prompt_used])
            result = self.distilled_stage(
                name="retake", geometry=source.geometry, prompt=positive, sigma_values=C.DISTILLED_SIGMA_VALUES,
                conditionings=video_items, audio_conditionings=audio_items, generator=generator,
            )  # fmt: skip
            settings["sigmas"] = C.DISTILLED_SIGMA_VALUES
        else:
            steps, video_params, audio_params = self.resolve_guidance(
                num_inference_steps, video_guider_params, audio_guider_params
            )
            negative_prompt = C.DEFAULT_NEGATIVE_PROMPT if negative_prompt is None else negative_prompt
            positive, negative = self.encode_prompts([prompt_used, negative_prompt])
            result = self.guided_stage(
                name="retake", geometry=source.geometry, positive=positive, negative=negative,
                video_guider_params=video_params, audio_guider_params=audio_params, num_inference_steps=steps,
                conditionings=video_items, audio_conditionings=audio_items, generator=generator, loop=denoising_loop,
            )  # fmt: skip
            settings.update(
                negative_prompt=negative_prompt, num_inference_steps=steps,
                video_guidance=guider_metadata(video_params), audio_guidance=guider_metadata(audio_params),
            )  # fmt: skip
        return RetakeLatents(original, result, video_mask, audio_mask, settings, generator)


#: How much audio past the clip's last frame is read for encoding (the last latent frames reach past it).
_AUDIO_LOOKAHEAD_SECONDS = 0.2


def _first_seconds(audio: Audio, seconds: float) -> Audio:
    samples = round(seconds * audio.sampling_rate)
    return Audio(waveform=audio.waveform[..., :samples], sampling_rate=audio.sampling_rate)


def random_seed() -> int:
    """A fresh seed for ``seed=-1`` (the reference's "random seed"), logged so the take can be repeated."""
    seed = int(torch.randint(0, 2**31, (1,)).item())
    logger.info("Random seed: %d", seed)
    return seed


def _silence(seconds: float, sample_rate: int) -> Audio:
    return Audio(waveform=torch.zeros(2, round(seconds * sample_rate)), sampling_rate=sample_rate)


def _check_source_shape(path: Path, num_frames: int, height: int, width: int, multiple: int) -> None:
    """Refuse clips the VAE cannot encode exactly, naming the nearest valid values."""
    if num_frames < 1 or (num_frames - 1) % 8:
        lower, upper = nearest_valid_frames(max(num_frames, 1))
        raise InputError(
            f"Source video '{path.name}' has {num_frames} frames; retake needs 8k+1 frames "
            f"(trim it to {lower} or extend it to {upper})."
        )
    bad = [(name, value) for name, value in (("height", height), ("width", width)) if value % multiple or not value]
    if bad:
        hints = ", ".join(
            f"{name} {value} -> {' or '.join(map(str, nearest_multiples(value, multiple)))}" for name, value in bad
        )
        raise InputError(
            f"Source video '{path.name}' is {width}x{height}; retake needs a size that is a multiple of "
            f"{multiple} ({hints}). Resize or crop it first."
        )


def _check_window(start_time: float, end_time: float, duration: float, frame_rate: float, num_frames: int) -> range:
    """The pixel frames of [start_time, end_time); refuse windows that are empty or leave the clip."""
    span = f"[{start_time:g}, {end_time:g}) s"
    if not (math.isfinite(start_time) and math.isfinite(end_time)) or start_time < 0 or end_time > duration + 1e-6:
        raise InputError(f"The retake window {span} is outside the clip, which lasts {duration:.3f} s.")
    if end_time <= start_time:
        raise InputError(f"The retake window {span} is empty: --end-time must be greater than --start-time.")
    frames = pixel_frames_in_window(start_time, end_time, frame_rate, num_frames)
    if not len(frames):
        raise InputError(
            f"The retake window {span} contains no frame (frames are {1 / frame_rate:.3f} s apart); widen it."
        )
    return frames


# --------------------------------------------------------------------------- CLI

#: base_parser flags (-> their dest) that describe a new video's shape; a retake keeps the source's.
_SOURCE_DEFINED_FLAGS = {
    "--height": "height", "--width": "width", "--num-frames": "num_frames", "--frame-rate": "frame_rate",
    "--image": "images",
}  # fmt: skip


#: The reference's retake command line defaults to seed 42 (the Python call has no default there).
RETAKE_CLI_SEED = 42


class _PlainLorasAction(argparse.Action):
    """--loras PATH [PATH ...]: LoRAs without strengths, each at the default strength."""

    def __call__(self, parser, namespace, values, option_string=None):  # noqa: ANN001
        current = getattr(namespace, self.dest, None) or []
        loras = [comfy_lora(cli.resolve_path(path), C.DEFAULT_LORA_STRENGTH) for path in values]
        setattr(namespace, self.dest, [*current, *loras])


def build_parser() -> argparse.ArgumentParser:
    parser = cli.base_parser(
        "Retake: regenerate a time window of a clip's video and/or audio with LTX-2; the rest is kept.",
        height=C.DEFAULT_1_STAGE_HEIGHT, width=C.DEFAULT_1_STAGE_WIDTH, size_multiple=32,
    )  # fmt: skip
    for action in parser._actions:  # the output takes the source's shape: hide the size flags
        if set(action.option_strings) & _SOURCE_DEFINED_FLAGS.keys():
            action.help = argparse.SUPPRESS
            action.default = [] if action.dest == "images" else None
    parser.add_argument(
        "--video-path", type=cli.resolve_path, required=True, help="Clip to edit (8k+1 frames, sides multiples of 32)."
    )
    parser.add_argument("--start-time", type=float, required=True, help="Start of the window to regenerate, seconds.")
    parser.add_argument("--end-time", type=float, required=True, help="End of the window (exclusive), seconds.")
    parser.add_argument(
        "--no-regenerate-video", dest="regenerate_video", action="store_false", help="Keep the source's video."
    )
    parser.add_argument(
        "--no-regenerate-audio", dest="regenerate_audio", action="store_false", help="Keep the source's audio."
    )
    parser.set_defaults(seed=RETAKE_CLI_SEED)
    parser._option_string_actions["--seed"].help = "Random seed (same seed, same take); -1 picks one at random."
    parser.add_argument(
        "--loras", dest="loras", action=_PlainLorasAction, nargs="*", default=[], metavar="PATH",
        help=f"The reference's form of --lora: LoRA files at strength {C.DEFAULT_LORA_STRENGTH} (adds to --lora).",
    )  # fmt: skip
    cli.add_guidance_args(
        parser,
        steps_help=f"Denoising steps for full checkpoints (default: {C.DEFAULT_NUM_INFERENCE_STEPS}; "
        f"{C.LTX_2_3_NUM_INFERENCE_STEPS} for LTX-2.3). Distilled checkpoints always use their fixed 8 steps.",
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    given = [flag for flag, dest in _SOURCE_DEFINED_FLAGS.items() if getattr(args, dest) not in (None, [])]
    if given:
        parser.error(f"{', '.join(given)}: a retake keeps the source clip's size, length and frame rate.")
    cli.start(args)
    pipeline = RetakePipeline(**cli.model_kwargs(args))
    pipeline(
        **cli.guidance_kwargs(args, pipeline.default_stg_block()),
        video_path=args.video_path, start_time=args.start_time, end_time=args.end_time, prompt=args.prompt,
        output_path=args.output_path, seed=args.seed, regenerate_video=args.regenerate_video,
        regenerate_audio=args.regenerate_audio, enhance_prompt=args.enhance_prompt, overwrite=args.overwrite,
    )  # fmt: skip


if __name__ == "__main__":
    cli.run_cli(main)
