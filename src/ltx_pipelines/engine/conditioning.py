"""Turning user conditioning (images, keyframes) into ltx-core conditioning items.

Two ways to condition on an image, as the model was trained:

* by replacing latents: the image latent *is* the first latent frame (frame 0);
  images at later frames become keyframe tokens appended to the sequence;
* by adding guiding latents: every image becomes keyframe tokens at its frame
  (smoother for interpolation between keyframes).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from ltx_core.conditioning import ConditioningItem, VideoConditionByKeyframeIndex, VideoConditionByLatentIndex

from ltx_pipelines.utils.constants import DEFAULT_IMAGE_CRF
from ltx_pipelines.utils.errors import InputError
from ltx_pipelines.utils.media_io import load_image, load_image_conditioning


class ImageConditioningInput(NamedTuple):
    """An image to condition on: file, target frame, strength (1 = exact), CRF of the video-like recompression."""

    path: str
    frame_idx: int
    strength: float
    crf: int = DEFAULT_IMAGE_CRF


def as_image_inputs(images: list | tuple | None) -> list[ImageConditioningInput]:
    """Accept ImageConditioningInput objects or plain (path, frame, strength[, crf]) tuples."""
    return [image if isinstance(image, ImageConditioningInput) else ImageConditioningInput(*image) for image in images or []]


def check_image_inputs(images: list[ImageConditioningInput], num_frames: int) -> None:
    """Validate conditioning images before any model is built."""
    for image in images:
        if not 0 <= image.frame_idx < num_frames:
            raise InputError(
                f"Image {image.path} targets frame {image.frame_idx}, outside the video's 0..{num_frames - 1}."
            )
        if not 0.0 <= image.strength <= 1.0:
            raise InputError(f"Image {image.path} has strength {image.strength}; use a value between 0 and 1.")
        if not 0 <= image.crf <= 51:
            raise InputError(f"Image {image.path} has CRF {image.crf}; use 0 (no recompression) to 51.")
        load_image(image.path)  # raises a clear InputError if missing or unreadable


def encode_image(video_encoder: torch.nn.Module, image: ImageConditioningInput, height: int, width: int) -> torch.Tensor:
    pixels = load_image_conditioning(image.path, height, width, image.crf)
    parameter = next(video_encoder.parameters())
    return video_encoder(pixels.to(device=parameter.device, dtype=parameter.dtype))


def image_conditionings_by_replacing_latent(
    images: list[ImageConditioningInput], height: int, width: int, video_encoder: torch.nn.Module
) -> list[ConditioningItem]:
    items: list[ConditioningItem] = []
    for image in images:
        latent = encode_image(video_encoder, image, height, width)
        if image.frame_idx == 0:
            items.append(VideoConditionByLatentIndex(latent=latent, strength=image.strength, latent_idx=0))
        else:
            items.append(VideoConditionByKeyframeIndex(keyframes=latent, frame_idx=image.frame_idx, strength=image.strength))
    return items


def image_conditionings_by_adding_guiding_latent(
    images: list[ImageConditioningInput], height: int, width: int, video_encoder: torch.nn.Module
) -> list[ConditioningItem]:
    return [
        VideoConditionByKeyframeIndex(
            keyframes=encode_image(video_encoder, image, height, width), frame_idx=image.frame_idx, strength=image.strength
        )
        for image in images
    ]
