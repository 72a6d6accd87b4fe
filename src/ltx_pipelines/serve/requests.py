"""The job request schema, and how a request becomes the keyword arguments of a pipeline call.

A request names its pipeline and gives that pipeline's parameters; uploaded files are referred to by role
(``image_0``, ``image_1``, ... for ``images``; ``reference_0``, ... for ``references``; ``video``; ``audio``)
and arrive as separate multipart fields. Parameters a pipeline does not take are refused rather than ignored,
so that a request never silently means something else than it says.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Literal

from ltx_core.components.guiders import MultiModalGuiderParams
from pydantic import BaseModel, ConfigDict, Field

from ltx_pipelines.engine.cli import loop_from_args
from ltx_pipelines.engine.conditioning import ImageConditioningInput
from ltx_pipelines.engine.pipeline_base import PipelineBase
from ltx_pipelines.serve.catalog import DEFAULT_PIPELINE, PipelineSpec
from ltx_pipelines.utils import constants as C
from ltx_pipelines.utils.errors import InputError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Guidance(_Strict):
    """Multimodal guidance of one modality; unset fields keep the pipeline's defaults."""

    cfg_scale: float | None = None
    stg_scale: float | None = None
    rescale_scale: float | None = None
    modality_scale: float | None = None
    skip_step: int | None = None
    stg_blocks: list[int] | None = None


class ImageInput(_Strict):
    """Settings of one uploaded conditioning image (``image_<i>``)."""

    frame_idx: int = 0
    strength: float = 1.0
    #: None (unset): the model's own CRF (33 for LTX-2 and 2.3, 18 from 2.4 on); 0: no recompression.
    crf: int | None = None


class ReferenceInput(_Strict):
    """Settings of one uploaded IC-LoRA reference video (``reference_<i>``)."""

    strength: float = 1.0


DenoisingLoopName = Literal["euler", "gradient-estimation", "res2s", "res2s-ode"]


class JobRequest(_Strict):
    """What to generate. Only ``prompt`` is required; the pipeline's defaults fill the rest."""

    pipeline: str = DEFAULT_PIPELINE
    prompt: str = Field(min_length=1, max_length=20_000)
    seed: int = C.DEFAULT_SEED
    enhance_prompt: bool = False
    # the video's shape (all pipelines but retake, which keeps the source's)
    height: int | None = None
    width: int | None = None
    num_frames: int | None = None
    frame_rate: float | None = None
    images: list[ImageInput] = []
    # guided pipelines
    negative_prompt: str | None = Field(default=None, max_length=20_000)
    num_inference_steps: int | None = None
    video_guidance: Guidance | None = None
    audio_guidance: Guidance | None = None
    denoising_loop: DenoisingLoopName | None = None
    ge_gamma: float = 2.0
    # retake
    start_time: float | None = None
    end_time: float | None = None
    regenerate_video: bool = True
    regenerate_audio: bool = True
    # audio-to-video
    audio_start_time: float = 0.0
    audio_max_duration: float | None = None
    # IC-LoRA
    references: list[ReferenceInput] = []
    conditioning_attention_mask: float | None = None
    skip_stage_2: bool = False
    # two-stage HQ
    distilled_lora_strength_stage_1: float | None = None
    distilled_lora_strength_stage_2: float | None = None


_ALWAYS = {"pipeline", "prompt", "seed", "enhance_prompt"}
_GEOMETRY = {"height", "width", "num_frames", "frame_rate"}
_GUIDED = {"negative_prompt", "num_inference_steps", "video_guidance", "audio_guidance", "denoising_loop", "ge_gamma"}
_MEDIA_FIELDS = {
    "video": {"start_time", "end_time", "regenerate_video", "regenerate_audio"},
    "audio": {"audio_start_time", "audio_max_duration"},
    "references": {"references", "conditioning_attention_mask", "skip_stage_2"},
}
_HQ = {"distilled_lora_strength_stage_1", "distilled_lora_strength_stage_2"}


def accepted_fields(spec: PipelineSpec) -> set[str]:
    """The request fields this pipeline takes."""
    fields = set(_ALWAYS)
    fields |= _GEOMETRY if spec.takes_geometry else set()
    fields |= {"images"} if spec.takes_images else set()
    fields |= _GUIDED if spec.guided else set()
    fields |= _HQ if spec.hq_strengths else set()
    for media in spec.media:
        fields |= _MEDIA_FIELDS[media]
    return fields


def upload_roles(request: JobRequest, spec: PipelineSpec) -> dict[str, str]:
    """The uploads this request needs: role -> kind of content ("image", "video" or "audio")."""
    roles = {f"image_{i}": "image" for i in range(len(request.images))}
    roles.update({f"reference_{i}": "video" for i in range(len(request.references))})
    if "video" in spec.media:
        roles["video"] = "video"
    if "audio" in spec.media:
        roles["audio"] = "audio"  # an audio file, or a video whose sound is used
    return roles


def check_request(request: JobRequest, spec: PipelineSpec, uploaded: set[str]) -> None:
    """Refuse parameters the pipeline does not take and uploads that do not match the request."""
    given = request.model_fields_set - {"pipeline"}
    unused = sorted(given - accepted_fields(spec))
    if unused:
        them = "them" if len(unused) > 1 else "it"
        raise InputError(f"The {spec.name} pipeline does not take {', '.join(unused)}; leave {them} out.")
    if "references" in spec.media and not request.references:
        raise InputError("ic_lora needs at least one reference video: list it in references and upload reference_0.")
    if "video" in spec.media and (request.start_time is None or request.end_time is None):
        raise InputError("retake needs start_time and end_time: the window to regenerate, in seconds.")
    expected = set(upload_roles(request, spec))
    if missing := sorted(expected - uploaded):
        raise InputError(f"Missing upload{'s' if len(missing) > 1 else ''}: {', '.join(missing)}.")
    if extra := sorted(uploaded - expected):
        hint = " (list one entry in images per image_<i> upload)" if any(r.startswith("image_") for r in extra) else ""
        raise InputError(f"Unexpected upload{'s' if len(extra) > 1 else ''}: {', '.join(extra)}{hint}.")


def _guider_params(given: Guidance | None, default: MultiModalGuiderParams) -> MultiModalGuiderParams:
    if given is None:
        return default
    return replace(default, **given.model_dump(exclude_none=True))


def call_kwargs(
    request: JobRequest, spec: PipelineSpec, pipeline: PipelineBase, inputs: dict[str, Path], output_path: Path
) -> dict[str, object]:
    """Keyword arguments of ``pipeline(...)`` for this request (``inputs``: role -> stored upload)."""
    kwargs: dict[str, object] = {
        "prompt": request.prompt,
        "seed": request.seed,
        "enhance_prompt": request.enhance_prompt,
        "output_path": output_path,
    }
    if spec.takes_geometry:
        kwargs.update({k: getattr(request, k) for k in _GEOMETRY if getattr(request, k) is not None})
    if spec.takes_images:
        kwargs["images"] = [
            ImageConditioningInput(str(inputs[f"image_{i}"]), image.frame_idx, image.strength, image.crf)
            for i, image in enumerate(request.images)
        ]
    if spec.guided:
        kwargs.update(_guided_kwargs(request, pipeline))
    if spec.hq_strengths:
        for name in _HQ:
            if getattr(request, name) is not None:
                kwargs[name] = getattr(request, name)
    if "video" in spec.media:
        kwargs.update(
            video_path=inputs["video"], start_time=request.start_time, end_time=request.end_time,
            regenerate_video=request.regenerate_video, regenerate_audio=request.regenerate_audio,
        )  # fmt: skip
    if "audio" in spec.media:
        kwargs.update(
            audio_path=inputs["audio"],
            audio_start_time=request.audio_start_time,
            audio_max_duration=request.audio_max_duration,
        )
    if "references" in spec.media:
        kwargs.update(
            video_conditioning=[(str(inputs[f"reference_{i}"]), r.strength) for i, r in enumerate(request.references)],
            conditioning_attention_mask=request.conditioning_attention_mask,
            skip_stage_2=request.skip_stage_2,
        )
    return kwargs


def _guided_kwargs(request: JobRequest, pipeline: PipelineBase) -> dict[str, object]:
    video_default, audio_default = pipeline.default_guider_params()
    kwargs: dict[str, object] = {
        "negative_prompt": request.negative_prompt,
        "num_inference_steps": request.num_inference_steps,
        "video_guider_params": _guider_params(request.video_guidance, video_default),
        "audio_guider_params": _guider_params(request.audio_guidance, audio_default),
    }
    if request.denoising_loop is not None:  # unset: the pipeline's own loop (Euler; res_2s for HQ)
        args = SimpleNamespace(denoising_loop=request.denoising_loop, seed=request.seed, ge_gamma=request.ge_gamma)
        kwargs["denoising_loop"] = loop_from_args(args)
    return kwargs


def denoise_stages(request: JobRequest, spec: PipelineSpec) -> int:
    """How many denoising stages the job runs (for its progress estimate)."""
    return 1 if "references" in spec.media and request.skip_stage_2 else spec.denoise_stages


__all__ = [
    "Guidance",
    "ImageInput",
    "JobRequest",
    "ReferenceInput",
    "accepted_fields",
    "call_kwargs",
    "check_request",
    "denoise_stages",
    "upload_roles",
]
