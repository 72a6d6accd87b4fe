"""Stage functions shared by every pipeline: denoise, upsample, decode.

A pipeline reads as these composed in order, e.g. for two stages::

    prompts = encode_prompts(...)
    low = denoise_stage(...)              # half resolution, guided
    latent = upsample_video_latent(...)   # x2 in latent space
    high = denoise_stage(...)             # full resolution, distilled refinement
    video, audio = decode_outputs(...)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace

import torch
from ltx_core.components.noisers import GaussianNoiser, Noiser
from ltx_core.components.patchifiers import AudioPatchifier, VideoLatentPatchifier
from ltx_core.components.protocols import DiffusionStepProtocol
from ltx_core.conditioning import ConditioningItem
from ltx_core.model.audio_vae import decode_audio
from ltx_core.model.upsampler import upsample_video
from ltx_core.model.video_vae import TilingConfig, decode_video
from ltx_core.tools import AudioLatentTools, LatentTools, VideoLatentTools
from ltx_core.types import Audio, AudioLatentShape, LatentState, VideoLatentShape, VideoPixelShape
from tqdm.auto import tqdm

from ltx_pipelines.engine.denoising import DenoiseFn, DenoisingLoop, euler_denoising_loop
from ltx_pipelines.engine.duration import AutoDuration
from ltx_pipelines.engine.model_ledger import LatentFormat, ModelLedger
from ltx_pipelines.engine.sampling_rules import REFERENCE_1_0, CleanLatentNoiser, SamplingRules, keep_noisy_latent
from ltx_pipelines.models.transformer_passes import Prediction, StreamState
from ltx_pipelines.utils.progress import StepReporter

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoGeometry:
    """Pixel size, length and rate of the video one stage works on."""

    height: int
    width: int
    num_frames: int
    frame_rate: float
    #: Set while the length waits for the duration head (``num_frames`` is then the longest it may be).
    duration: AutoDuration | None = None

    def halved(self) -> "VideoGeometry":
        return replace(self, height=self.height // 2, width=self.width // 2)

    def pixel_shape(self) -> VideoPixelShape:
        return VideoPixelShape(batch=1, frames=self.num_frames, height=self.height, width=self.width, fps=self.frame_rate)


def video_latent_tools(geometry: VideoGeometry, fmt: LatentFormat) -> VideoLatentTools:
    shape = VideoLatentShape.from_pixel_shape(geometry.pixel_shape(), latent_channels=fmt.video_channels)
    return VideoLatentTools(patchifier=VideoLatentPatchifier(patch_size=1), target_shape=shape, fps=geometry.frame_rate)


def audio_latent_tools(geometry: VideoGeometry, fmt: LatentFormat) -> AudioLatentTools:
    shape = AudioLatentShape.from_video_pixel_shape(
        geometry.pixel_shape(),
        channels=fmt.audio_channels,
        mel_bins=fmt.audio_mel_bins,
        sample_rate=fmt.audio_sample_rate,
        hop_length=fmt.audio_hop_length,
    )
    patchifier = AudioPatchifier(patch_size=1, sample_rate=fmt.audio_sample_rate, hop_length=fmt.audio_hop_length)
    return AudioLatentTools(patchifier=patchifier, target_shape=shape)


@dataclass(frozen=True)
class StageLatents:
    """The (unpatchified) result of one denoising stage."""

    video: torch.Tensor  # [B, C, F, H, W]
    audio: torch.Tensor  # [B, C, T, mel]


def prepare_state(
    tools: LatentTools,
    conditionings: list[ConditioningItem],
    noiser: Noiser,
    noise_scale: float,
    device: torch.device,
    dtype: torch.dtype,
    initial_latent: torch.Tensor | None = None,
    rules: SamplingRules = REFERENCE_1_0,
) -> LatentState:
    """Initial latent -> conditioning items -> noise where the denoise mask allows it."""
    if initial_latent is not None:
        initial_latent = initial_latent.to(device=device, dtype=dtype)
    state = tools.create_initial_state(device, dtype, initial_latent)
    for item in conditionings:
        conditioned = item.apply_to(state, tools)
        state = keep_noisy_latent(state, conditioned) if rules.conditioning_keeps_latent else conditioned
    return noiser(state, noise_scale)


def with_stream_rules(denoise_fn: DenoiseFn, rules: SamplingRules, keyframe_tokens: int) -> DenoiseFn:
    """``denoise_fn`` seeing its states as the reference 1.2.0's transformer input describes them (LTX-2.5): the
    video's first latent frame marked for the keyframe embedding, a fully given stream frozen at sigma 0, the
    sigma in its own precision."""
    if not (rules.marks_first_frame or rules.frozen_streams_at_sigma_0 or rules.keeps_sigma_precision):
        return denoise_fn
    precise = rules.keeps_sigma_precision

    def frozen(state: LatentState) -> bool:
        return rules.frozen_streams_at_sigma_0 and not bool(state.denoise_mask.any())

    def denoise(video: LatentState, audio: LatentState | None, sigmas: torch.Tensor, step: int) -> Prediction:
        tokens = keyframe_tokens if rules.marks_first_frame else None
        video = StreamState.of(video, keyframe_tokens=tokens, frozen=frozen(video), precise_sigma=precise)
        audio = StreamState.of(audio, frozen=frozen(audio), precise_sigma=precise) if audio is not None else None
        return denoise_fn(video, audio, sigmas, step)

    return denoise


def denoise_stage(
    *,
    name: str,
    geometry: VideoGeometry,
    fmt: LatentFormat,
    sigmas: torch.Tensor,
    denoise_fn: DenoiseFn,
    stepper: DiffusionStepProtocol,
    generator: torch.Generator,
    device: torch.device,
    dtype: torch.dtype,
    video_conditionings: list[ConditioningItem] = (),
    audio_conditionings: list[ConditioningItem] = (),
    initial_video: torch.Tensor | None = None,
    initial_audio: torch.Tensor | None = None,
    loop: DenoisingLoop = euler_denoising_loop,
    rules: SamplingRules = REFERENCE_1_0,
    noise_scale: float | None = 1.0,
) -> StageLatents:
    """Run one stage: build states, noise them to ``noise_scale``, denoise, strip conditioning tokens.

    ``noise_scale`` 1.0: pure noise, as both references start a stage from scratch whatever the schedule's first
    sigma (LTX2Scheduler's is 0.99999976); None: ``sigmas[0]``, as they re-noise a given latent to refine it.
    """
    video_tools = video_latent_tools(geometry, fmt)
    audio_tools = audio_latent_tools(geometry, fmt)
    noiser = CleanLatentNoiser(generator) if rules.noise_from_clean_latent else GaussianNoiser(generator=generator)
    noise_scale = float(sigmas[0]) if noise_scale is None else noise_scale
    video_state = prepare_state(video_tools, list(video_conditionings), noiser, noise_scale, device, dtype,
                                initial_video, rules)  # fmt: skip
    audio_state = prepare_state(audio_tools, list(audio_conditionings), noiser, noise_scale, device, dtype,
                                initial_audio, rules)  # fmt: skip
    shape = video_tools.target_shape
    denoise_fn = with_stream_rules(denoise_fn, rules, keyframe_tokens=shape.height * shape.width)
    sigmas = sigmas.to(device=device, dtype=torch.float32)

    steps = len(sigmas) - 1
    logger.info(
        "%s: %dx%d, %d frames, %d video + %d audio tokens, %d steps",
        name, geometry.width, geometry.height, geometry.num_frames,
        video_state.latent.shape[1], audio_state.latent.shape[1], steps,
    )  # fmt: skip
    started = time.perf_counter()
    reporter = StepReporter(name, steps)

    def on_step(done: int, total: int) -> None:
        bar.update(1)
        reporter(done)

    with tqdm(total=steps, desc=name, unit="step", leave=False) as bar, torch.inference_mode():
        video_state, audio_state = loop(sigmas, video_state, audio_state, stepper, denoise_fn, on_step=on_step)
    elapsed = time.perf_counter() - started
    logger.info("%s done in %.1f s (%.2f s/step)", name, elapsed, elapsed / max(steps, 1))
    video_state = video_tools.unpatchify(video_tools.clear_conditioning(video_state))
    audio_state = audio_tools.unpatchify(audio_tools.clear_conditioning(audio_state))
    return StageLatents(video=video_state.latent, audio=audio_state.latent)


def upsample_video_latent(ledger: ModelLedger, latent: torch.Tensor) -> torch.Tensor:
    """x2 spatial upsampling in latent space (in the encoder's un-normalised units)."""
    started = time.perf_counter()
    with ledger.timed("upsample"), torch.inference_mode(), ledger.use("video_encoder") as encoder, ledger.use(
        "spatial_upsampler"
    ) as upsampler:
        upsampled = upsample_video(latent=latent, video_encoder=encoder, upsampler=upsampler)
    logger.info("Upsampled latent %s -> %s in %.1f s", tuple(latent.shape), tuple(upsampled.shape), time.perf_counter() - started)
    return upsampled


def decode_video_chunks(
    ledger: ModelLedger, latent: torch.Tensor, generator: torch.Generator, tiling: TilingConfig | None = None
) -> Iterator[torch.Tensor]:
    """Latent -> uint8 frame chunks [f, H, W, 3] on the CPU, one temporal tile at a time, as they decode."""
    started = time.perf_counter()
    with ledger.timed("decode video"), torch.inference_mode(), ledger.use("video_decoder") as decoder:
        for chunk in decode_video(latent, decoder, tiling, generator=generator):
            # ltx-core hands out a permuted view ("c f h w -> f h w c"); made row-major here, on the decoder's
            # device, so that the mp4 writer's thread does not copy every frame again (CPU: +8 % on the write).
            yield chunk.contiguous().cpu()
    logger.info("Decoded video in %.1f s", time.perf_counter() - started)


def decode_video_frames(
    ledger: ModelLedger, latent: torch.Tensor, generator: torch.Generator, tiling: TilingConfig | None = None
) -> torch.Tensor:
    """Latent -> uint8 frames [F, H, W, 3] on the CPU."""
    return torch.cat(list(decode_video_chunks(ledger, latent, generator, tiling)), dim=0)


def decode_audio_waveform(ledger: ModelLedger, latent: torch.Tensor) -> Audio:
    """Audio latent -> stereo waveform (vocoder sample rate) on the CPU."""
    started = time.perf_counter()
    with ledger.timed("decode audio"), torch.inference_mode(), ledger.use("audio_decoder") as decoder, ledger.use(
        "vocoder"
    ) as vocoder:
        audio = decode_audio(latent.to(next(decoder.parameters()).dtype), decoder, _FloatInput(vocoder))
    logger.info("Decoded audio in %.1f s", time.perf_counter() - started)
    return Audio(waveform=audio.waveform.cpu().float(), sampling_rate=audio.sampling_rate)


class _FloatInput:
    """Feeds the (float32) vocoder whatever dtype the audio decoder produced."""

    def __init__(self, vocoder: torch.nn.Module):
        self.vocoder = vocoder
        self.output_sampling_rate = vocoder.output_sampling_rate

    def __call__(self, spectrogram: torch.Tensor) -> torch.Tensor:
        return self.vocoder(spectrogram.float())


def chunked(frames: torch.Tensor, size: int = 64) -> Iterator[torch.Tensor]:
    for start in range(0, frames.shape[0], size):
        yield frames[start : start + size]
