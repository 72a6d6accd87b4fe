"""The one place that builds model components and decides how long they live.

Every component is built from the files' own config (checkpoint metadata, the
Gemma directory's config.json, a packed text encoder's gemma_config) with ltx-core's
configurators and loaders. What the text path is follows from the files: a Gemma-3
folder (LTX-2, 2.3: ltx-core's processor from the checkpoint) or a packed Gemma-4 file
(LTX-2.5: ``models.ltx25``, the processor from the transformer and text encoder files).
The memory policy is the single switch for lifetime:

* ``keep``: build once, keep resident; a second generation reads no file.
* ``low``: build when needed and free right after use (lowest peak memory).
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path

import torch
from ltx_core.loader import (
    LTXV_LORA_COMFY_RENAMING_MAP,
    LoraPathStrengthAndSDOps,
    SDOps,
    SingleGPUModelBuilder,
)
from ltx_core.model.audio_vae import (
    AUDIO_VAE_DECODER_COMFY_KEYS_FILTER,
    AUDIO_VAE_ENCODER_COMFY_KEYS_FILTER,
    VOCODER_COMFY_KEYS_FILTER,
    AudioDecoderConfigurator,
    AudioEncoderConfigurator,
    VocoderConfigurator,
)
from ltx_core.model.transformer import LTXV_MODEL_COMFY_RENAMING_MAP, X0Model
from ltx_core.model.upsampler import LatentUpsamplerConfigurator
from ltx_core.model.video_vae import VideoDecoderConfigurator, VideoEncoderConfigurator
from ltx_core.quantization import QuantizationPolicy

from ltx_pipelines.engine.lora_swap import LoraSwapper
from ltx_pipelines.memory.budget import ModelSizes, model_sizes, tensors_bytes
from ltx_pipelines.memory.chunking import chunk_feed_forwards
from ltx_pipelines.memory.host import GIB, available_host_memory, process_memory
from ltx_pipelines.memory.offload import OffloadMode, parse_max_gpu_memory
from ltx_pipelines.memory.preflight import MemoryPlan, MemoryRequest, plan_with_policy
from ltx_pipelines.memory.streamed_text_encoder import build_streamed_text_encoder, close_streamed_text_encoder
from ltx_pipelines.memory.streamed_transformer import StreamedTransformer
from ltx_pipelines.models.checkpoints import read_header
from ltx_pipelines.models.fp8 import prepare_quantization, route_ltx_core_fp8_scaled_mm_to_ours
from ltx_pipelines.models.gemma import (
    EmbeddingsProcessorFromConfig,
    GemmaDirectoryLoader,
    GemmaFiles,
    GemmaTextEncoderFromConfig,
    find_gemma_files,
    gemma_text_encoder_ops,
)
from ltx_pipelines.models.key_layouts import VIDEO_DECODER_KEYS, VIDEO_ENCODER_KEYS
from ltx_pipelines.models.ltx25.diffusion_decoder import DiffusionDecoderConfig
from ltx_pipelines.models.ltx25.diffusion_vae_file import (
    FlatVideoEncoderConfigurator,
    flat_encoder_config,
    is_diffusion_vae,
    load_diffusion_decoder,
)
from ltx_pipelines.models.ltx25.duration_head import load_duration_head
from ltx_pipelines.models.ltx25.text_embeddings import PROJECTION_PREFIX, embeddings_processor_builder
from ltx_pipelines.models.ltx25.text_encoder import PackedTextEncoder, gemma4_builder, inspect_packed_text_encoder
from ltx_pipelines.models.ltx25.transformer import configurator_for, is_ltx_2_5_transformer
from ltx_pipelines.models.prompt_enhancer import GEMMA4, build_gemma4_enhancer, inspect_prompt_enhancer
from ltx_pipelines.utils import progress

logger = logging.getLogger(__name__)

# The seed's Python API uses QuantizationPolicy.fp8_scaled_mm(); without TensorRT-LLM that must
# give our torch._scaled_mm policy rather than an ImportError (see route_ltx_core_fp8_scaled_mm_to_ours).
route_ltx_core_fp8_scaled_mm_to_ours()


class ChecksPassed(Exception):
    """Raised at the first model build of a call run under :meth:`ModelLedger.checks_only`."""


class MemoryPolicy(str, Enum):
    KEEP = "keep"
    LOW = "low"


def default_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def default_dtype(device: torch.device) -> torch.dtype:
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def cleanup_memory() -> None:
    """Return freed memory to the system (and the GPU allocator's cache)."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def comfy_lora(path: str | Path, strength: float) -> LoraPathStrengthAndSDOps:
    """A LoRA entry with ComfyUI key naming, the format LTX LoRAs ship in."""
    return LoraPathStrengthAndSDOps(str(path), float(strength), LTXV_LORA_COMFY_RENAMING_MAP)


@dataclass(frozen=True)
class LatentFormat:
    """Latent sizes of this model, read from the checkpoint config (never assumed)."""

    video_channels: int
    audio_channels: int
    audio_mel_bins: int
    audio_sample_rate: int
    audio_hop_length: int

    @classmethod
    def from_config(cls, config: dict) -> "LatentFormat":
        vae = config.get("vae", {})
        audio = config.get("audio_vae", {})
        params = audio.get("model", {}).get("params", {})
        dd = params.get("ddconfig", {})
        mel_bins = dd.get("mel_bins") or audio.get("preprocessing", {}).get("mel", {}).get("n_mel_channels", 64)
        downsample = 2 ** (len(dd.get("ch_mult", (1, 2, 4))) - 1)
        return cls(
            video_channels=int(vae.get("latent_channels", 128)),
            audio_channels=int(dd.get("z_channels", 8)),
            audio_mel_bins=int(mel_bins) // downsample,
            audio_sample_rate=int(params.get("sampling_rate", 16000)),
            audio_hop_length=int(audio.get("preprocessing", {}).get("stft", {}).get("hop_length", 160)),
        )


def _merge_sd_ops(base: SDOps, extra: SDOps | None) -> SDOps:
    if extra is None:
        return base
    return replace(base, name=f"{base.name}+{extra.name}", mapping=(*base.mapping, *extra.mapping))


class ModelLedger:
    """Builds each component on request and keeps or frees it by one memory policy."""

    def __init__(
        self,
        checkpoint_path: str | Path,
        gemma_root: str | Path | None = None,
        spatial_upsampler_path: str | Path | None = None,
        loras: tuple[LoraPathStrengthAndSDOps, ...] | list[LoraPathStrengthAndSDOps] = (),
        quantization: QuantizationPolicy | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        memory_policy: MemoryPolicy | str | None = None,
        offload: OffloadMode | str | None = None,
        max_gpu_memory: float | None = None,
        *,
        video_vae_path: str | Path | None = None,
        audio_vae_path: str | Path | None = None,
        duration_head_path: str | Path | None = None,
        prompt_enhancer_gemma_root: str | Path | None = None,
    ):
        """``checkpoint_path`` holds the transformer (and, in a monolithic checkpoint, everything else but Gemma);
        ``video_vae_path`` / ``audio_vae_path`` name split component files (default: the checkpoint);
        ``gemma_root`` is a Gemma-3 folder or a packed Gemma-4 text encoder file; ``prompt_enhancer_gemma_root``
        a separate Gemma-3 folder that rewrites prompts (default: the text encoder does, where it can)."""
        self.checkpoint_path = str(checkpoint_path)
        self.video_vae_path = str(video_vae_path or checkpoint_path)
        self.audio_vae_path = str(audio_vae_path or checkpoint_path)
        self.duration_head_path = str(duration_head_path) if duration_head_path is not None else None
        self.offload = OffloadMode.parse(offload)
        self.max_gpu_memory = parse_max_gpu_memory(max_gpu_memory)
        self.gemma_root = str(gemma_root) if gemma_root is not None else None
        self.prompt_enhancer_gemma_root = str(prompt_enhancer_gemma_root) if prompt_enhancer_gemma_root else None
        self.spatial_upsampler_path = str(spatial_upsampler_path) if spatial_upsampler_path else None
        self.loras = tuple(loras)
        self.quantization = quantization
        self.device = torch.device(device) if device is not None else default_device()
        self.dtype = dtype or default_dtype(self.device)
        # Asked for (None: decided per generation by the memory plan) and in force for the current generation.
        self.requested_memory_policy = MemoryPolicy(memory_policy) if memory_policy is not None else None
        self.memory_policy = self._initial_memory_policy()
        self._warned_keep = False
        header = read_header(self.checkpoint_path, "checkpoint")
        self.config = header.config()
        #: Builds this checkpoint's transformer: ltx-core's for LTX-2 / 2.3, ours for LTX-2.5.
        self.transformer_configurator = configurator_for(self.config, header.metadata.get("model_version"))
        # LTX-2.5 keeps per-token audio<->video AdaLN rows in every pass's state: the pre-flight counts them.
        self.per_token_cross_adaln = is_ltx_2_5_transformer(self.config, header.metadata.get("model_version"))
        # Latent sizes come from the VAEs' own sections (split files: each VAE file holds its section).
        sections = [read_header(path, "model file").config() for path in (self.video_vae_path, self.audio_vae_path)]
        video_vae = sections[0].get("vae", self.config.get("vae", {}))
        #: LTX-2.5's diffusion video decoder (``CausalDiffusionVAE`` file) rather than the convolutional one.
        self.diffusion_video_decoder = is_diffusion_vae(video_vae)
        #: Its architecture, for the pre-flight's tiles (read from the header: nothing is loaded).
        self.diffusion_decoder_config = (
            DiffusionDecoderConfig.from_vae_config(video_vae) if self.diffusion_video_decoder else None
        )
        if self.diffusion_video_decoder:  # its encoder's settings are nested: give ltx-core the flat form
            sections[0] = {**sections[0], "vae": flat_encoder_config(video_vae)}
        self.latent_format = LatentFormat.from_config({**self.config, **sections[0], **sections[1]})
        self._models: dict[tuple, torch.nn.Module] = {}
        self.files_loaded: list[str] = []  # every file read, in order (tests check residency)
        self._lora_swapper = LoraSwapper(on_file_read=self.files_loaded.append)
        self.timings: dict[str, float] = {}  # seconds per step of the last generation
        self.prompt_cache: dict[str, object] = {}  # prompt -> encoded embeddings (see prompts.encode_prompts)
        self._checks_only = False
        self.pending_request: MemoryRequest | None = None  # planned at the first model build of a generation
        self.plan: MemoryPlan | None = None
        self.peaks: dict[str, dict[str, float]] = {}  # stage -> measured peak memory (GiB) of the last generation
        self._streamed: StreamedTransformer | None = None
        #: Compile the diffusion video decoder's blocks when it is built (the pipeline's --compile).
        self.compile_video_decoder = False

    @contextmanager
    def checks_only(self) -> Iterator[None]:
        """Within this block the first model build raises ChecksPassed: a call runs its input checks only.

        Every input check of a pipeline runs before its first model is built, so this is how a request is
        validated without loading or generating anything (the server checks requests this way).
        """
        self._checks_only = True
        try:
            yield
        finally:
            self._checks_only = False

    @property
    def checking_only(self) -> bool:
        """Inside :meth:`checks_only` (collective steps stop here on every rank, not only where a model builds)."""
        return self._checks_only

    # -- timings ---------------------------------------------------------------------------

    @contextmanager
    def timed(self, label: str) -> Iterator[None]:
        """Add the wall time of a block to `timings[label]` (a per-generation breakdown); report it as a stage."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        started = time.perf_counter()
        try:
            with progress.stage(label):
                yield
        finally:
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self.timings[label] = self.timings.get(label, 0.0) + time.perf_counter() - started
            self._log_peak(label)

    def _log_peak(self, label: str) -> None:
        """The real peak of a stage, next to the plan's estimate (so the estimate can be checked)."""
        host = process_memory()
        peak = {"host_rss": host["rss"] / GIB, "host_private": host["rss_anon"] / GIB}
        if self.device.type == "cuda":
            peak["gpu"] = torch.cuda.max_memory_allocated(self.device) / GIB
        self.peaks[label] = peak
        gpu = f"GPU peak {peak['gpu']:.2f} GiB, " if "gpu" in peak else ""
        logger.info("%s: %shost %.2f GiB resident (%.2f GiB private)", label, gpu, peak["host_rss"],
                    peak["host_private"])  # fmt: skip

    # -- lifetime ---------------------------------------------------------------------------

    @contextmanager
    def use(self, name: str, **kwargs: object) -> Iterator[torch.nn.Module]:
        """Borrow a component for a block of work; the policy decides whether it stays."""
        model = self.get(name, **kwargs)
        try:
            yield model
        finally:
            del model
            if self.memory_policy is MemoryPolicy.LOW:
                self.release(name, **kwargs)

    def get(self, name: str, **kwargs: object) -> torch.nn.Module:
        if self.pending_request is not None:  # the first build of a generation: plan its memory first
            request, self.pending_request = self.pending_request, None
            self.plan = self.plan_memory(request)
        if self._checks_only:
            raise ChecksPassed(name)
        if name == "transformer":
            model = self._transformer(**kwargs)
            chunk_feed_forwards(model, self.plan.ff_chunk if self.plan is not None else None)
            return model
        return self._component(name, **kwargs)

    def _transformer(self, **kwargs: object) -> torch.nn.Module:
        extra_loras = tuple(kwargs.get("extra_loras", ()))
        mode = self.transformer_offload()
        if mode is not OffloadMode.NONE:
            return self._streamed_transformer(mode, extra_loras)
        self._close_streamed()
        if self._swaps_loras_in_memory():
            return self._resident_transformer(extra_loras)
        return self._component("transformer", **kwargs)

    def _component(self, name: str, **kwargs: object) -> torch.nn.Module:
        key = (name, *sorted(kwargs.items()))
        if key not in self._models:
            self._models[key] = self._build_and_log(name, **kwargs)
        return self._models[key]

    def kept(self, name: str) -> torch.nn.Module | None:
        """The model ``name`` if the ledger holds it now (built with no extra arguments), else None; builds nothing."""
        return self._models.get((name,))

    def release(self, name: str, **kwargs: object) -> None:
        if name == "transformer" and self._streamed is not None:
            self._streamed.park()  # the pinned store stays: building it again would cost more than keeping it
            cleanup_memory()
            return
        if name == "transformer" and self._swaps_loras_in_memory():
            kwargs = {}
        model = self._models.pop((name, *sorted(kwargs.items())), None)
        if model is not None:
            close_streamed_text_encoder(model)
            cleanup_memory()

    def _swaps_loras_in_memory(self) -> bool:
        """Under `keep`, one resident transformer serves every LoRA set (not with quantized weights)."""
        return self.memory_policy is MemoryPolicy.KEEP and self.quantization is None

    def _resident_transformer(self, extra_loras: tuple[LoraPathStrengthAndSDOps, ...]) -> torch.nn.Module:
        model = self._models.get(("transformer",))
        if model is None:
            model = self._build_and_log("transformer")
            self._models[("transformer",)] = model
        self._lora_swapper.set(model.velocity_model, extra_loras)
        return model

    def _build_and_log(self, name: str, **kwargs: object) -> torch.nn.Module:
        started = time.perf_counter()
        model = getattr(self, f"_build_{name}")(**kwargs)
        model.eval().requires_grad_(False)
        logger.info("Loaded %s in %.1f s", name.replace("_", " "), time.perf_counter() - started)
        return model

    def release_all(self) -> None:
        self._release_models()
        self._close_streamed()
        cleanup_memory()

    def _release_models(self) -> None:
        """Drop every loaded model (a streamed transformer's pinned store is not one of them)."""
        for model in self._models.values():
            close_streamed_text_encoder(model)
        self._models.clear()

    # -- memory planning -----------------------------------------------------------------------

    def model_sizes(self) -> ModelSizes:
        """Sizes of every component on this device, from the files' headers (nothing is loaded)."""
        tensors: dict = {}
        for path in dict.fromkeys((self.checkpoint_path, self.video_vae_path, self.audio_vae_path)):
            tensors.update(read_header(path, "model file").tensors)  # split files: names of different components
        gemma_headers, layers = self._text_encoder_headers(tensors)
        upsampler = 0
        if self.spatial_upsampler_path:
            upsampler_tensors = read_header(self.spatial_upsampler_path, "spatial upsampler").tensors
            upsampler = tensors_bytes(upsampler_tensors, self.dtype.itemsize)
        fp8 = self.quantization is not None
        return model_sizes(tensors, self.config, gemma_headers, layers, upsampler, self.dtype.itemsize, fp8,
                           per_token_cross_adaln=self.per_token_cross_adaln,
                           diffusion_decoder=self.diffusion_decoder_config)

    def _text_encoder_headers(self, tensors: dict) -> tuple[list[dict], int]:
        """(Gemma's weight headers, its layer count); a packed file's projections join ``tensors`` (the processor's)."""
        packed = self.packed_text_encoder
        if packed is not None:
            tensors.update({name: info for name, info in packed.tensors.items() if name.startswith(PROJECTION_PREFIX)})
            return [packed.gemma_tensors()], packed.num_hidden_layers
        if not self.gemma_root:
            return [], 0
        gemma = find_gemma_files(self.gemma_root)
        headers = [read_header(path, "Gemma weights").tensors for path in gemma.weights]
        return headers, int(gemma.text_config.get("num_hidden_layers", 48))

    def _initial_memory_policy(self) -> MemoryPolicy:
        """Until a plan decides: what was asked, else keep on the CPU and low on a GPU."""
        if self.requested_memory_policy is not None:
            return self.requested_memory_policy
        return MemoryPolicy.KEEP if self.device.type == "cpu" else MemoryPolicy.LOW

    def _may_keep_models(self) -> bool:
        """Whether this generation tries ``keep``: asked for, or by default where it costs no second copy.

        By default (no policy asked for) a GPU keeps every model when they all fit together, as a large
        card does; quantized weights are left out, since they keep a second transformer for the LoRAs.
        """
        if self.requested_memory_policy is not None:
            return self.requested_memory_policy is MemoryPolicy.KEEP
        return self.device.type == "cpu" or self.quantization is None

    def plan_memory(self, request: MemoryRequest) -> MemoryPlan:
        """Decide where the weights live for ``request`` (or refuse it) and which models stay; log it."""
        free = self.free_gpu_bytes()
        plan = plan_with_policy(
            keep=self._may_keep_models(), sizes=self.model_sizes(), request=request, requested=self.offload,
            free_gpu=free, host=available_host_memory(), max_gpu_memory=self.max_gpu_memory,
            fp8=self.quantization is not None, compute_bytes=self.dtype.itemsize,
        )  # fmt: skip
        self._set_memory_policy(MemoryPolicy.KEEP if plan.keep_models else MemoryPolicy.LOW)
        if self.device.type == "cuda" or plan.offload is not OffloadMode.NONE:
            logger.info("Memory plan: %s", plan.describe())
        if self.requested_memory_policy is MemoryPolicy.KEEP and not plan.keep_models and not self._warned_keep:
            self._warned_keep = True  # once per pipeline: a server plans every job
            logger.warning("--memory-policy keep: the models do not all fit on the GPU together; each is freed "
                           "after use instead")  # fmt: skip
        return plan

    def _set_memory_policy(self, policy: MemoryPolicy) -> None:
        """Switch policy between generations; models kept under ``keep`` go when the next one cannot keep them."""
        if policy is MemoryPolicy.LOW and self.memory_policy is MemoryPolicy.KEEP and self._models:
            self._release_models()
            cleanup_memory()
        self.memory_policy = policy

    def free_gpu_bytes(self) -> int | None:
        """GPU memory this generation may use: free now plus what we hold ourselves (None without a GPU)."""
        if self.device.type != "cuda":
            return None
        free_now, _ = torch.cuda.mem_get_info(self.device)
        return free_now + torch.cuda.memory_reserved(self.device)

    def transformer_offload(self) -> OffloadMode:
        """Where the transformer's blocks live: the plan's choice, else what was asked (auto: resident)."""
        if self.plan is not None:
            return self.plan.offload
        return OffloadMode.NONE if self.offload is OffloadMode.AUTO else self.offload

    def _streamed_transformer(self, mode: OffloadMode, extra_loras: tuple) -> torch.nn.Module:
        if self._streamed is not None and self._streamed.mode is not mode:
            self._close_streamed()
        if self._streamed is None:
            for key in [k for k in self._models if k[0] == "transformer"]:
                del self._models[key]  # a resident transformer from an earlier request
            started = time.perf_counter()
            self._streamed = StreamedTransformer(
                checkpoint_path=self.checkpoint_path, config=self.config, device=self.device, dtype=self.dtype,
                configurator=self.transformer_configurator,
                mode=mode, quantization=self.quantization, loras=self.loras,
                slots=self.plan.slots if self.plan is not None else 2,
            )  # fmt: skip
            self.files_loaded.extend([self.checkpoint_path, *(lora.path for lora in self.loras)])
            self._streamed.x0_model.eval().requires_grad_(False)
            elapsed = time.perf_counter() - started
            logger.info("Loaded transformer (streamed, --offload %s) in %.1f s", mode.value, elapsed)
        self._streamed.unpark()
        self._streamed.set_extra_loras(extra_loras)
        return self._streamed.x0_model

    def _close_streamed(self) -> None:
        if self._streamed is not None:
            self._streamed.close()
            self._streamed = None

    # -- builders ---------------------------------------------------------------------------

    def _build(
        self,
        builder: SingleGPUModelBuilder,
        files: list[str],
        dtype: torch.dtype | None = None,
        device: torch.device | None = None,
    ) -> torch.nn.Module:
        self.files_loaded.extend(files)
        return builder.build(device=device or self.device, dtype=dtype or self.dtype)

    def _build_transformer(self, extra_loras: tuple[LoraPathStrengthAndSDOps, ...] = ()) -> X0Model:
        quant = prepare_quantization(self.quantization, self.device, (*self.loras, *extra_loras))
        builder = SingleGPUModelBuilder(
            model_class_configurator=self.transformer_configurator,
            model_path=self.checkpoint_path,
            model_sd_ops=_merge_sd_ops(LTXV_MODEL_COMFY_RENAMING_MAP, quant.sd_ops if quant else None),
            module_ops=quant.module_ops if quant else (),
            loras=(*self.loras, *extra_loras),
        )
        files = [self.checkpoint_path, *(lora.path for lora in builder.loras)]
        self.files_loaded.extend(files)
        # Quantized weights keep the dtype the policy chose, so load without a global cast...
        model = builder.build(device=self.device, dtype=None if quant else self.dtype)
        # ...and bring every other tensor to the compute dtype. (ltx-core's LoRA fusion also leaves
        # the weights no LoRA touches in the file's dtype, so this runs in every case.)
        for name, tensor in (*model.named_parameters(), *model.named_buffers()):
            if name.endswith(".weight_scale"):  # FP8 dequantization scales stay float32
                continue
            if tensor.is_floating_point() and tensor.dtype not in (torch.float8_e4m3fn, torch.float8_e5m2):
                tensor.data = tensor.data.to(self.dtype)
        return X0Model(model)

    def _file_builder(self, path: str, configurator: object, sd_ops: SDOps) -> SingleGPUModelBuilder:
        return SingleGPUModelBuilder(model_class_configurator=configurator, model_path=path, model_sd_ops=sd_ops)

    def _build_video_encoder(self) -> torch.nn.Module:
        configurator = FlatVideoEncoderConfigurator if self.diffusion_video_decoder else VideoEncoderConfigurator
        builder = self._file_builder(self.video_vae_path, configurator, VIDEO_ENCODER_KEYS)
        return self._build(builder, [self.video_vae_path])

    def _build_video_decoder(self) -> torch.nn.Module:
        if self.diffusion_video_decoder:
            self.files_loaded.append(self.video_vae_path)
            decoder = load_diffusion_decoder(self.video_vae_path, device=self.device, dtype=self.dtype)
            if self.compile_video_decoder:
                decoder.compile_blocks()
            return decoder
        builder = self._file_builder(self.video_vae_path, VideoDecoderConfigurator, VIDEO_DECODER_KEYS)
        return self._build(builder, [self.video_vae_path])

    def _build_audio_encoder(self) -> torch.nn.Module:
        builder = self._file_builder(self.audio_vae_path, AudioEncoderConfigurator, AUDIO_VAE_ENCODER_COMFY_KEYS_FILTER)
        return self._build(builder, [self.audio_vae_path])

    def _build_audio_decoder(self) -> torch.nn.Module:
        builder = self._file_builder(self.audio_vae_path, AudioDecoderConfigurator, AUDIO_VAE_DECODER_COMFY_KEYS_FILTER)
        return self._build(builder, [self.audio_vae_path])

    def _build_vocoder(self) -> torch.nn.Module:
        builder = self._file_builder(self.audio_vae_path, VocoderConfigurator, VOCODER_COMFY_KEYS_FILTER)
        # The vocoder's mel filters and snake activations are precision-sensitive: keep float32.
        return self._build(builder, [self.audio_vae_path], dtype=torch.float32)

    def _build_duration_head(self) -> torch.nn.Module:
        if self.duration_head_path is None:
            raise ValueError("This pipeline was created without a duration head.")
        self.files_loaded.append(self.duration_head_path)
        return load_duration_head(self.duration_head_path, device=self.device, dtype=self.dtype)

    def _build_spatial_upsampler(self) -> torch.nn.Module:
        if self.spatial_upsampler_path is None:
            raise ValueError("This pipeline was created without a spatial upsampler path.")
        builder = SingleGPUModelBuilder(
            model_class_configurator=LatentUpsamplerConfigurator, model_path=self.spatial_upsampler_path
        )
        return self._build(builder, [self.spatial_upsampler_path])

    @property
    def packed_text_encoder(self) -> PackedTextEncoder | None:
        """The packed Gemma-4 text encoder of a split (LTX-2.5) model; None for a Gemma-3 folder."""
        if self.gemma_root is None or not Path(self.gemma_root).is_file():
            return None
        return inspect_packed_text_encoder(self.gemma_root)  # the header read is cached

    def can_enhance_prompts(self) -> bool:
        """A separate enhancer was given, or the text encoder is a generative Gemma 3 (Gemma 4 unified only encodes)."""
        return self.prompt_enhancer_gemma_root is not None or self.packed_text_encoder is None

    def prompt_enhancer_name(self) -> str:
        """The component that rewrites prompts: the separate enhancer when given, else the text encoder."""
        return "prompt_enhancer" if self.prompt_enhancer_gemma_root is not None else "text_encoder"

    def _build_text_encoder(self) -> torch.nn.Module:
        packed = self.packed_text_encoder
        if packed is not None:
            builder, weights = gemma4_builder(packed), [str(packed.path)]
        else:
            files = self._gemma_files()
            builder, weights = _gemma3_builder(files), list(files.weights)
        if self._streams_text_encoder():
            self.files_loaded.extend(weights)
            slots = self.plan.slots if self.plan is not None else 2
            return build_streamed_text_encoder(builder, device=self.device, dtype=self.dtype, slots=slots)
        return self._build(builder, weights)

    def _build_prompt_enhancer(self) -> torch.nn.Module:
        """The separate Gemma that rewrites prompts (--prompt-enhancer-gemma-root), loaded whole: Gemma 3 as the
        text encoder is built, a dense Gemma 4 by transformers."""
        if self.prompt_enhancer_gemma_root is None:
            raise ValueError("This pipeline was created without a prompt enhancer (prompt_enhancer_gemma_root).")
        folder = inspect_prompt_enhancer(self.prompt_enhancer_gemma_root)
        if folder.family == GEMMA4:
            self.files_loaded.extend(sorted(str(p) for p in folder.root.glob("*.safetensors")))
            return build_gemma4_enhancer(folder.root, self.device, self.dtype)
        files = find_gemma_files(folder.root)
        return self._build(_gemma3_builder(files), list(files.weights))

    def _streams_text_encoder(self) -> bool:
        """Gemma by layer when the plan says it does not fit, or for an explicit cpu/disk on the CPU (the tests)."""
        if self.plan is not None and self.plan.stream_text_encoder:
            return True
        return self.device.type == "cpu" and self.offload in (OffloadMode.CPU, OffloadMode.DISK)

    def _build_embeddings_processor(self) -> torch.nn.Module:
        from ltx_core.text_encoders.gemma import EMBEDDINGS_PROCESSOR_KEY_OPS

        packed = self.packed_text_encoder
        if packed is not None:  # config and connectors from the transformer file, projections from the encoder's
            builder = embeddings_processor_builder(self.checkpoint_path, packed)
            files = [self.checkpoint_path, str(packed.path)]
        else:
            gemma = self._gemma_files()
            configurator = EmbeddingsProcessorFromConfig(gemma.hidden_size, gemma.num_hidden_states)
            builder = self._file_builder(self.checkpoint_path, configurator, EMBEDDINGS_PROCESSOR_KEY_OPS)
            files = [self.checkpoint_path]
        # Kept on the host when staged: prompts.py moves one part at a time to the device.
        device = torch.device("cpu") if self.stages_embeddings() else None
        return self._build(builder, files, device=device)

    def stages_embeddings(self) -> bool:
        """The plan has no room for the whole embeddings processor on the device at once."""
        return self.plan is not None and self.plan.stage_embeddings

    def _gemma_files(self):  # noqa: ANN202
        if self.gemma_root is None:
            raise ValueError("This pipeline was created without a Gemma directory (gemma_root).")
        return find_gemma_files(self.gemma_root)


def _gemma3_builder(files: GemmaFiles) -> SingleGPUModelBuilder:
    """Builds ltx-core's ``GemmaTextEncoder`` from a Gemma-3 folder (config.json, shards, tokenizer, processor)."""
    key_ops, module_ops = gemma_text_encoder_ops(files)
    return SingleGPUModelBuilder(
        model_class_configurator=GemmaTextEncoderFromConfig,
        model_path=files.weights,
        model_sd_ops=key_ops,
        module_ops=module_ops,
        model_loader=GemmaDirectoryLoader(files.config),
    )
