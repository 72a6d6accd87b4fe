"""Turning user conditioning (images, keyframes) into ltx-core conditioning items.

Two ways to condition on an image, as the model was trained:

* by replacing latents: the image latent *is* the first latent frame (frame 0);
  images at later frames become keyframe tokens appended to the sequence;
* by adding guiding latents: every image becomes keyframe tokens at its frame
  (smoother for interpolation between keyframes).
"""

from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

import torch
from ltx_core.components.patchifiers import get_pixel_coords
from ltx_core.conditioning import ConditioningItem, VideoConditionByKeyframeIndex, VideoConditionByLatentIndex
from ltx_core.tools import VideoLatentTools
from ltx_core.types import LatentState, VideoLatentShape

from ltx_pipelines.utils.errors import InputError
from ltx_pipelines.utils.media_io import load_image, load_image_conditioning


class ImageConditioningInput(NamedTuple):
    """An image to condition on: file, target frame, strength (1 = exact), CRF of the video-like recompression.

    ``crf`` None takes the model's own (the one it was trained with: 33 for LTX-2 and 2.3, 18 from 2.4 on),
    filled in by :func:`with_model_crf`; 0 skips the recompression.
    """

    path: str
    frame_idx: int
    strength: float
    crf: int | None = None


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
        if image.crf is not None and not 0 <= image.crf <= 51:
            raise InputError(f"Image {image.path} has CRF {image.crf}; use 0 (no recompression) to 51.")
        load_image(image.path)  # raises a clear InputError if missing or unreadable


def with_model_crf(images: list[ImageConditioningInput], model_crf: int) -> list[ImageConditioningInput]:
    """``images`` with every unset CRF replaced by the model's (an explicit one, 0 included, is kept)."""
    return [image if image.crf is not None else image._replace(crf=model_crf) for image in images]


def encode_image(
    video_encoder: torch.nn.Module, image: ImageConditioningInput, height: int, width: int, compress_first: bool = False
) -> torch.Tensor:
    """The image's latent; ``compress_first``: prepared in the reference 1.2.0's order (see load_image_conditioning)."""
    if image.crf is None:
        raise ValueError(f"Image {image.path}: its CRF is unresolved; pass the images through with_model_crf first.")
    pixels = load_image_conditioning(image.path, height, width, image.crf, compress_first=compress_first)
    parameter = next(video_encoder.parameters())
    return video_encoder(pixels.to(device=parameter.device, dtype=parameter.dtype))


class OnePixelFrameKeyframe(VideoConditionByKeyframeIndex):
    """An image keyframe whose tokens span one pixel frame in time, ``[f, f + 1)``, as the reference 1.2.0 places
    them (1.0.0: the whole latent frame, ``[f, f + 8)``); the image encodes a single frame."""

    def apply_to(self, latent_state: LatentState, latent_tools: VideoLatentTools) -> LatentState:
        state = super().apply_to(latent_state, latent_tools)
        positions = torch.cat([latent_state.positions, self._positions(latent_tools)], dim=2)
        return replace(state, positions=positions)

    def _positions(self, latent_tools: VideoLatentTools) -> torch.Tensor:
        """The keyframe tokens' pixel coordinates (in pixel frames, then seconds), the end of time at start + 1."""
        grid = latent_tools.patchifier.get_patch_grid_bounds(
            output_shape=VideoLatentShape.from_torch_shape(self.keyframes.shape), device=self.keyframes.device
        )
        causal_fix = latent_tools.causal_fix if self.frame_idx == 0 else False
        pixels = get_pixel_coords(latent_coords=grid, scale_factors=latent_tools.scale_factors, causal_fix=causal_fix)
        pixels[:, 0, ...] += self.frame_idx
        pixels[:, 0, ..., 1:] = pixels[:, 0, ..., :1] + 1
        pixels = pixels.to(dtype=torch.float32)
        pixels[:, 0, ...] /= latent_tools.fps
        return pixels


def keyframe_item(latent: torch.Tensor, image: ImageConditioningInput, one_pixel_frame: bool) -> ConditioningItem:
    """Keyframe tokens appended for ``image`` at its frame."""
    kind = OnePixelFrameKeyframe if one_pixel_frame else VideoConditionByKeyframeIndex
    return kind(keyframes=latent, frame_idx=image.frame_idx, strength=image.strength)


def image_conditionings_by_replacing_latent(
    images: list[ImageConditioningInput], height: int, width: int, video_encoder: torch.nn.Module,
    one_pixel_frame: bool = False, compress_first: bool = False,
) -> list[ConditioningItem]:
    items: list[ConditioningItem] = []
    for image in images:
        latent = encode_image(video_encoder, image, height, width, compress_first)
        if image.frame_idx == 0:
            items.append(VideoConditionByLatentIndex(latent=latent, strength=image.strength, latent_idx=0))
        else:
            items.append(keyframe_item(latent, image, one_pixel_frame))
    return items


def image_conditionings_by_adding_guiding_latent(
    images: list[ImageConditioningInput], height: int, width: int, video_encoder: torch.nn.Module,
    one_pixel_frame: bool = False, compress_first: bool = False,
) -> list[ConditioningItem]:
    return [
        keyframe_item(encode_image(video_encoder, image, height, width, compress_first), image, one_pixel_frame)
        for image in images
    ]
