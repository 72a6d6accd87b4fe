"""What every pipeline shares: file checks, the model ledger, the two kinds of stage, output.

A pipeline subclass only composes these in the order its description gives.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Unpack

import torch
from ltx_core.components.guiders import MultiModalGuiderParams, create_multimodal_guider_factory
from ltx_core.components.schedulers import LTX2Scheduler
from ltx_core.conditioning import ConditioningItem
from ltx_core.loader import LoraPathStrengthAndSDOps
from ltx_core.model.transformer import X0Model
from ltx_core.model.video_vae import TilingConfig
from ltx_core.quantization import QuantizationPolicy
from ltx_core.types import Audio

from ltx_pipelines.acceleration.options import AccelerationOptions
from ltx_pipelines.engine.conditioning import (
    ImageConditioningInput,
    as_image_inputs,
    check_image_inputs,
    image_conditionings_by_adding_guiding_latent,
    image_conditionings_by_replacing_latent,
    with_model_crf,
)
from ltx_pipelines.engine.denoising import DenoisingLoop, default_stepper, euler_denoising_loop
from ltx_pipelines.engine.duration import AutoDuration
from ltx_pipelines.engine.guidance import ConditionalDenoiser, MultiModalGuidedDenoiser, PromptEmbeddings
from ltx_pipelines.engine.model_ledger import ChecksPassed, MemoryPolicy, ModelLedger
from ltx_pipelines.engine.prompt_enhancement import maybe_enhance_prompt
from ltx_pipelines.engine.prompts import encode_prompts
from ltx_pipelines.engine.sampling_rules import SamplingRules
from ltx_pipelines.engine.stages import (
    StageLatents,
    VideoGeometry,
    audio_latent_tools,
    chunked,
    decode_audio_waveform,
    decode_video_chunks,
    decode_video_frames,
    denoise_stage,
    upsample_video_latent,
    video_latent_tools,
)
from ltx_pipelines.memory.budget import StageLoad
from ltx_pipelines.memory.offload import OffloadMode
from ltx_pipelines.memory.preflight import MemoryRequest
from ltx_pipelines.memory.streamed_transformer import streamed_transformer
from ltx_pipelines.models import discovery
from ltx_pipelines.models.checkpoints import (
    CheckpointInfo,
    check_lora_matches,
    inspect_ltx_checkpoint,
    inspect_upsampler,
)
from ltx_pipelines.models.discovery import Picked
from ltx_pipelines.models.files import ComponentPaths, ModelFiles, check_vae_decoder, resolve_model_files
from ltx_pipelines.models.gemma import find_gemma_files
from ltx_pipelines.models.ltx25.text_embeddings import check_embeddings_files
from ltx_pipelines.models.ltx25.text_encoder import inspect_packed_text_encoder
from ltx_pipelines.models.prompt_enhancer import EnhancerFolder, inspect_prompt_enhancer
from ltx_pipelines.models.ltx25.duration_head import check_duration_head_file
from ltx_pipelines.models.transformer_blocks import EagerBlocks
from ltx_pipelines.models.transformer_passes import PassExecutor, TransformerPasses
from ltx_pipelines.parallel.decode import decode_video_frames_across_ranks
from ltx_pipelines.parallel.guidance_split import split_guidance
from ltx_pipelines.parallel.process_group import join_group
from ltx_pipelines.parallel.text_encoding import broadcast_embeddings, computed_on_rank_0
from ltx_pipelines.utils import constants as C
from ltx_pipelines.utils.errors import InputError
from ltx_pipelines.utils.media_io import BackgroundVideoWriter, check_output_path, write_video
from ltx_pipelines.utils.validation import check_generation

logger = logging.getLogger(__name__)


#: Whether a generation that writes an mp4 also hands its frames back (the CLI sets it off: nobody reads them).
keep_frames: ContextVar[bool] = ContextVar("ltx_keep_frames", default=True)


@contextmanager
def frames_not_kept() -> Iterator[None]:
    """Within this block, results of generations that write an mp4 carry no frames (``frames`` is None)."""
    token = keep_frames.set(False)
    try:
        yield
    finally:
        keep_frames.reset(token)


@dataclass
class GenerationResult:
    """Decoded output of a pipeline call (and where it was written, if anywhere)."""

    frames: torch.Tensor | None  # uint8 [F, H, W, 3]; None when written to a file under frames_not_kept()
    audio: Audio | None
    frame_rate: float
    output_path: Path | None = None  # where this process wrote it (None on ranks other than 0)
    metadata: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage of this generation

    def __iter__(self) -> Iterator[object]:
        """``video, audio = result``, as the reference's return value: an iterator of uint8 [F, H, W, 3] chunks
        and the Audio (both what ``media_io.encode_video`` takes)."""
        return iter((chunked(self.frames), self.audio))


def _lora_list(loras: object) -> tuple[LoraPathStrengthAndSDOps, ...]:
    if loras is None:
        return ()
    if isinstance(loras, LoraPathStrengthAndSDOps):
        return (loras,)
    return tuple(loras)


def locate_model_files(
    checkpoint_path: str | Path | None, gemma_root: str | Path | None, paths: ComponentPaths, *, distilled: bool
) -> tuple[ModelFiles, Picked]:
    """This pipeline's model files: the paths given, completed from ``model_dir`` (a given path always wins)."""
    unknown = sorted(set(paths) - set(ComponentPaths.__annotations__))
    if unknown:
        raise TypeError(f"unexpected keyword argument(s): {', '.join(unknown)}")
    given = {"checkpoint_path": checkpoint_path, "gemma_root": gemma_root,
             **{name: value for name, value in paths.items() if name in _MODEL_FILE_ARGS}}  # fmt: skip
    given = {name: value for name, value in given.items() if value is not None}
    vae_decoder = check_vae_decoder(paths.get("vae_decoder") or "auto")
    found = Picked()
    if paths.get("model_dir") is not None:
        root = Path(paths["model_dir"]).expanduser()
        found = discovery.pick(discovery.scan(root), distilled=distilled, vae_decoder=vae_decoder)
        discovery.log_picked(found, root)
    if "checkpoint_path" in given:  # a monolithic model named explicitly: the folder's split files do not apply
        found = replace(found, transformer_path=None, text_encoder_path=None, video_vae_path=None, audio_vae_path=None)
    if "transformer_path" in given:
        found = replace(found, checkpoint_path=None, gemma_root=None)
    model = {name: value for name, value in found.given().items() if name in _MODEL_FILE_ARGS}
    model.update({name: value for name, value in given.items() if name in _MODEL_FILE_ARGS})
    return resolve_model_files(**model, vae_decoder=vae_decoder), found


#: Arguments that name the model's own files (--model-dir's other finds go to the pipelines that use them).
_MODEL_FILE_ARGS = ("checkpoint_path", "gemma_root",
                    *(name for name in ComponentPaths.__annotations__
                      if name not in ("model_dir", "prompt_enhancer_gemma_root", "vae_decoder")))  # fmt: skip


def check_text_encoder(files: ModelFiles) -> None:
    """The text encoder the model needs, checked before anything loads.

    Split models (LTX-2.5): the packed Gemma-4 file (what it is, its tokenizer; its version against the
    transformer's was checked when the files were resolved), and the text path's tensors across the two files:
    the projections in the text encoder's, the connectors in the transformer's, with the shapes the configs give.
    """
    if files.split:
        check_embeddings_files(files.transformer.path, inspect_packed_text_encoder(files.text_encoder))
        return
    if files.text_encoder is None:
        raise InputError(f"{files.transformer.path.name} needs its Gemma-3 text encoder: pass the folder with "
                         "--gemma-root (gemma_root=).")  # fmt: skip
    find_gemma_files(files.text_encoder)


def check_prompt_enhancer(files: ModelFiles, enhancer_root: str | Path | None) -> EnhancerFolder | None:
    """The Gemma that rewrites prompts when one is given apart from the encoder (Gemma 3, or dense Gemma 4)."""
    if enhancer_root is None:
        return None
    root = Path(enhancer_root).expanduser()
    if files.text_encoder is not None and root.resolve() == Path(files.text_encoder).resolve():
        return None  # the encoder itself (the reference uses a separate one only when it differs)
    return inspect_prompt_enhancer(root)


def text_context_widths(config: dict) -> tuple[int, int]:
    """Widths of the (video, audio) text contexts the transformer reads: its own inner widths where the text
    encoder projects (LTX-2.3, 2.5), else Gemma's width, projected inside the transformer (LTX-2)."""
    transformer = config.get("transformer", {})
    if transformer.get("caption_proj_before_connector", False):
        video = transformer.get("num_attention_heads", 32) * transformer.get("attention_head_dim", 128)
        audio = transformer.get("audio_num_attention_heads", 32) * transformer.get("audio_attention_head_dim", 64)
        return video, audio
    width = transformer.get("caption_channels", 3840)
    return width, width


def check_duration_head(files: ModelFiles) -> None:
    """The duration head reads the prompt's text contexts: it must have been made for this model's widths."""
    head = check_duration_head_file(files.duration_head.path)
    widths = text_context_widths(files.config)
    if (head.video_dim, head.audio_dim) != widths:
        raise InputError(
            f"The duration head {files.duration_head.path} reads text contexts of widths {head.video_dim} (video) and "
            f"{head.audio_dim} (audio), but {files.transformer.path.name} gives {widths[0]} and {widths[1]}: "
            "use the duration head published with this model."
        )


class PipelineBase:
    """Holds the ledger and the checked file paths; provides the shared stages."""

    #: Height and width must be multiples of this (64 when stage 1 runs at half size).
    size_multiple: int = 32
    #: The denoising stages, for the memory pre-flight: (scale of the output size, guided?) in order.
    memory_stages: tuple[tuple[float, bool], ...] = ((1.0, True),)
    needs_upsampler: bool = False
    pipeline_name: str = "ltx"
    #: Runs the distilled transformer (what --model-dir picks for it), else the full (dev) one.
    runs_distilled_model: bool = False

    def __init__(
        self,
        checkpoint_path: str | Path | None = None,
        gemma_root: str | Path | None = None,
        loras: list[LoraPathStrengthAndSDOps] | tuple = (),
        quantization: QuantizationPolicy | None = None,
        spatial_upsampler_path: str | Path | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        memory_policy: MemoryPolicy | str | None = None,
        offload: OffloadMode | str = OffloadMode.AUTO,
        max_gpu_memory: float | None = None,
        compile: bool | None = None,  # noqa: A002 - the --compile flag
        step_cache: float | None = None,
        compile_cache: str | None = None,
        attention: str = "auto",
        **paths: Unpack[ComponentPaths],
    ):
        """The model: a monolithic ``checkpoint_path`` with ``gemma_root`` (LTX-2, 2.3), the split component
        files (``transformer_path``, ``text_encoder_path``, ``video_vae_path``, ``audio_vae_path``; LTX-2.5),
        or ``model_dir``, a downloaded folder to find them in (paths given explicitly win).
        ``prompt_enhancer_gemma_root``: a Gemma 3 or dense Gemma 4 instruct folder that rewrites prompts for
        ``enhance_prompt=True`` in place of the text encoder (required for LTX-2.5, whose Gemma 4 only encodes;
        Gemma 4 rewrites text prompts only)."""
        self.acceleration = AccelerationOptions(compile=compile, step_cache=step_cache, compile_cache=compile_cache,
                                                attention=attention)  # fmt: skip
        self.files, self.found = locate_model_files(checkpoint_path, gemma_root, paths,
                                                    distilled=self.runs_distilled_model)  # fmt: skip
        self.checkpoint: CheckpointInfo = inspect_ltx_checkpoint(self.files.transformer.path)
        self.rules = SamplingRules.for_model(self.files)
        # Inside a process group of several ranks (torchrun, or the caller's): this rank's share of the work.
        self.parallel, device = join_group(self.files.config, device)
        check_text_encoder(self.files)
        self.prompt_enhancer = check_prompt_enhancer(self.files, paths.get("prompt_enhancer_gemma_root"))
        if self.files.duration_head is not None:
            check_duration_head(self.files)
        spatial_upsampler_path = spatial_upsampler_path or self.found.spatial_upsampler_path
        if self.needs_upsampler:
            if spatial_upsampler_path is None:
                raise InputError(f"{type(self).__name__} needs the x2 spatial upsampler: pass --spatial-upsampler-path "
                                 "(spatial_upsampler_path=).")  # fmt: skip
            inspect_upsampler(spatial_upsampler_path)
        self.loras = _lora_list(loras)
        for lora in self.loras:
            check_lora_matches(lora.path, self.files.transformer.path, "LoRA (--lora)")
        self.ledger = ModelLedger(
            checkpoint_path=self.files.transformer.path,
            gemma_root=self.files.text_encoder,
            spatial_upsampler_path=spatial_upsampler_path,
            loras=self.loras,
            quantization=quantization,
            device=device,
            dtype=dtype,
            memory_policy=memory_policy,
            offload=offload,
            max_gpu_memory=max_gpu_memory,
            video_vae_path=self.files.video_vae.path,
            audio_vae_path=self.files.audio_vae.path,
            duration_head_path=self.files.duration_head.path if self.files.duration_head is not None else None,
            prompt_enhancer_gemma_root=self.prompt_enhancer.root if self.prompt_enhancer else None,
        )
        self.acceleration.check_device(self.device.type)  # before any model loads
        self.ledger.compile_video_decoder = self.acceleration.compiles_video_decoder()
        logger.info("%s on %s (%s), %s", type(self).__name__, self.device, str(self.dtype).removeprefix("torch."),
                    self.files.describe())  # fmt: skip
        if notice := self.files.transformer.metadata.get("smoke_model"):
            logger.warning(notice)  # the random-weight smoke model: say so wherever it runs

    def validate(self, **call_kwargs: object) -> None:
        """Run every input check of ``self(**call_kwargs)`` and return; nothing is loaded or generated.

        Raises InputError with the same message the call would give. Used by the server to refuse a bad
        request before it is queued; also handy before submitting a long batch.
        """
        with self.ledger.checks_only():
            try:
                self(**call_kwargs)
            except ChecksPassed:
                return
        raise RuntimeError(f"{type(self).__name__} finished without building a model: nothing to validate against.")

    @property
    def device(self) -> torch.device:
        return self.ledger.device

    @property
    def dtype(self) -> torch.dtype:
        return self.ledger.dtype

    # -- defaults that depend on the checkpoint -------------------------------------------------

    def default_num_inference_steps(self) -> int:
        return self.files.generation.num_inference_steps

    def default_stg_block(self) -> int:
        return self.files.generation.stg_block

    def default_guider_params(self) -> tuple[MultiModalGuiderParams, MultiModalGuiderParams]:
        blocks = [self.default_stg_block()]
        return (
            replace(C.DEFAULT_VIDEO_GUIDER_PARAMS, stg_blocks=blocks),
            replace(C.DEFAULT_AUDIO_GUIDER_PARAMS, stg_blocks=blocks),
        )

    def resolve_guidance(
        self,
        num_inference_steps: int | None,
        video_guider_params: MultiModalGuiderParams | None,
        audio_guider_params: MultiModalGuiderParams | None,
    ) -> tuple[int, MultiModalGuiderParams, MultiModalGuiderParams]:
        """Fill unset guidance settings with this checkpoint's defaults and check them."""
        default_video, default_audio = self.default_guider_params()
        steps = num_inference_steps if num_inference_steps is not None else self.default_num_inference_steps()
        video = video_guider_params or default_video
        audio = audio_guider_params or default_audio
        if steps < 1:
            raise InputError(f"--num-inference-steps must be at least 1; got {steps}.")
        self.check_stg_blocks(video, audio)
        request = self.ledger.pending_request
        if request is not None:  # the guided stages run as many passes as this guidance asks for
            passes = guided_passes(video, audio)
            stages = tuple(replace(s, passes=passes) if s.passes > 1 else s for s in request.stages)
            self.ledger.pending_request = replace(request, stages=stages)
        return steps, video, audio

    # -- checks before any model is built --------------------------------------------------------

    def video_geometry(
        self, height: int, width: int, num_frames: int | AutoDuration | None, frame_rate: float
    ) -> VideoGeometry:
        """The request's geometry. ``num_frames`` None: the duration head chooses where the model has one, else
        the default length. An auto duration is checked now and held at its longest length until the prompt is
        encoded (:meth:`settle_duration`)."""
        if num_frames is None:
            num_frames = AutoDuration() if self.files.duration_head is not None else C.DEFAULT_NUM_FRAMES
        if not isinstance(num_frames, AutoDuration):
            return VideoGeometry(height, width, num_frames, frame_rate)
        if self.files.duration_head is None:
            raise InputError("Auto duration needs the model's duration head: pass --duration-head-path "
                             "(duration_head_path=), or give --num-frames.")  # fmt: skip
        num_frames.check(frame_rate)
        return VideoGeometry(height, width, num_frames.longest(frame_rate), frame_rate, duration=num_frames)

    def image_inputs(self, images: list | tuple | None) -> list[ImageConditioningInput]:
        """The call's conditioning images, an unset CRF replaced by this model's (once, before anything loads)."""
        return with_model_crf(as_image_inputs(images), self.files.image_crf)

    def settle_duration(
        self, geometry: VideoGeometry, prompt: PromptEmbeddings, images: list[ImageConditioningInput]
    ) -> VideoGeometry:
        """The frame count the duration head predicts from the encoded prompt (a fixed length stays as it is)."""
        duration = geometry.duration
        if duration is None:
            return geometry
        with self.ledger.timed("duration"), torch.inference_mode(), self.ledger.use("duration_head") as head:
            frames = head.predict_frames(prompt.video, prompt.audio, geometry.frame_rate, duration.min_seconds,
                                         duration.max_seconds)  # fmt: skip
        check_image_inputs(images, frames)
        return replace(geometry, num_frames=frames, duration=None)

    def check_request(
        self,
        geometry: VideoGeometry,
        images: list[ImageConditioningInput],
        output_path: str | Path | None,
        overwrite: bool,
    ) -> Path | None:
        self.ledger.timings.clear()  # a new generation starts: its own time breakdown
        check_generation(geometry.height, geometry.width, geometry.num_frames, geometry.frame_rate, self.size_multiple)
        check_image_inputs(images, geometry.num_frames)
        output = check_output_path(output_path, overwrite) if output_path is not None else None
        self.ledger.pending_request = self.memory_request(geometry)  # planned before the first model loads
        return output

    def memory_request(self, geometry: VideoGeometry) -> MemoryRequest:
        """The stages this generation will run, in tokens and passes (guided: 4 until the guidance is known)."""
        fmt = self.ledger.latent_format
        stages = []
        for i, (scale, guided) in enumerate(self.memory_stages):
            g = replace(geometry, height=int(geometry.height * scale), width=int(geometry.width * scale))
            v = video_latent_tools(g, fmt).target_shape
            a = audio_latent_tools(g, fmt).target_shape
            stages.append(StageLoad(f"stage {i + 1}", v.frames * v.height * v.width, a.frames, 4 if guided else 1))
        has_loras = bool(self.loras) or len(self.memory_stages) > 1  # two-stage pipelines add a LoRA for stage 2
        return MemoryRequest(tuple(stages), geometry.height, geometry.width, geometry.num_frames, has_loras)

    def check_stg_blocks(self, *params: MultiModalGuiderParams) -> None:
        layers = int(self.checkpoint.config.get("transformer", {}).get("num_layers", 48))
        for p in params:
            bad = [b for b in (p.stg_blocks or []) if not 0 <= b < layers]
            if bad and p.stg_scale != 0:
                raise InputError(f"STG blocks {bad} do not exist: this transformer has blocks 0..{layers - 1}.")

    # -- shared stages -------------------------------------------------------------------------

    def generator(self, seed: int) -> torch.Generator:
        return torch.Generator(device=self.device).manual_seed(seed)

    def encode_prompts(self, prompts: list[str]) -> list[PromptEmbeddings]:
        """Each prompt's embeddings (in a process group: encoded on rank 0, broadcast)."""
        if self.parallel is None:
            return encode_prompts(self.ledger, prompts)
        self._stop_before_collective("text_encoder")
        encoded = encode_prompts(self.ledger, prompts) if self.parallel.rank == 0 else None
        with self.ledger.timed("text encoding"):
            return broadcast_embeddings(self.parallel, encoded, self.ledger.dtype)

    def enhance_prompt(self, prompt: str, enabled: bool, images: list = (), seed: int = 0) -> tuple[str, dict]:
        """(prompt to encode, metadata): Gemma's rewrite when enabled (in a process group: once, on rank 0)."""
        if enabled and not self.ledger.can_enhance_prompts():
            raise InputError(
                f"--enhance-prompt: the text encoder of {self.files.transformer.path.name} (Gemma 4 unified) only "
                "encodes prompts; give a generative Gemma 3 or dense Gemma 4 folder to rewrite them with "
                "--prompt-enhancer-gemma-root (prompt_enhancer_gemma_root=)."
            )
        if enabled and images and self.prompt_enhancer is not None and not self.prompt_enhancer.rewrites_images:
            raise InputError(
                f"--enhance-prompt with images: the Gemma 4 prompt enhancer {self.prompt_enhancer.root} rewrites text "
                "prompts only (its image processor needs torchvision); give a Gemma 3 folder to "
                "--prompt-enhancer-gemma-root, or leave out --enhance-prompt."
            )
        if self.parallel is None or not enabled:
            return maybe_enhance_prompt(self.ledger, prompt, enabled, images, seed)
        self._stop_before_collective("text_encoder")
        enhance = lambda: maybe_enhance_prompt(self.ledger, prompt, enabled, images, seed)  # noqa: E731
        return computed_on_rank_0(self.parallel, enhance)

    def _decode_across_ranks(
        self, latent: torch.Tensor, generator: torch.Generator, tiling: TilingConfig | None
    ) -> torch.Tensor:
        """The video decoded by the ranks of the group (tiles split where they can be), frames on every rank."""
        with self.ledger.timed("decode video"):
            return decode_video_frames_across_ranks(self.parallel, lambda: self.ledger.use("video_decoder"), latent,
                                                    generator, tiling)  # fmt: skip

    def _stop_before_collective(self, name: str) -> None:
        """``validate()`` stops at the first model build; in a group every rank must stop, not wait for rank 0."""
        if self.ledger.checking_only:
            raise ChecksPassed(name)

    def image_conditionings(
        self, images: list[ImageConditioningInput], geometry: VideoGeometry, by_guiding_latent: bool = False
    ) -> list[ConditioningItem]:
        if not images:
            return []
        build = image_conditionings_by_adding_guiding_latent if by_guiding_latent else image_conditionings_by_replacing_latent
        with torch.inference_mode(), self.ledger.use("video_encoder") as encoder:
            return build(images, geometry.height, geometry.width, encoder, self.rules.one_pixel_frame_keyframes,
                         self.rules.images_compressed_first)  # fmt: skip

    def guided_stage(
        self,
        *,
        name: str,
        geometry: VideoGeometry,
        positive: PromptEmbeddings,
        negative: PromptEmbeddings,
        video_guider_params: MultiModalGuiderParams,
        audio_guider_params: MultiModalGuiderParams,
        num_inference_steps: int,
        conditionings: list[ConditioningItem],
        generator: torch.Generator,
        loop: DenoisingLoop = euler_denoising_loop,
        stepper: object | None = None,
        audio_conditionings: list[ConditioningItem] = (),
        initial_audio: torch.Tensor | None = None,
        initial_video: torch.Tensor | None = None,
        sigmas: torch.Tensor | None = None,
        extra_loras: tuple[LoraPathStrengthAndSDOps, ...] = (),
    ) -> StageLatents:
        """Full model (plus ``extra_loras``), multimodal guidance, LTX-2 sigma schedule."""
        if sigmas is None:
            sigmas = LTX2Scheduler().execute(steps=num_inference_steps)
        with self.ledger.timed(name), self.ledger.use("transformer", extra_loras=tuple(extra_loras)) as transformer:
            denoiser = MultiModalGuidedDenoiser(
                transformer,
                positive,
                negative,
                create_multimodal_guider_factory(video_guider_params),
                create_multimodal_guider_factory(audio_guider_params),
                executor=self.pass_executor(transformer),
                in_float32=self.rules.guidance_in_float32,
                contiguous_latents=self.rules.guided_latent_contiguous,
            )
            return denoise_stage(
                name=name, geometry=geometry, fmt=self.ledger.latent_format, sigmas=sigmas, denoise_fn=denoiser,
                stepper=stepper or default_stepper(), generator=generator, device=self.device, dtype=self.dtype,
                video_conditionings=conditionings, audio_conditionings=audio_conditionings,
                initial_video=initial_video, initial_audio=initial_audio, loop=loop, rules=self.rules,
            )  # fmt: skip

    def pass_executor(self, transformer: X0Model) -> PassExecutor:
        """How this pipeline's transformer passes run: the one place that picks engine and schedule.

        Streamed blocks run block-major: every pass goes through a block before the next one is needed,
        so each block's weights cross to the GPU once per step, not once per pass (the compiled blocks
        do not stream yet, so streaming wins over --compile). Under a process group the passes are
        split across ranks (unchanged without one).
        """
        compact = self.ledger.plan is not None and self.ledger.plan.compact_timesteps
        if streamed_transformer(transformer) is not None:
            local = TransformerPasses(transformer, engine=EagerBlocks(transformer, compact), block_major=True)
        elif compact:
            local = TransformerPasses(transformer, engine=EagerBlocks(transformer, compact))
        elif self.acceleration.enabled(self.device.type):
            from ltx_pipelines.acceleration.executor import accelerated_executor

            local = accelerated_executor(transformer, self._local_acceleration())
        else:
            local = TransformerPasses(transformer)
        return split_guidance(local, self.parallel)

    def _local_acceleration(self) -> AccelerationOptions:
        """The options this rank's executor runs: under a process group the guidance split shards one
        ``TransformerPasses`` executor, and compiling by token count is not measured there, so the default stays
        plain (an explicit ``--compile`` still compiles, as before)."""
        if self.parallel is not None and self.acceleration.by_token_count():
            return replace(self.acceleration, compile=False)
        return self.acceleration

    def distilled_stage(
        self,
        *,
        name: str,
        geometry: VideoGeometry,
        prompt: PromptEmbeddings,
        sigma_values: list[float],
        conditionings: list[ConditioningItem],
        generator: torch.Generator,
        extra_loras: tuple[LoraPathStrengthAndSDOps, ...] = (),
        initial_video: torch.Tensor | None = None,
        initial_audio: torch.Tensor | None = None,
        audio_conditionings: list[ConditioningItem] = (),
        loop: DenoisingLoop = euler_denoising_loop,
        noise_scale: float | None = 1.0,
    ) -> StageLatents:
        """No guidance, fixed distilled sigmas (the distilled model, or the full one + distilled LoRA).

        ``noise_scale``: as :func:`denoise_stage` takes it (None: the first sigma, for a refinement)."""
        sigmas = torch.tensor(sigma_values, dtype=torch.float32)
        with self.ledger.timed(name), self.ledger.use("transformer", extra_loras=tuple(extra_loras)) as transformer:
            return denoise_stage(
                name=name, geometry=geometry, fmt=self.ledger.latent_format, sigmas=sigmas,
                denoise_fn=ConditionalDenoiser(transformer, prompt, executor=self.pass_executor(transformer)),
                stepper=default_stepper(),
                generator=generator, device=self.device, dtype=self.dtype, video_conditionings=conditionings,
                audio_conditionings=audio_conditionings, initial_video=initial_video, initial_audio=initial_audio,
                loop=loop, rules=self.rules, noise_scale=noise_scale,
            )  # fmt: skip

    def upsample_and_refine(
        self,
        *,
        low: StageLatents,
        geometry: VideoGeometry,
        prompt: PromptEmbeddings,
        images: list[ImageConditioningInput],
        generator: torch.Generator,
        extra_loras: tuple[LoraPathStrengthAndSDOps, ...] = (),
        by_guiding_latent: bool = False,
        loop: DenoisingLoop = euler_denoising_loop,
        audio_conditionings: list[ConditioningItem] = (),
    ) -> StageLatents:
        """Stage 2 of every two-stage pipeline: x2 latent upsample, then distilled refinement at full size."""
        upsampled = upsample_video_latent(self.ledger, low.video)
        return self.distilled_stage(
            name="stage 2",
            geometry=geometry,
            prompt=prompt,
            sigma_values=C.STAGE_2_DISTILLED_SIGMA_VALUES,
            conditionings=self.image_conditionings(images, geometry, by_guiding_latent),
            generator=generator,
            extra_loras=extra_loras,
            initial_video=upsampled,
            initial_audio=low.audio,
            loop=loop,
            audio_conditionings=audio_conditionings,
            noise_scale=None,  # the given latents re-noised to the first sigma
        )

    # -- output --------------------------------------------------------------------------------

    def finish(
        self,
        latents: StageLatents,
        geometry: VideoGeometry,
        generator: torch.Generator,
        output_path: Path | None,
        overwrite: bool,
        metadata: dict,
        tiling_config: TilingConfig | None = None,
        audio: Audio | None = None,
    ) -> GenerationResult:
        """Decode video (and audio unless given), then write the mp4 if a path was given."""
        if tiling_config is None and self.ledger.plan is not None:
            tiling_config = self.ledger.plan.vae_tiling  # tiles sized to the memory left (None: whole video fits)
        tags = self.output_metadata(metadata, geometry)
        if self.parallel is None and output_path is not None:  # decode straight into the mp4 writer
            return self._decode_into_file(latents, geometry, generator, output_path, overwrite, tags, tiling_config,
                                          audio)  # fmt: skip
        if self.parallel is None:
            frames = decode_video_frames(self.ledger, latents.video, generator, tiling_config)
        else:
            frames = self._decode_across_ranks(latents.video, generator, tiling_config)
        if audio is None:
            audio = decode_audio_waveform(self.ledger, latents.audio)
        result = GenerationResult(frames=frames, audio=audio, frame_rate=geometry.frame_rate, metadata=tags)
        result.timings = self.ledger.timings  # filled in as the stages ran (write time added below)
        if output_path is not None and (self.parallel is None or self.parallel.is_writer):  # rank 0 writes
            started = time.perf_counter()
            with self.ledger.timed("write mp4"):
                result.output_path = write_video(
                    output_path, chunked(frames), geometry.frame_rate, audio, metadata=tags, overwrite=overwrite
                )
            logger.info("Wrote %s in %.1f s", result.output_path, time.perf_counter() - started)
        return result

    def _decode_into_file(self, latents: StageLatents, geometry: VideoGeometry, generator: torch.Generator,
                          output_path: Path, overwrite: bool, tags: dict[str, str], tiling_config: TilingConfig | None,
                          audio: Audio | None) -> GenerationResult:  # fmt: skip
        """Each decoded tile goes to the H.264 encoder on its thread while the next one decodes.

        The frames are kept for the result only when the caller may want them (``keep_frames``, on by
        default; the CLI turns it off): a 4K clip of 257 frames is 6.4 GB of host memory.
        """
        if audio is None:
            audio = decode_audio_waveform(self.ledger, latents.audio)  # the mp4 interleaves it with the frames
        kept: list[torch.Tensor] = []
        started = time.perf_counter()
        with BackgroundVideoWriter(output_path, geometry.frame_rate, audio, tags, overwrite) as writer:
            for chunk in decode_video_chunks(self.ledger, latents.video, generator, tiling_config):
                if keep_frames.get():
                    kept.append(chunk)
                for part in chunked(chunk):
                    writer.put(part)
            with self.ledger.timed("write mp4"):  # what encoding adds after the last tile has decoded
                path = writer.finish()
        logger.info("Wrote %s in %.1f s (encoding overlapped the decode)", path, time.perf_counter() - started)
        frames = torch.cat(kept, dim=0) if kept else None
        result = GenerationResult(frames=frames, audio=audio, frame_rate=geometry.frame_rate, metadata=tags,
                                  output_path=path)  # fmt: skip
        result.timings = self.ledger.timings
        return result

    def output_metadata(self, settings: dict, geometry: VideoGeometry) -> dict[str, str]:
        """Generation parameters stored in the mp4 (readable with ffprobe / PyAV)."""
        values = {
            "pipeline": self.pipeline_name,
            "checkpoint": self.files.transformer.path.name,
            "model_version": self.checkpoint.model_version,
            "height": geometry.height,
            "width": geometry.width,
            "num_frames": geometry.num_frames,
            "frame_rate": geometry.frame_rate,
            "loras": [f"{Path(lora.path).name}:{lora.strength}" for lora in self.loras],
            **settings,
        }
        return {k: v if isinstance(v, str) else json.dumps(v, default=str) for k, v in values.items()}


def guided_passes(*params: MultiModalGuiderParams) -> int:
    """Transformer passes per guided step: conditional, plus negative, STG and isolated where any modality asks."""
    cfg = any(p.cfg_scale != 1.0 for p in params)
    stg = any(p.stg_scale != 0.0 and p.stg_blocks for p in params)
    modality = any(p.modality_scale != 1.0 for p in params)
    return 1 + cfg + stg + modality


def guider_metadata(params: MultiModalGuiderParams) -> dict:
    return {
        "cfg": params.cfg_scale,
        "stg": params.stg_scale,
        "stg_blocks": list(params.stg_blocks or []),
        "rescale": params.rescale_scale,
        "modality": params.modality_scale,
        "skip_step": params.skip_step,
    }


__all__ = ["GenerationResult", "ImageConditioningInput", "PipelineBase", "as_image_inputs", "guider_metadata"]
