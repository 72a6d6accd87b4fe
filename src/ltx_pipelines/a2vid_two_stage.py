"""Audio-to-video, two stages: the given soundtrack stays fixed while the video is generated to it.

The audio window is read (any format PyAV decodes, mono or stereo, any rate), encoded with the
audio VAE and pinned as the audio latent (denoise mask 0) in both stages, so the video tokens
attend to the real soundtrack throughout. Stage 1 is guided at half size, stage 2 upsamples x2
and refines with the distilled LoRA. The mp4 carries the original waveform of the window, not
a VAE round trip of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from ltx_core.components.guiders import MultiModalGuiderParams
from ltx_core.model.video_vae import TilingConfig
from ltx_core.types import Audio

from ltx_pipelines.engine import cli
from ltx_pipelines.engine.conditioning import ImageConditioningInput
from ltx_pipelines.engine.denoising import DenoisingLoop, euler_denoising_loop
from ltx_pipelines.engine.guidance import PromptEmbeddings
from ltx_pipelines.engine.media_latents import MaskedLatent, as_stereo, encode_audio_latent
from ltx_pipelines.engine.pipeline_base import GenerationResult, guider_metadata
from ltx_pipelines.engine.stages import VideoGeometry, audio_latent_tools
from ltx_pipelines.ti2vid_two_stages import TwoStagePipelineBase
from ltx_pipelines.utils import constants as C
from ltx_pipelines.utils.errors import InputError
from ltx_pipelines.utils.media_io import probe_media, read_audio
from ltx_pipelines.utils.validation import check_prompt

#: Audio read past the video's end (when the file has it and no --audio-max-duration forbids it): the
#: last audio latents are then encoded from the real track rather than from padding.
AUDIO_LOOKAHEAD_SECONDS = 0.2


@dataclass(frozen=True)
class Soundtrack:
    """The audio the video is generated to: ``audio`` as long as the video, ``encoded`` what the VAE reads."""

    audio: Audio
    encoded: Audio


def read_audio_window(
    audio_path: str | Path, start_time: float, max_duration: float | None, geometry: VideoGeometry
) -> Soundtrack:
    """The soundtrack for the video: [start, start + video duration) of the file, checked up front.

    ``max_duration`` caps how much of the file may be used (default: the video's duration, plus a
    look-ahead for the encoder); a window shorter than the video is refused, naming both durations.
    A shortfall of under one video frame (codec padding) is filled with silence.
    """
    video_duration = geometry.num_frames / geometry.frame_rate
    allowed = video_duration if max_duration is None else min(max_duration, video_duration)
    readable = video_duration + AUDIO_LOOKAHEAD_SECONDS if max_duration is None else max_duration
    info = probe_media(audio_path)
    if not info.has_audio:
        raise InputError(f"'{info.path}' has no audio track; --audio-path needs an audio file or a video with sound.")
    encoded = read_audio(info.path, start_time=start_time, max_duration=max(allowed, readable))
    encoded = encoded if encoded.waveform.shape[0] <= 2 else as_stereo(encoded)
    rate = encoded.sampling_rate
    audio = Audio(waveform=encoded.waveform[..., : round(allowed * rate)], sampling_rate=rate)
    have = audio.waveform.shape[-1] / audio.sampling_rate
    if have + 1.0 / geometry.frame_rate <= video_duration:
        capped = max_duration is not None and max_duration < video_duration
        limit = f" (--audio-max-duration {max_duration:g} s)" if capped else ""
        raise InputError(
            f"The audio from {start_time:g} s in '{info.path.name}' gives {have:.3f} s{limit}, but the video needs "
            f"{video_duration:.3f} s ({geometry.num_frames} frames at {geometry.frame_rate:g} fps). Use fewer "
            "frames, an earlier --audio-start-time or a longer audio file."
        )
    samples = round(video_duration * audio.sampling_rate)
    waveform = torch.nn.functional.pad(audio.waveform, (0, max(0, samples - audio.waveform.shape[-1])))
    return Soundtrack(Audio(waveform=waveform[..., :samples], sampling_rate=audio.sampling_rate), encoded)


class A2VidPipelineTwoStage(TwoStagePipelineBase):
    """Video generated to a fixed soundtrack: guided half-size stage, x2 upsample, distilled-LoRA refinement."""

    pipeline_name = "a2vid_two_stage"

    def __call__(
        self,
        prompt: str,
        audio_path: str | Path,
        output_path: str | Path | None = None,
        audio_start_time: float = 0.0,
        audio_max_duration: float | None = None,
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
        enhance_prompt: bool = False,
        denoising_loop: DenoisingLoop = euler_denoising_loop,
        tiling_config: TilingConfig | None = None,
        overwrite: bool = False,
    ) -> GenerationResult:
        geometry = VideoGeometry(height, width, num_frames, frame_rate)
        images = self.image_inputs(images)
        check_prompt(prompt, conditioned_by="the soundtrack")
        output = self.check_request(geometry, images, output_path, overwrite)
        soundtrack = read_audio_window(audio_path, audio_start_time, audio_max_duration, geometry)
        audio = soundtrack.audio
        steps, video_params, audio_params = self.resolve_guidance(
            num_inference_steps, video_guider_params, audio_guider_params or C.A2VID_AUDIO_GUIDER_PARAMS
        )
        negative_prompt = C.DEFAULT_NEGATIVE_PROMPT if negative_prompt is None else negative_prompt

        prompt_used, enhancement = self.enhance_prompt(prompt, enhance_prompt, images, seed)
        positive, negative = self.encode_prompts([prompt_used, negative_prompt])
        # The soundtrack is fixed and not guided: the negative pass keeps the prompt's audio context, so only
        # the video side is steered away from the negative prompt (as in the reference pipeline).
        negative = PromptEmbeddings(video=negative.video, audio=positive.audio)
        audio_frames = audio_latent_tools(geometry, self.ledger.latent_format).target_shape.frames
        fixed_audio = [MaskedLatent.frozen(encode_audio_latent(self.ledger, soundtrack.encoded, audio_frames))]
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
            audio_conditionings=fixed_audio,
            generator=generator,
            loop=denoising_loop,
        )
        high = self.upsample_and_refine(
            low=low, geometry=geometry, prompt=positive, images=images, generator=generator,
            extra_loras=self.distilled_lora, audio_conditionings=fixed_audio,
        )  # fmt: skip
        settings = {
            "prompt": prompt, **enhancement, "negative_prompt": negative_prompt, "seed": seed,
            "num_inference_steps": steps, "video_guidance": guider_metadata(video_params),
            "audio_guidance": guider_metadata(audio_params), "images": [list(i) for i in images],
            "distilled_lora": [f"{Path(lora.path).name}:{lora.strength}" for lora in self.distilled_lora],
            "audio_path": Path(audio_path).name, "audio_start_time": audio_start_time,
            "audio_duration": round(audio.waveform.shape[-1] / audio.sampling_rate, 3),
        }  # fmt: skip
        return self.finish(high, geometry, generator, output, overwrite, settings, tiling_config, audio=audio)


def main(argv: list[str] | None = None) -> None:
    parser = cli.base_parser(
        "Audio-to-video with LTX-2: the video is generated to a fixed soundtrack (guided half-size stage, "
        "x2 upsample, distilled-LoRA refinement); the output keeps the original audio.",
        height=C.DEFAULT_2_STAGE_HEIGHT, width=C.DEFAULT_2_STAGE_WIDTH, size_multiple=64,
    )  # fmt: skip
    parser.add_argument(
        "--audio-path", type=cli.resolve_path, required=True,
        help="Soundtrack: wav/mp3/flac/m4a, or a video whose audio track is used; mono or stereo, any rate.",
    )  # fmt: skip
    parser.add_argument(
        "--audio-start-time", type=float, default=0.0, help="Where in the file the soundtrack starts, seconds."
    )
    parser.add_argument(
        "--audio-max-duration", type=float, default=None,
        help="Use at most this many seconds of audio (default: the video's duration, num_frames / frame_rate); "
        "less audio than the video needs is an error.",
    )  # fmt: skip
    cli.add_guidance_args(parser, audio_defaults=C.A2VID_AUDIO_GUIDER_PARAMS)
    cli.add_distilled_lora_arg(parser)
    cli.add_upsampler_arg(parser)
    args = parser.parse_args(argv)
    cli.start(args)
    pipeline = A2VidPipelineTwoStage(
        **cli.model_kwargs(args),
        distilled_lora=args.distilled_lora,
        spatial_upsampler_path=args.spatial_upsampler_path,
    )
    pipeline(
        **cli.request_kwargs(args),
        **cli.guidance_kwargs(args, pipeline.default_stg_block()),
        audio_path=args.audio_path,
        audio_start_time=args.audio_start_time,
        audio_max_duration=args.audio_max_duration,
    )


if __name__ == "__main__":
    cli.run_cli(main)
