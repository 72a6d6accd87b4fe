"""Existing media as latents: encode source video/audio, and keep chosen latent tokens fixed.

Editing pipelines (audio-to-video, retake, IC-LoRA) start from media the user gives rather
than from noise. This module turns that media into latents of exactly the stage's shape and
provides :class:`MaskedLatent`, the conditioning item that pins a latent to known values
wherever its denoise mask is 0. The noiser and the denoising loops respect the mask, so
pinned tokens come out of a stage bit for bit unchanged.

Timing facts used here (LTX-2's VAEs):

* video latent frame 0 is pixel frame 0; latent frame k >= 1 covers pixel frames 8k-7 .. 8k;
* audio latents run at sample_rate / hop_length / 4 per second (16000 / 160 / 4 = 25), and
  latent k spans mel hops 4k-3 .. 4k+1 (causal), i.e. [(4k - 3) / 100, (4k + 1) / 100) s.
"""

from __future__ import annotations

import logging
import math

import torch
from ltx_core.components.patchifiers import AudioPatchifier, VideoLatentPatchifier, get_pixel_coords
from ltx_core.conditioning import ConditioningError
from ltx_core.model.audio_vae import encode_audio
from ltx_core.tools import LatentTools
from ltx_core.types import Audio, AudioLatentShape, LatentState, SpatioTemporalScaleFactors, VideoLatentShape

from ltx_pipelines.engine.model_ledger import LatentFormat, ModelLedger
from ltx_pipelines.utils.media_io import video_to_tensor

logger = logging.getLogger(__name__)

#: The audio VAE halves time twice after the mel hop (see AudioLatentShape.from_duration).
AUDIO_LATENT_DOWNSAMPLE = 4
VIDEO_TIME_SCALE = 8


# --------------------------------------------------------------------------- conditioning item


class MaskedLatent:
    """Conditioning item: start from ``latent``; regenerate only where ``mask`` is 1.

    ``latent`` has the stage's full unpatchified shape ([B, C, F, H, W] video, [B, C, T, mel]
    audio); ``mask`` broadcasts to the tools' mask shape ([B, 1, F, H, W] / [B, 1, T, 1]).
    Where the mask is 0 the token is clean and frozen; in between it is partly re-noised.
    Apply it before items that append tokens: it rewrites the first target-shape tokens.
    """

    def __init__(self, latent: torch.Tensor, mask: torch.Tensor | float):
        self.latent = latent
        self.mask = mask

    @classmethod
    def frozen(cls, latent: torch.Tensor) -> "MaskedLatent":
        """Keep the whole latent exactly as given (e.g. the audio of an audio-to-video run)."""
        return cls(latent, 0.0)

    def apply_to(self, latent_state: LatentState, latent_tools: LatentTools) -> LatentState:
        target = latent_tools.target_shape
        if tuple(self.latent.shape) != tuple(target.to_torch_shape()):
            raise ConditioningError(
                f"MaskedLatent holds a latent of shape {tuple(self.latent.shape)}, the stage expects "
                f"{tuple(target.to_torch_shape())}."
            )
        state = latent_state.clone()
        device = state.latent.device
        tokens = latent_tools.patchifier.patchify(self.latent.to(device=device, dtype=state.latent.dtype))
        mask = torch.as_tensor(self.mask, dtype=torch.float32, device=device)
        mask = latent_tools.patchifier.patchify(mask.expand(*target.mask_shape().to_torch_shape()).contiguous())
        count = tokens.shape[1]
        state.latent[:, :count] = tokens
        state.clean_latent[:, :count] = tokens
        state.denoise_mask[:, :count] = mask.to(state.denoise_mask.dtype)
        return state


# --------------------------------------------------------------------------- time windows


def latent_frame_of_pixel_frame(frame: int) -> int:
    """Which video latent frame holds pixel frame ``frame`` (causal VAE: frame 0 alone, then groups of 8)."""
    return 0 if frame <= 0 else (frame + VIDEO_TIME_SCALE - 1) // VIDEO_TIME_SCALE


def pixel_frames_in_window(start_time: float, end_time: float, frame_rate: float, num_frames: int) -> range:
    """Pixel frames whose timestamps i / fps fall in [start_time, end_time)."""
    first = max(0, math.ceil(start_time * frame_rate - 1e-6))
    stop = min(num_frames, math.ceil(end_time * frame_rate - 1e-6))
    return range(first, stop)


def _overlapping(spans: torch.Tensor, start_time: float, end_time: float) -> torch.Tensor:
    """[N] float mask of the [start, end) second spans ([N, 2]) that overlap [start_time, end_time)."""
    return ((spans[:, 1] > start_time) & (spans[:, 0] < end_time)).to(torch.float32)


def video_window_mask(start_time: float, end_time: float, num_latent_frames: int, frame_rate: float) -> torch.Tensor:
    """[F'] float mask: 1 for every latent frame whose time span overlaps [start_time, end_time).

    A latent frame spans the pixel frames it encodes, positioned as ltx-core positions them for the
    model (frame 0 alone, then 8 frames per latent frame): latent frame k >= 1 spans
    [(8k - 7) / fps, (8k + 1) / fps). A window that starts between two frames thus includes the
    latent frame that ends there (as the reference pipeline does).
    """
    shape = VideoLatentShape(batch=1, channels=1, frames=num_latent_frames, height=1, width=1)
    bounds = VideoLatentPatchifier(patch_size=1).get_patch_grid_bounds(shape)
    pixel_spans = get_pixel_coords(bounds, SpatioTemporalScaleFactors.default(), causal_fix=True)[0, 0]
    return _overlapping(pixel_spans / frame_rate, start_time, end_time)


def audio_latents_per_second(fmt: LatentFormat) -> float:
    return fmt.audio_sample_rate / fmt.audio_hop_length / AUDIO_LATENT_DOWNSAMPLE


def audio_window_mask(start_time: float, end_time: float, num_latent_frames: int, fmt: LatentFormat) -> torch.Tensor:
    """[T] float mask: 1 for every audio latent frame whose time span overlaps [start_time, end_time).

    The spans are the ones ltx-core gives the audio tokens (causal: latent frame k ends 1 mel hop
    after its last mel frame starts, i.e. [(4k - 3), (4k + 1)) hops, clipped at 0).
    """
    shape = AudioLatentShape(
        batch=1, channels=fmt.audio_channels, frames=num_latent_frames, mel_bins=fmt.audio_mel_bins
    )
    patchifier = AudioPatchifier(
        patch_size=1, sample_rate=fmt.audio_sample_rate, hop_length=fmt.audio_hop_length,
        audio_latent_downsample_factor=AUDIO_LATENT_DOWNSAMPLE,
    )  # fmt: skip
    return _overlapping(patchifier.get_patch_grid_bounds(shape)[0, 0], start_time, end_time)


# --------------------------------------------------------------------------- frames


def fit_frame_count(frames: torch.Tensor, num_frames: int, what: str) -> torch.Tensor:
    """Trim, or pad by repeating the last frame, to exactly ``num_frames`` (with a logged notice)."""
    have = frames.shape[0]
    if have == num_frames:
        return frames
    if have > num_frames:
        logger.info("%s has %d frames; using the first %d.", what, have, num_frames)
        return frames[:num_frames]
    logger.info("%s has %d frames; repeating its last frame to reach %d.", what, have, num_frames)
    return torch.cat([frames, frames[-1:].expand(num_frames - have, *frames.shape[1:])], dim=0)


# --------------------------------------------------------------------------- encoding


def encode_video_frames(ledger: ModelLedger, frames: torch.Tensor) -> torch.Tensor:
    """uint8 frames [F, H, W, 3] (F = 8k+1, H and W multiples of 32) -> normalised latent [1, C, F', H', W']."""
    with torch.inference_mode(), ledger.use("video_encoder") as encoder:
        parameter = next(encoder.parameters())
        pixels = video_to_tensor(frames).to(device=parameter.device, dtype=parameter.dtype)
        return encoder(pixels)


def as_stereo(audio: Audio) -> Audio:
    """[channels, samples] -> [2, samples]: mono is duplicated, more than two channels keep the front pair."""
    waveform = audio.waveform
    if waveform.ndim == 1:
        waveform = waveform.unsqueeze(0)
    if waveform.shape[0] == 1:
        waveform = waveform.expand(2, -1)
    return Audio(waveform=waveform[:2].contiguous(), sampling_rate=audio.sampling_rate)


def encode_audio_latent(
    ledger: ModelLedger,
    audio: Audio,
    num_latent_frames: int,
    waveform_dtype: torch.dtype = torch.float32,
    as_read: bool = False,
) -> torch.Tensor:
    """Waveform (any rate, mono or stereo) -> normalised audio latent [1, C, T, mel] with T = num_latent_frames.

    The audio VAE is causal in time, so silence appended at the end (to make sure the encoder
    yields enough frames) changes no earlier latent; the surplus is then cut off. ``as_read`` (the
    reference 1.2.0): the waveform is encoded as it is and latent frames it does not reach are zeros.
    ``waveform_dtype`` is the precision the mel spectrogram is computed in.
    """
    stereo = as_stereo(audio).waveform.to(waveform_dtype)
    needed = math.ceil((num_latent_frames + 1) / audio_latents_per_second(ledger.latent_format) * audio.sampling_rate)
    if stereo.shape[1] < needed and not as_read:
        stereo = torch.nn.functional.pad(stereo, (0, needed - stereo.shape[1]))
    with torch.inference_mode(), ledger.use("audio_encoder") as encoder:
        latent = encode_audio(Audio(waveform=stereo.unsqueeze(0), sampling_rate=audio.sampling_rate), encoder)
    missing = num_latent_frames - latent.shape[2]
    if missing > 0:  # as read, or the encoder's framing differs from the estimate
        tail = torch.zeros_like(latent[:, :, -1:]) if as_read else latent[:, :, -1:]
        latent = torch.cat([latent, tail.expand(-1, -1, missing, -1)], dim=2)
    return latent[:, :, :num_latent_frames]


__all__ = [
    "MaskedLatent",
    "as_stereo",
    "audio_latents_per_second",
    "audio_window_mask",
    "encode_audio_latent",
    "encode_video_frames",
    "fit_frame_count",
    "latent_frame_of_pixel_frame",
    "pixel_frames_in_window",
    "video_window_mask",
]
