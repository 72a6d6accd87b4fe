"""The eight pipelines as the server offers them: what each takes, and how one is built from the model files.

The server is started with one set of model files (a full model, a distilled one, LoRAs, the upsampler,
the text encoder). Each pipeline needs some of them; a pipeline whose files were not given is listed as
unavailable, with the flag that would enable it, instead of failing when a job arrives.
"""

from __future__ import annotations

import inspect
import threading
from dataclasses import dataclass, field
from functools import cached_property
from importlib import import_module

from ltx_core.loader import LoraPathStrengthAndSDOps

from ltx_pipelines.engine.cli import quantization_from_arg
from ltx_pipelines.engine.pipeline_base import PipelineBase
from ltx_pipelines.models.checkpoints import read_header


@dataclass(frozen=True)
class ServedFiles:
    """The model files and model settings the server was started with (any file may be missing).

    A model is a monolithic checkpoint with its Gemma folder (LTX-2, 2.3) or the split component files (LTX-2.5);
    the full (dev) and the distilled model are given separately, and each enables the pipelines that run it.
    """

    gemma_root: str | None = None
    checkpoint: str | None = None
    distilled_checkpoint: str | None = None
    transformer: str | None = None
    distilled_transformer: str | None = None
    text_encoder: str | None = None
    video_vae: str | None = None
    audio_vae: str | None = None
    duration_head: str | None = None
    prompt_enhancer_gemma_root: str | None = None  # a generative Gemma 3 or dense Gemma 4 for enhance_prompt
    distilled_lora: tuple[LoraPathStrengthAndSDOps, ...] = ()
    spatial_upsampler: str | None = None
    loras: tuple[LoraPathStrengthAndSDOps, ...] = ()
    ic_loras: tuple[LoraPathStrengthAndSDOps, ...] = ()
    quantization: str | None = None  # the --quantization choice
    offload: str = "auto"
    max_gpu_memory: float | None = None
    compile: bool | None = None  # --compile/--no-compile; None: by token count on a GPU
    compile_cache: str | None = None  # --compile-cache
    attention: str = "auto"  # --attention
    vae_decoder: str = "auto"  # the --vae-decoder choice (auto: what the video VAE file carries)

    def model_paths(self, distilled: bool) -> dict[str, str] | None:
        """The pipelines' keyword arguments naming the full or distilled model's files (None: not given)."""
        checkpoint = self.distilled_checkpoint if distilled else self.checkpoint
        transformer = self.distilled_transformer if distilled else self.transformer
        if checkpoint and self.gemma_root:
            paths = {"checkpoint_path": checkpoint, "gemma_root": self.gemma_root, "video_vae_path": self.video_vae}
        elif transformer and self.text_encoder and self.video_vae and self.audio_vae:
            paths = {"transformer_path": transformer, "text_encoder_path": self.text_encoder,
                     "video_vae_path": self.video_vae, "audio_vae_path": self.audio_vae}  # fmt: skip
        else:
            return None
        paths["duration_head_path"] = self.duration_head
        paths["prompt_enhancer_gemma_root"] = self.prompt_enhancer_gemma_root
        if self.vae_decoder != "auto":
            paths["vae_decoder"] = self.vae_decoder
        return {name: value for name, value in paths.items() if value is not None}

    def has(self, need: str) -> bool:
        if need in ("model", "distilled_model"):
            return self.model_paths(distilled=need == "distilled_model") is not None
        return bool(getattr(self, need))

    def smoke_notice(self) -> str | None:
        """The smoke model's warning text when the models are the random-weight smoke model."""
        for path in (self.checkpoint, self.distilled_checkpoint, self.transformer, self.distilled_transformer):
            if path is not None:
                notice = read_header(path, "model file").metadata.get("smoke_model")
                if notice:
                    return notice
        return None


_SPLIT_FILES = "--text-encoder-path, --video-vae-path and --audio-vae-path"
#: What a pipeline may need -> the server flags that provide it (for "unavailable: start with --x" messages).
FLAGS = {
    "model": f"--checkpoint-path with --gemma-root, or --transformer-path with {_SPLIT_FILES} (or --model-dir)",
    "distilled_model": f"--distilled-checkpoint-path with --gemma-root, or --distilled-transformer-path with "
    f"{_SPLIT_FILES} (or --model-dir)",
    "distilled_lora": "--distilled-lora",
    "spatial_upsampler": "--spatial-upsampler-path",
    "ic_loras": "--ic-lora",
}


@dataclass(frozen=True)
class PipelineSpec:
    """One pipeline as offered by the server: its class, the inputs it takes and the files it needs."""

    name: str
    class_path: str  # "module:Class"
    summary: str
    needs: tuple[str, ...]  # what must be given: "model" / "distilled_model", or a ServedFiles field
    guided: bool = True  # negative prompt, step count, guidance, denoising loop
    takes_geometry: bool = True  # height, width, frames, frame rate (a retake keeps the source's)
    takes_images: bool = True
    media: tuple[str, ...] = ()  # uploads besides images: "video" (retake source), "references" (IC-LoRA), "audio"
    denoise_stages: int = 2
    hq_strengths: bool = False  # per-stage distilled LoRA strengths

    @cached_property
    def pipeline_class(self) -> type[PipelineBase]:
        module, name = self.class_path.split(":")
        return getattr(import_module(module), name)

    def call_defaults(self) -> dict[str, object]:
        """The pipeline's own defaults for the call arguments (read from its signature)."""
        parameters = inspect.signature(self.pipeline_class.__call__).parameters
        return {k: p.default for k, p in parameters.items() if p.default is not inspect.Parameter.empty}

    def missing(self, files: ServedFiles) -> list[str]:
        """The flags that would have to be given for this pipeline to be available."""
        return [FLAGS[need] for need in self.needs if not files.has(need)]

    def model_kwargs(self, files: ServedFiles) -> dict[str, object]:
        """Constructor arguments from the server's model files (check ``missing`` first)."""
        kwargs: dict[str, object] = {
            **files.model_paths(distilled="distilled_model" in self.needs),
            "quantization": quantization_from_arg(files.quantization),
            "offload": files.offload,
            "max_gpu_memory": files.max_gpu_memory,
            "compile": files.compile,
            "compile_cache": files.compile_cache,
            "attention": files.attention,
        }
        kwargs["loras"] = list(files.ic_loras if "ic_loras" in self.needs else files.loras)
        if "spatial_upsampler" in self.needs:
            kwargs["spatial_upsampler_path"] = files.spatial_upsampler
        if "distilled_lora" in self.needs:
            kwargs["distilled_lora"] = list(files.distilled_lora)
        return kwargs

    def build(self, files: ServedFiles, device: str | None, memory_policy: str = "keep") -> PipelineBase:
        """A pipeline object (reads file headers only; models load on first use)."""
        return self.pipeline_class(**self.model_kwargs(files), device=device, memory_policy=memory_policy)


_TWO_STAGE_FILES = ("model", "distilled_lora", "spatial_upsampler")

PIPELINES: dict[str, PipelineSpec] = {
    spec.name: spec
    for spec in (
        PipelineSpec(
            "ti2vid_two_stages", "ltx_pipelines.ti2vid_two_stages:TI2VidTwoStagesPipeline",
            "Recommended: guided half-size stage, x2 upsample, distilled-LoRA refinement.", _TWO_STAGE_FILES,
        ),
        PipelineSpec(
            "ti2vid_two_stages_hq", "ltx_pipelines.ti2vid_two_stages_hq:TI2VidTwoStagesHQPipeline",
            "Two stages with the second-order res_2s sampler (fewer steps, higher quality).", _TWO_STAGE_FILES,
            hq_strengths=True,
        ),
        PipelineSpec(
            "ti2vid_one_stage", "ltx_pipelines.ti2vid_one_stage:TI2VidOneStagePipeline",
            "One guided stage at the target size (educational).", ("model",), denoise_stages=1,
        ),
        PipelineSpec(
            "distilled", "ltx_pipelines.distilled:DistilledPipeline",
            "Distilled model, no guidance, 8 + 3 fixed steps: the fastest.",
            ("distilled_model", "spatial_upsampler"), guided=False,
        ),
        PipelineSpec(
            "ic_lora", "ltx_pipelines.ic_lora:ICLoraPipeline",
            "Video-to-video: reference (control) videos steer the distilled model through an IC-LoRA.",
            ("distilled_model", "spatial_upsampler", "ic_loras"), guided=False,
            media=("references",),
        ),
        PipelineSpec(
            "keyframe_interpolation", "ltx_pipelines.keyframe_interpolation:KeyframeInterpolationPipeline",
            "A video through keyframe images placed at given frames.", _TWO_STAGE_FILES,
        ),
        PipelineSpec(
            "a2vid_two_stage", "ltx_pipelines.a2vid_two_stage:A2VidPipelineTwoStage",
            "Video generated to an uploaded soundtrack (kept as is in the output).", _TWO_STAGE_FILES,
            media=("audio",),
        ),
        PipelineSpec(
            "retake", "ltx_pipelines.retake:RetakePipeline",
            "Regenerates a time window of an uploaded video; the rest is kept.", ("model",),
            takes_geometry=False, takes_images=False, media=("video",), denoise_stages=1,
        ),
    )
}  # fmt: skip

DEFAULT_PIPELINE = "ti2vid_two_stages"


@dataclass
class Catalog:
    """The pipelines this server can run with its files, and one validator object per available pipeline.

    A validator is a pipeline object that is only ever asked to ``validate()`` (it loads nothing); the
    workers build their own objects for generating.
    """

    files: ServedFiles
    device: str | None = None
    validators: dict[str, PipelineBase] = field(default_factory=dict)
    _locks: dict[str, threading.Lock] = field(default_factory=dict)

    def load_validators(self) -> None:
        """Build a validator for every available pipeline; a bad model file raises InputError here, at start."""
        for spec in PIPELINES.values():
            if not spec.missing(self.files):
                self.validators[spec.name] = spec.build(self.files, self.device)
                self._locks[spec.name] = threading.Lock()

    def validation_lock(self, name: str) -> threading.Lock:
        """``validate()`` flips a flag on the validator's ledger: one request at a time per validator."""
        return self._locks[name]

    def available(self, name: str) -> bool:
        return name in self.validators

    def model_of(self, name: str) -> str | None:
        """The model an available pipeline runs, e.g. "LTX-2.5 (2.5.0)"."""
        validator = self.validators.get(name)
        if validator is None:
            return None
        files = validator.files
        return f"{files.generation.name} ({files.model_version})" if files.model_version else files.generation.name


__all__ = ["DEFAULT_PIPELINE", "PIPELINES", "Catalog", "PipelineSpec", "ServedFiles"]
