"""Memory estimates for a request, from the files' headers alone (nothing is loaded).

Weights are counted exactly (tensor shapes from the safetensors headers, in the dtype they will
have on the device). Activations are modelled per token from the transformer's widths:

* every pass keeps its transformer state between blocks: the hidden states, the per-token AdaLN
  coefficients (6 per token, 9 with cross-attention AdaLN), the embedded timestep, the RoPE
  cos/sin, and the audio<->video cross-attention coefficients and embeddings: about
  ``PERSISTENT_WIDTHS`` x the model width per token;
* the block being computed adds its temporaries: attention (norms, q, k, v, their RoPE'd copies,
  the output) or the feed-forward (4x wide projection and its GELU), ``ATTENTION_WIDTHS`` /
  ``FEED_FORWARD_WIDTHS`` x the width per token; the feed-forward can run in token chunks.

Fitted to the real peaks on the H200 (full-size transformer streamed, 2026-12-02): the stage-1
step (6 144 tokens, 4 passes) took 2.3 GiB beyond the weights, 2.2 GiB with the feed-forward in
chunks; the stage-2 pass (24 576 tokens) 4.6 GiB, and more than 3.1 GiB with its feed-forward in
chunks (it ran out under a 6 GiB cap). That fits ~14 widths of state per token, ~11 for the
feed-forward's temporaries (its 4x wide projection and GELU output) and ~7 for the attention's.
The state was counted on the CPU too (``benchmarks/activation_widths.py``, live tensors, real
widths): 12.5 widths per token, 5.2 with one timestep row per sample (the per-token AdaLN
coefficients are most of it; the rest is the hidden states, RoPE tables and the prompt).
``SAFETY`` covers the rest and the allocator's fragmentation. The real peak is logged per stage.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from ltx_core.loader import SDOps
from ltx_core.model.audio_vae import AUDIO_VAE_DECODER_COMFY_KEYS_FILTER, VOCODER_COMFY_KEYS_FILTER

from ltx_pipelines.memory.host import GIB
from ltx_pipelines.models.key_layouts import VIDEO_DECODER_KEYS, VIDEO_ENCODER_KEYS
from ltx_pipelines.models.ltx25.diffusion_decoder import DiffusionDecoderConfig
from ltx_pipelines.models.ltx25.diffusion_vae_file import decoder_key

TRANSFORMER_PREFIX = "model.diffusion_model."
BLOCKS_PREFIX = TRANSFORMER_PREFIX + "transformer_blocks."
#: The text connectors live under the transformer's prefix in the checkpoint but belong to the embeddings
#: processor (1.3 GiB in LTX-2): the transformer's modules do not hold them.
CONNECTOR_MARK = "embeddings_connector."
#: The embeddings processor's feature extractor (the 49-layer aggregate projection, 1.3 GiB in LTX-2).
FEATURE_EXTRACTOR_PREFIX = "text_embedding_projection."
PERSISTENT_WIDTHS = 15
#: LTX-2.5 adds per-token rows to the state: the audio<->video cross-attention AdaLN's scale/shift (4 per token,
#: computed from each modality's own per-token timesteps) instead of one row per sample. One timestep row per
#: sample (compact) makes them one row again.
OWN_CROSS_ADALN_WIDTHS = 4
#: The same with one timestep row per sample (all tokens at one noise level).
COMPACT_PERSISTENT_WIDTHS = 6
ATTENTION_WIDTHS = 7
FEED_FORWARD_WIDTHS = 11
SAFETY = 1.10
#: Bytes of GPU memory the VAE decoder needs per output voxel (frame x pixel) of what it decodes at once.
#: Its last stage runs 128 channels at a quarter of the resolution (16 bytes per voxel in bf16 for each
#: tensor) and a causal convolution there holds its input, padded copies, its output and the residual.
#: Measured on the H200 (full-size decoder): 134 at 512x512x33, 240 at 256x256x17 (fixed costs).
VAE_BYTES_PER_VOXEL = 144
#: ltx-core's tiled decode blends each temporal slice of tiles into whole-frame buffers (3 channels, bf16):
#: while a tile decodes it holds the slice and its weights plus the previous slice and its weights (24 bytes
#: per whole-frame voxel); when a slice is handed out, also the normalised copy and the uint8 conversion's
#: temporaries (~42). Measured: 2.80 GiB for 1536x1024 in 384 px x 48-frame tiles, 3.67 GiB in 512 x 64.
VAE_BLEND_HELD_BYTES = 24
VAE_BLEND_YIELD_BYTES = 42
#: GPU memory we never plan to use: allocator slack, cuBLAS/cuDNN workspaces.
GPU_RESERVE = int(0.75 * GIB)

_DTYPE_BYTES = {"F64": 8, "F32": 4, "BF16": 2, "F16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "I64": 8, "I32": 4, "U8": 1}
_FP8_TARGETS = (".to_q.weight", ".to_k.weight", ".to_v.weight", ".to_out.0.weight", "ff.net.0.proj.weight",
                "ff.net.2.weight")  # fmt: skip


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def device_bytes(dtype: str, shape: tuple[int, ...], compute_bytes: int) -> int:
    """Bytes of one stored tensor once loaded: float tensors of 2+ bytes take the compute dtype, others stay."""
    stored = _DTYPE_BYTES.get(dtype, 2)
    floating = dtype.startswith(("F", "BF")) and stored >= 2
    return _numel(shape) * (compute_bytes if floating else stored)


def tensors_bytes(tensors: dict[str, tuple[str, tuple[int, ...]]], compute_bytes: int) -> int:
    """Bytes of every tensor of a header once loaded (e.g. the upsampler's)."""
    return sum(device_bytes(dtype, shape, compute_bytes) for dtype, shape in tensors.values())


@dataclass(frozen=True)
class TransformerSizes:
    """Bytes of the transformer on the device: all blocks, the largest block, everything else.

    The text connectors under the same prefix are not the transformer's (see ``ComponentSizes.connectors``).
    """

    blocks: int
    block: int
    rest: int
    num_blocks: int
    video_width: int
    audio_width: int
    #: The cross-attention AdaLN holds per-token rows (LTX-2.5) rather than one per sample.
    per_token_cross_adaln: bool = False

    @property
    def total(self) -> int:
        return self.blocks + self.rest


def transformer_sizes(tensors: dict[str, tuple[str, tuple[int, ...]]], config: dict, compute_bytes: int,
                      fp8: bool = False, per_token_cross_adaln: bool = False) -> TransformerSizes:  # fmt: skip
    """Sizes of the transformer from a checkpoint header; floating tensors count in the compute dtype."""
    per_block: dict[int, int] = {}
    rest = 0
    for name, (dtype, shape) in tensors.items():
        if not name.startswith(TRANSFORMER_PREFIX) or CONNECTOR_MARK in name:
            continue
        size = device_bytes(dtype, shape, compute_bytes)
        if name.startswith(BLOCKS_PREFIX):
            if fp8 and name.endswith(_FP8_TARGETS) and len(shape) == 2:
                size = _numel(shape) + shape[0] * 4  # FP8 weight + one float32 scale per output channel
            index = int(name[len(BLOCKS_PREFIX) :].split(".", 1)[0])
            per_block[index] = per_block.get(index, 0) + size
        else:
            rest += size
    t = config.get("transformer", {})
    return TransformerSizes(
        blocks=sum(per_block.values()),
        block=max(per_block.values(), default=0),
        rest=rest,
        num_blocks=len(per_block),
        video_width=int(t.get("num_attention_heads", 32)) * int(t.get("attention_head_dim", 128)),
        audio_width=int(t.get("audio_num_attention_heads", 32)) * int(t.get("audio_attention_head_dim", 64)),
        per_token_cross_adaln=per_token_cross_adaln,
    )


def bytes_where(tensors: dict[str, tuple[str, tuple[int, ...]]], selected: Callable[[str], bool],
                compute_bytes: int) -> int:  # fmt: skip
    """Bytes of the tensors whose names ``selected`` accepts, once loaded."""
    return sum(device_bytes(dtype, shape, compute_bytes) for name, (dtype, shape) in tensors.items() if selected(name))


def component_bytes(tensors: dict[str, tuple[str, tuple[int, ...]]], keys: SDOps, compute_bytes: int) -> int:
    """Bytes of the tensors an ltx-core key filter selects (a VAE, the vocoder, ...)."""
    return bytes_where(tensors, lambda name: keys.apply_to_key(name) is not None, compute_bytes)


@dataclass(frozen=True)
class ComponentSizes:
    """Bytes of the smaller components, each loaded on its own under the default memory policy."""

    video_decoder: int
    video_encoder: int
    audio_decoder: int
    upsampler: int
    feature_extractor: int = 0  # the embeddings processor's two parts, which can run one after the other
    connectors: int = 0

    @classmethod
    def from_header(cls, tensors: dict, compute_bytes: int, upsampler_bytes: int = 0) -> "ComponentSizes":
        return cls(
            video_decoder=component_bytes(tensors, VIDEO_DECODER_KEYS, compute_bytes),
            video_encoder=component_bytes(tensors, VIDEO_ENCODER_KEYS, compute_bytes),
            audio_decoder=component_bytes(tensors, AUDIO_VAE_DECODER_COMFY_KEYS_FILTER, compute_bytes)
            + component_bytes(tensors, VOCODER_COMFY_KEYS_FILTER, 4),
            upsampler=upsampler_bytes,
            feature_extractor=bytes_where(tensors, lambda name: name.startswith(FEATURE_EXTRACTOR_PREFIX), compute_bytes),
            connectors=bytes_where(tensors, lambda name: name.startswith(TRANSFORMER_PREFIX) and CONNECTOR_MARK in name,
                                   compute_bytes),  # fmt: skip
        )

    @property
    def embeddings_processor(self) -> int:
        return self.feature_extractor + self.connectors

    @property
    def largest(self) -> int:
        return max(self.video_decoder, self.video_encoder + self.upsampler, self.audio_decoder)


@dataclass(frozen=True)
class TextEncoderSizes:
    """Bytes of the Gemma text encoder: everything, one decoder layer, the layer count, the token embedding.

    The embedding is counted once: the tied lm_head of prompt enhancement shares its tensor.
    """

    total: int
    layer: int
    num_layers: int
    embedding: int

    @property
    def rest(self) -> int:
        """What stays on the device when streamed by layer: all but the layers and the (host) embedding."""
        return self.total - self.layer * self.num_layers - self.embedding

    def streamed(self, slots: int) -> int:
        """Weights on the device when streamed: the rest and a ring of ``slots`` layers."""
        return self.rest + slots * self.layer


def text_encoder_sizes(headers: list[dict], num_layers: int, compute_bytes: int) -> TextEncoderSizes:
    """From the Gemma weight files' headers: layers are the tensors under ``...layers.<i>.``."""
    total, embedding, per_layer = 0, 0, {}
    for tensors in headers:
        for name, (dtype, shape) in tensors.items():
            size = device_bytes(dtype, shape, compute_bytes)
            total += size
            if "vision" in name:
                continue
            if name.endswith("embed_tokens.weight"):
                embedding += size
            marker = ".layers."
            if marker in name:
                index = name.split(marker, 1)[1].split(".", 1)[0]
                if index.isdigit():
                    per_layer[int(index)] = per_layer.get(int(index), 0) + size
    return TextEncoderSizes(total=total, layer=max(per_layer.values(), default=0), num_layers=num_layers,
                            embedding=embedding)  # fmt: skip


@dataclass(frozen=True)
class ModelSizes:
    transformer: TransformerSizes
    components: ComponentSizes
    text_encoder: TextEncoderSizes
    #: LTX-2.5's diffusion video decoder's architecture (None: the convolutional decoder): its tiles are planned
    #: from it (``diffusion_tiling.tiles_for_budget``) rather than from ``VAE_BYTES_PER_VOXEL``.
    diffusion_decoder: DiffusionDecoderConfig | None = None


def diffusion_decoder_bytes(tensors: dict[str, tuple[str, tuple[int, ...]]], compute_bytes: int) -> int:
    """The diffusion decoder's weights once loaded: what it keeps of the file (no ``coarse_*``, no encoder)."""
    return bytes_where(tensors, lambda name: decoder_key(name) is not None, compute_bytes)


def pass_state_bytes(video_tokens: int, audio_tokens: int, sizes: TransformerSizes, compute_bytes: int,
                     compact: bool = False) -> int:  # fmt: skip
    """One pass's transformer state kept between blocks (``compact``: timesteps not repeated per token)."""
    if compact:
        widths = COMPACT_PERSISTENT_WIDTHS
    else:
        widths = PERSISTENT_WIDTHS + (OWN_CROSS_ADALN_WIDTHS if sizes.per_token_cross_adaln else 0)
    return widths * compute_bytes * (video_tokens * sizes.video_width + audio_tokens * sizes.audio_width)


def block_temporaries(video_tokens: int, sizes: TransformerSizes, compute_bytes: int, ff_chunk: int | None) -> int:
    """What the block being computed adds for one pass (feed-forward in chunks of ``ff_chunk`` tokens)."""
    ff_tokens = video_tokens if ff_chunk is None else min(video_tokens, ff_chunk)
    attention = ATTENTION_WIDTHS * video_tokens
    feed_forward = FEED_FORWARD_WIDTHS * ff_tokens
    return max(attention, feed_forward) * sizes.video_width * compute_bytes


@dataclass(frozen=True)
class StageLoad:
    """One denoising stage: tokens per pass and how many passes run per step."""

    name: str
    video_tokens: int
    audio_tokens: int
    passes: int


def stage_activation_bytes(stage: StageLoad, sizes: TransformerSizes, compute_bytes: int, *,
                           batched: bool, ff_chunk: int | None, compact: bool = False) -> int:  # fmt: skip
    """Peak activations of a stage: every pass's state, plus one block's temporaries per pass computed at once."""
    state = stage.passes * pass_state_bytes(stage.video_tokens, stage.audio_tokens, sizes, compute_bytes, compact)
    temporaries = block_temporaries(stage.video_tokens, sizes, compute_bytes, ff_chunk)
    return int(SAFETY * (state + temporaries * (stage.passes if batched else 1)))


def vae_decode_bytes(tile_frames: int, tile_height: int, tile_width: int, frame_height: int | None = None,
                     frame_width: int | None = None) -> int:  # fmt: skip
    """GPU bytes of decoding one tile; with the frame size, tiled decoding's whole-frame blend buffers too."""
    tile = VAE_BYTES_PER_VOXEL * tile_frames * tile_height * tile_width
    if frame_height is None or frame_width is None:
        return tile
    frame_voxels = tile_frames * frame_height * frame_width
    return max(VAE_BLEND_HELD_BYTES * frame_voxels + tile, VAE_BLEND_YIELD_BYTES * frame_voxels)


__all__ = [
    "GPU_RESERVE",
    "ComponentSizes",
    "ModelSizes",
    "StageLoad",
    "TextEncoderSizes",
    "TransformerSizes",
    "block_temporaries",
    "bytes_where",
    "component_bytes",
    "device_bytes",
    "diffusion_decoder_bytes",
    "model_sizes",
    "pass_state_bytes",
    "stage_activation_bytes",
    "tensors_bytes",
    "text_encoder_sizes",
    "transformer_sizes",
    "vae_decode_bytes",
]


def model_sizes(
    checkpoint_tensors: dict,
    config: dict,
    gemma_headers: list[dict],
    gemma_layers: int,
    upsampler_bytes: int,
    compute_bytes: int,
    fp8: bool,
    per_token_cross_adaln: bool = False,
    diffusion_decoder: DiffusionDecoderConfig | None = None,
) -> "ModelSizes":
    """Every size the pre-flight needs, from headers already read (``diffusion_decoder``: the video VAE file's
    diffusion decoder config, whose weights then replace the convolutional decoder's count)."""
    components = ComponentSizes.from_header(checkpoint_tensors, compute_bytes, upsampler_bytes)
    if diffusion_decoder is not None:
        components = replace(components, video_decoder=diffusion_decoder_bytes(checkpoint_tensors, compute_bytes))
    return ModelSizes(
        transformer=transformer_sizes(checkpoint_tensors, config, compute_bytes, fp8=fp8,
                                      per_token_cross_adaln=per_token_cross_adaln),
        components=components,
        text_encoder=text_encoder_sizes(gemma_headers, gemma_layers, compute_bytes),
        diffusion_decoder=diffusion_decoder,
    )
