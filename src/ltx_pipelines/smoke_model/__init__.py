"""Tiny random-weight LTX-2 bundle in the real on-disk format.

No machine that runs our tests can download the real weights, so this module
writes a miniature bundle that the *real* loading code reads: one LTX checkpoint
``.safetensors`` with its ``config`` metadata and the real key prefixes, a
distilled twin of it, a spatial upsampler, a distilled LoRA and an IC-LoRA in
ComfyUI key naming, and a Gemma directory (config, weights, a sentencepiece
tokenizer trained on the fly, processor files).

THE WEIGHTS ARE RANDOM: every video made with this bundle is noise. It proves
that the install and the pipelines work end to end, nothing more.

Usage::

    python -m ltx_pipelines.smoke_model OUT_DIR [--seed 0] [--real-channels] [--attention-heads 4]

``--real-channels`` writes the same miniature model with the real latent channel counts
(128 video channels, 8 audio z-channels) and a few transformer blocks: code that hard-codes
those counts (the reference ltx-pipelines 1.0.0, run by the parity test) can then run on it.
``--attention-heads 4`` gives video and audio 4 heads (2 by default): torchrun needs the number of
ranks to divide them, so this is the smoke model 4 ranks can run.
``--model-version 2.3`` writes the same files with an LTX-2.3 checkpoint (``smoke_model.ltx23``);
``--model-version 2.5`` the LTX-2.5 download's split files (``smoke_model.ltx25``).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import shutil
import struct
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from safetensors.torch import save_file as _safetensors_save_file

from ltx_pipelines.models.versions import parse_version

logger = logging.getLogger(__name__)


def save_file(tensors: dict[str, torch.Tensor], filename: str, metadata: dict[str, str] | None = None) -> None:
    """safetensors' save_file, but byte-reproducible: the header's metadata is put in sorted order.

    (safetensors writes the metadata from a hash map, so its order changes from one call to the next.)
    """
    _safetensors_save_file(tensors, filename, metadata=metadata)
    with open(filename, "r+b") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
        if "__metadata__" not in header:
            return
        ordered = {"__metadata__": dict(sorted(header.pop("__metadata__").items())), **header}
        text = json.dumps(ordered, separators=(",", ":")).encode()
        if len(text) > length:  # cannot happen for ASCII metadata; keep safetensors' own header then
            return
        f.seek(8)
        f.write(text.ljust(length, b" "))


SMOKE_NOTICE = (
    "This is the ltx-pipelines SMOKE MODEL: tiny random weights in the real LTX-2 file format. "
    "Anything generated with it is random noise; it only proves that the install works."
)

# Sizes of the miniature model. Kept in one place so tests and docs can refer to them.
GEMMA_HIDDEN = 64
GEMMA_LAYERS = 2
VIDEO_LATENT_CHANNELS = 16
AUDIO_Z_CHANNELS = 2
AUDIO_MEL_BINS = 64  # the vocoder hard-codes 2 x 64 mel input channels
TRANSFORMER_LAYERS = 30  # enough blocks for the default STG block (29) to exist
LORA_RANK = 4
VIDEO_INNER_DIM = 32  # transformer width: attention heads x head dim
AUDIO_INNER_DIM = 16


@dataclass(frozen=True)
class SmokeSizes:
    """What differs between the default smoke model and its real-channel twin."""

    video_latent_channels: int = VIDEO_LATENT_CHANNELS
    audio_z_channels: int = AUDIO_Z_CHANNELS
    transformer_layers: int = TRANSFORMER_LAYERS
    #: The video decoder adds seeded noise to the latent and is conditioned on a timestep (as LTX-2's is);
    #: a pipeline that hands the decoder another generator state then gives other frames.
    decoder_noise: bool = False
    #: Attention heads of video and audio (the widths stay 32 and 16): torchrun can split tokens over as
    #: many ranks as divide them, so 4 lets a 4-rank run shard its tokens.
    attention_heads: int = 2

    @property
    def audio_token_channels(self) -> int:
        """Channels of one audio latent token: z-channels x latent mel bins (mel bins / 4)."""
        return self.audio_z_channels * AUDIO_MEL_BINS // 4


SMOKE_SIZES = SmokeSizes()
#: LTX-2's real latent channel counts, for code that hard-codes them. Few blocks keep it fast: pass
#: STG blocks explicitly (the default block 29 does not exist in it).
REAL_CHANNEL_SIZES = SmokeSizes(
    video_latent_channels=128, audio_z_channels=8, transformer_layers=4, decoder_noise=True
)


@dataclass(frozen=True)
class SmokeBundle:
    """Paths of a written smoke bundle."""

    root: Path
    checkpoint: Path
    distilled_checkpoint: Path
    spatial_upsampler: Path
    distilled_lora: Path
    ic_lora: Path
    gemma_root: Path

    @classmethod
    def at(cls, root: Path) -> "SmokeBundle":
        root = Path(root)
        return cls(
            root=root,
            checkpoint=root / "ltx-2-smoke-dev.safetensors",
            distilled_checkpoint=root / "ltx-2-smoke-distilled.safetensors",
            spatial_upsampler=root / "ltx-2-smoke-spatial-upscaler-x2.safetensors",
            distilled_lora=root / "ltx-2-smoke-distilled-lora.safetensors",
            ic_lora=root / "ltx-2-smoke-ic-lora.safetensors",
            gemma_root=root / "gemma",
        )

    def exists(self) -> bool:
        marker = self.root / "bundle.json"
        return marker.is_file() and all(
            p.exists()
            for p in (
                self.checkpoint,
                self.distilled_checkpoint,
                self.spatial_upsampler,
                self.distilled_lora,
                self.ic_lora,
                self.gemma_root / "config.json",
            )
        )


# ---------------------------------------------------------------------------
# Configs (the same JSON layout as the real checkpoints' `config` metadata)
# ---------------------------------------------------------------------------


def transformer_config(sizes: SmokeSizes = SMOKE_SIZES) -> dict:
    """The `transformer` section: the real LTX-2 19B layout, miniature sizes."""
    from ltx_pipelines.models.ltx25.transformer import required_config_values  # the architecture's fixed values

    return {
        **required_config_values(),
        "num_attention_heads": sizes.attention_heads,
        "attention_head_dim": VIDEO_INNER_DIM // sizes.attention_heads,
        "in_channels": sizes.video_latent_channels,
        "out_channels": sizes.video_latent_channels,
        "num_layers": sizes.transformer_layers,
        "cross_attention_dim": 32,
        "caption_channels": GEMMA_HIDDEN,
        "audio_num_attention_heads": sizes.attention_heads,
        "audio_attention_head_dim": AUDIO_INNER_DIM // sizes.attention_heads,
        "audio_in_channels": sizes.audio_token_channels,
        "audio_out_channels": sizes.audio_token_channels,
        "audio_cross_attention_dim": 16,
        "positional_embedding_theta": 10000.0,
        "positional_embedding_max_pos": [20, 2048, 2048],
        "audio_positional_embedding_max_pos": [20],
        "timestep_scale_multiplier": 1000,
        "av_ca_timestep_scale_multiplier": 1000,
        "rope_type": "split",
        "frequencies_precision": "float64",
        "connector_num_attention_heads": 2,
        "connector_attention_head_dim": GEMMA_HIDDEN // 2,
        "connector_num_layers": 1,
        "connector_positional_embedding_max_pos": [4096],
    }


def video_vae_config(sizes: SmokeSizes = SMOKE_SIZES) -> dict:
    # patch 4 x three 2x2x2 compressions = 32x spatial, 8x temporal, as in the real VAE.
    return {
        "dims": 3,
        "in_channels": 3,
        "out_channels": 3,
        "latent_channels": sizes.video_latent_channels,
        "patch_size": 4,
        "norm_layer": "pixel_norm",
        "latent_log_var": "uniform",
        "spatial_padding_mode": "zeros",
        "causal_decoder": False,
        "timestep_conditioning": sizes.decoder_noise,
        "decoder_base_channels": 8,
        "encoder_blocks": [
            ["res_x", {"num_layers": 1}],
            ["compress_all", {}],
            ["compress_all", {}],
            ["compress_all", {}],
        ],
        "decoder_blocks": [
            ["res_x", {"num_layers": 1}],
            ["compress_all", {"multiplier": 2}],
            ["compress_all", {"multiplier": 2}],
            ["compress_all", {"multiplier": 2}],
        ],
    }


def audio_vae_config(sizes: SmokeSizes = SMOKE_SIZES) -> dict:
    return {
        "model": {
            "params": {
                "sampling_rate": 16000,
                "ddconfig": {
                    # per-channel statistics are sized by `ch` and must equal z_channels * mel_bins / 4
                    "ch": sizes.audio_token_channels,
                    "out_ch": 2,
                    "in_channels": 2,
                    "ch_mult": [1, 1, 2],
                    "num_res_blocks": 1,
                    "attn_resolutions": [],
                    "resolution": 256,
                    "z_channels": sizes.audio_z_channels,
                    "double_z": True,
                    "mel_bins": AUDIO_MEL_BINS,
                    "norm_type": "pixel",
                    "causality_axis": "height",
                    "mid_block_add_attention": False,
                    "dropout": 0.0,
                },
            }
        },
        "preprocessing": {
            "stft": {"hop_length": 160, "filter_length": 1024, "causal": True},
            "mel": {"n_mel_channels": AUDIO_MEL_BINS},
        },
    }


def vocoder_config() -> dict:
    return {
        "resblock": "1",
        "stereo": True,
        "resblock_kernel_sizes": [3],
        "resblock_dilation_sizes": [[1, 3, 5]],
        "upsample_rates": [6, 5, 2, 2, 2],
        "upsample_kernel_sizes": [16, 15, 8, 4, 4],
        "upsample_initial_channel": 32,
        "output_sampling_rate": 24000,
    }


def ltx_config(sizes: SmokeSizes = SMOKE_SIZES, model_version: str = "2.0.0") -> dict:
    """The checkpoint's ``config``: LTX-2's sections; from version 2.3 on, 2.3's transformer switches and its vocoder
    with bandwidth extension."""
    from ltx_pipelines.smoke_model.ltx23 import is_ltx23_layout, ltx23_transformer_config, ltx23_vocoder_config

    ltx23 = is_ltx23_layout(model_version)
    return {
        "transformer": ltx23_transformer_config(sizes) if ltx23 else transformer_config(sizes),
        "vae": video_vae_config(sizes),
        "audio_vae": audio_vae_config(sizes),
        "vocoder": ltx23_vocoder_config() if ltx23 else vocoder_config(),
    }


def upsampler_config(sizes: SmokeSizes = SMOKE_SIZES) -> dict:
    return {
        "in_channels": sizes.video_latent_channels,
        "mid_channels": 32,
        "num_blocks_per_stage": 1,
        "dims": 3,
        "spatial_upsample": True,
        "temporal_upsample": False,
        "spatial_scale": 2.0,
        "rational_resampler": False,
    }


# ---------------------------------------------------------------------------
# Deterministic random initialisation
# ---------------------------------------------------------------------------


def _init_tensor(name: str, shape: torch.Size, generator: torch.Generator) -> torch.Tensor:
    """A sensible random value for a parameter, chosen by its name and shape."""
    if "std-of-means" in name:
        return 0.5 + torch.rand(shape, generator=generator)
    if "mean-of-means" in name:
        return 0.1 * torch.randn(shape, generator=generator)
    if name.endswith("timestep_scale_multiplier"):
        return torch.full(shape, 1000.0)
    if name.endswith(".bias") or name.endswith("alpha") or name.endswith("beta"):
        return 0.01 * torch.randn(shape, generator=generator)
    if len(shape) == 0:
        return torch.ones(shape)
    if len(shape) == 1:  # norm weights
        return 1.0 + 0.01 * torch.randn(shape, generator=generator)
    if "scale_shift_table" in name:
        return 0.1 * torch.randn(shape, generator=generator)
    fan_in = max(1, shape[1:].numel()) if len(shape) > 1 else shape[0]
    return torch.randn(shape, generator=generator) / fan_in**0.5


def _random_state_dict(module: torch.nn.Module, generator: torch.Generator) -> dict[str, torch.Tensor]:
    sd = module.state_dict()
    return {name: _init_tensor(name, value.shape, generator).contiguous() for name, value in sorted(sd.items())}


def _bf16(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Real LTX-2 files are stored in bfloat16 (and ltx-core's LoRA fusion expects it)."""
    return {k: v.to(torch.bfloat16).contiguous() for k, v in tensors.items()}


def _meta_build(factory: object, config: dict) -> torch.nn.Module:
    with torch.device("meta"):
        return factory.from_config(config)


def module_layout(
    module: torch.nn.Module, prefix: str, statistics_prefix: str | None = None
) -> list[tuple[str, torch.Size, bool]]:
    """A module's tensors as (name, shape, stored?), sorted, under ``prefix``; a VAE's latent statistics go under
    ``statistics_prefix`` instead (None: listed but not stored, another part of the file holds them)."""
    layout = []
    for key, value in sorted(module.state_dict().items()):
        if key.startswith("per_channel_statistics."):
            stored = statistics_prefix is not None
            layout.append(((statistics_prefix if stored else prefix) + key, value.shape, stored))
        else:
            layout.append((prefix + key, value.shape, True))
    return layout


def random_tensors(layout: list[tuple[str, torch.Size, bool]], seed: int) -> dict[str, torch.Tensor]:
    """Seeded random values for a layout's stored tensors (drawn in layout order, unstored ones included)."""
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for name, shape, stored in layout:
        value = _init_tensor(name, shape, generator).contiguous()
        if stored:
            tensors[name] = value
    return tensors


def checkpoint_layout(config: dict, gemma_hidden: int, gemma_layers: int) -> list[tuple[str, torch.Size, bool]]:
    """Every tensor of an LTX-2 checkpoint with this config: (name, shape, stored?), in order.

    The decoders' copies of the latent statistics are not stored (the encoders' are) but listed, so
    that seeded random draws stay in the order the smoke bundle was made with.
    Shared by the smoke model and the full-size random bundles of the benchmarks.
    """
    from ltx_core.model.audio_vae import AudioDecoderConfigurator, AudioEncoderConfigurator, VocoderConfigurator
    from ltx_core.model.transformer import LTXModelConfigurator
    from ltx_core.model.video_vae import VideoDecoderConfigurator, VideoEncoderConfigurator
    from ltx_core.text_encoders.gemma.embeddings_connector import (
        AudioEmbeddings1DConnectorConfigurator,
        Embeddings1DConnectorConfigurator,
    )

    layout: list[tuple[str, torch.Size, bool]] = []

    def add(module: torch.nn.Module, prefix: str, statistics_prefix: str | None = None) -> None:
        layout.extend(module_layout(module, prefix, statistics_prefix))

    add(_meta_build(LTXModelConfigurator, config), "model.diffusion_model.")
    add(_meta_build(Embeddings1DConnectorConfigurator, config), "model.diffusion_model.video_embeddings_connector.")
    add(_meta_build(AudioEmbeddings1DConnectorConfigurator, config), "model.diffusion_model.audio_embeddings_connector.")
    add(_text_projection(config, gemma_hidden, gemma_layers), "text_embedding_projection.")
    add(_meta_build(VideoEncoderConfigurator, config), "vae.encoder.", "vae.")
    add(_meta_build(VideoDecoderConfigurator, config), "vae.decoder.", None)  # statistics shared with the encoder
    add(_meta_build(AudioEncoderConfigurator, config), "audio_vae.encoder.", "audio_vae.")
    add(_meta_build(AudioDecoderConfigurator, config), "audio_vae.decoder.", None)
    add(_meta_build(VocoderConfigurator, config), "vocoder.")
    return layout


def _text_projection(config: dict, gemma_hidden: int, gemma_layers: int) -> torch.nn.Module:
    """The checkpoint's text projection, as the loader builds it from the config: one ``aggregate_embed`` (LTX-2)
    or a video and an audio ``*_aggregate_embed`` with biases (LTX-2.3's V2 text path)."""
    from ltx_pipelines.models.gemma import EmbeddingsProcessorFromConfig

    with torch.device("meta"):
        return EmbeddingsProcessorFromConfig(gemma_hidden, gemma_layers + 1).feature_extractor(config["transformer"])


def ltx_checkpoint_tensors(
    seed: int, sizes: SmokeSizes = SMOKE_SIZES, model_version: str = "2.0.0"
) -> dict[str, torch.Tensor]:
    """All tensors of an LTX-2 (or, from 2.3 on, LTX-2.3) checkpoint, under the real key prefixes.

    Random values; a few of the 2.3 vocoder's are then replaced (``ltx23.bwe_vocoder_values``), after the draws, so
    that every other tensor keeps the value it is drawn with."""
    from ltx_pipelines.smoke_model.ltx23 import bwe_vocoder_values, is_ltx23_layout

    config = ltx_config(sizes, model_version)
    tensors = random_tensors(checkpoint_layout(config, GEMMA_HIDDEN, GEMMA_LAYERS), seed)
    if is_ltx23_layout(model_version):
        tensors.update(bwe_vocoder_values(config, tensors))
    return tensors


def write_ltx_checkpoint(
    path: Path, seed: int, model_version: str, distilled: bool, sizes: SmokeSizes = SMOKE_SIZES
) -> None:
    tensors = ltx_checkpoint_tensors(seed, sizes, model_version)
    metadata = {
        "config": json.dumps(ltx_config(sizes, model_version), sort_keys=True),
        "model_version": model_version,
        "distilled": "true" if distilled else "false",
        "smoke_model": SMOKE_NOTICE,
    }
    save_file(_bf16(tensors), str(path), metadata=metadata)


def write_upsampler(path: Path, seed: int, sizes: SmokeSizes = SMOKE_SIZES) -> None:
    from ltx_core.model.upsampler import LatentUpsamplerConfigurator

    generator = torch.Generator().manual_seed(seed)
    module = _meta_build(LatentUpsamplerConfigurator, upsampler_config(sizes))
    metadata = {"config": json.dumps(upsampler_config(sizes), sort_keys=True), "smoke_model": SMOKE_NOTICE}
    save_file(_bf16(_random_state_dict(module, generator)), str(path), metadata=metadata)


LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0", "ff.net.0.proj", "ff.net.2")


def write_lora(
    path: Path,
    seed: int,
    scale: float,
    extra_metadata: dict[str, str] | None = None,
    sizes: SmokeSizes = SMOKE_SIZES,
    model_version: str = "2.0.0",
) -> None:
    """A LoRA for the smoke transformer, in ComfyUI naming (``diffusion_model.`` prefix)."""
    from ltx_core.model.transformer import LTXModelConfigurator

    generator = torch.Generator().manual_seed(seed)
    model = _meta_build(LTXModelConfigurator, ltx_config(sizes, model_version))
    tensors: dict[str, torch.Tensor] = {}
    for name, module in sorted(model.named_modules()):
        if not isinstance(module, torch.nn.Linear) or not name.startswith("transformer_blocks."):
            continue
        if not any(name.endswith(target) for target in LORA_TARGETS):
            continue
        out_features, in_features = module.weight.shape
        tensors[f"diffusion_model.{name}.lora_A.weight"] = torch.randn(
            LORA_RANK, in_features, generator=generator
        ) / in_features**0.5
        tensors[f"diffusion_model.{name}.lora_B.weight"] = scale * torch.randn(
            out_features, LORA_RANK, generator=generator
        )
    metadata = {"smoke_model": SMOKE_NOTICE, **(extra_metadata or {})}
    save_file(_bf16(tensors), str(path), metadata=metadata)


# ---------------------------------------------------------------------------
# Gemma directory
# ---------------------------------------------------------------------------

GEMMA_SPECIAL_TOKENS = [
    "<start_of_turn>",
    "<end_of_turn>",
    "<start_of_image>",
    "<end_of_image>",
    "<image_soft_token>",
]

GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "{{ '<start_of_turn>' + role + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] | trim }}"
    "{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}{{ '<start_of_image>' }}"
    "{% elif item['type'] == 'text' %}{{ item['text'] | trim }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ '<end_of_turn>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)

_WORDS = (
    "a the of and in on with over under beautiful sunset ocean mountain river forest city street night day "
    "camera slowly pans across zooms into close up wide shot person woman man child dog cat bird car train "
    "light shadow color red blue green golden warm cold wind rain snow sun moon sky cloud water fire smoke "
    "music sound voice speaks sings walks runs dances looks smiles background foreground cinematic detailed "
    "realistic video frame scene motion gentle fast slow quiet loud landscape portrait style soft sharp"
).split()


def _tokenizer_corpus(seed: int) -> str:
    rng = random.Random(seed)
    lines = [" ".join(rng.choice(_WORDS) for _ in range(rng.randint(4, 14))) for _ in range(2000)]
    return "\n".join(lines) + "\n"


def train_tokenizer(directory: Path, seed: int) -> None:
    """Train a tiny sentencepiece model with Gemma's special-token layout."""
    import sentencepiece as spm

    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.txt"
        corpus.write_text(_tokenizer_corpus(seed))
        spm.SentencePieceTrainer.train(
            input=str(corpus),
            model_prefix=str(directory / "tokenizer"),
            vocab_size=400,
            model_type="bpe",
            pad_id=0,
            eos_id=1,
            bos_id=2,
            unk_id=3,
            pad_piece="<pad>",
            eos_piece="<eos>",
            bos_piece="<bos>",
            unk_piece="<unk>",
            user_defined_symbols=GEMMA_SPECIAL_TOKENS,
            byte_fallback=True,
            num_threads=1,
            minloglevel=2,
        )
    (directory / "tokenizer.vocab").unlink(missing_ok=True)


def _token_id(directory: Path, piece: str) -> int:
    import sentencepiece as spm

    processor = spm.SentencePieceProcessor(model_file=str(directory / "tokenizer.model"))
    return processor.piece_to_id(piece)


def gemma_config(directory: Path) -> dict:
    import sentencepiece as spm

    vocab_size = spm.SentencePieceProcessor(model_file=str(directory / "tokenizer.model")).get_piece_size()
    return {
        "architectures": ["Gemma3ForConditionalGeneration"],
        "model_type": "gemma3",
        "boi_token_index": _token_id(directory, "<start_of_image>"),
        "eoi_token_index": _token_id(directory, "<end_of_image>"),
        "image_token_index": _token_id(directory, "<image_soft_token>"),
        "eos_token_id": [1, _token_id(directory, "<end_of_turn>")],
        "mm_tokens_per_image": 256,
        "initializer_range": 0.02,
        "torch_dtype": "float32",
        "text_config": {
            "model_type": "gemma3_text",
            "vocab_size": vocab_size,
            "hidden_size": GEMMA_HIDDEN,
            "intermediate_size": 128,
            "num_hidden_layers": GEMMA_LAYERS,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "head_dim": 32,
            "query_pre_attn_scalar": 32,
            "sliding_window": 64,
            "sliding_window_pattern": 2,
            "max_position_embeddings": 4096,
            "rope_theta": 1000000.0,
            "rope_local_base_freq": 10000.0,
            "rope_scaling": {"rope_type": "linear", "factor": 8.0},
            "rms_norm_eps": 1e-6,
            "hidden_activation": "gelu_pytorch_tanh",
            "attention_bias": False,
            "attention_dropout": 0.0,
            "final_logit_softcapping": None,
            "attn_logit_softcapping": None,
        },
        "vision_config": {
            "model_type": "siglip_vision_model",
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "num_channels": 3,
            "image_size": 224,
            "patch_size": 14,
            "layer_norm_eps": 1e-6,
            "hidden_act": "gelu_pytorch_tanh",
            "vision_use_head": False,
        },
    }


def _legacy_gemma_key(key: str) -> str | None:
    """Map transformers' in-memory names to the original Gemma-3 checkpoint names.

    Since transformers 5.8 the SigLIP tower has no ``vision_model`` child; the released files keep it.
    """
    for new, old in (
        ("model.language_model.", "language_model.model."),
        ("model.vision_tower.", "vision_tower.vision_model."),
        ("model.multi_modal_projector.", "multi_modal_projector."),
    ):
        if key.startswith(new):
            return old + key[len(new) :]
    return None  # lm_head is tied to the embeddings and not stored


#: Added tokens marked special in tokenizer.json (skipped when decoding), as transformers 4.57's conversion
#: marked them: the control tokens and the chat-turn markers, not the image markers (the processor's text).
GEMMA_SKIPPED_TOKENS = {"<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"}


def _tokenizer_json(converted: str, config: dict) -> str:
    """The converted fast tokenizer with the added tokens of every transformers version alike.

    transformers 5's conversion marks other tokens special than 4.57's did, and adds a ``<mask>`` token
    past the end of the vocabulary (the smoke vocabulary has none; no embedding row exists for it).
    """
    spec = json.loads(converted)
    vocab_size = config["text_config"]["vocab_size"]
    spec["added_tokens"] = [
        {**token, "special": token["content"] in GEMMA_SKIPPED_TOKENS}
        for token in spec["added_tokens"]
        if token["id"] < vocab_size
    ]
    return json.dumps(spec, ensure_ascii=False, indent=2)


# Random Gemma weights, drawn from the seed in the order transformers 4.57 drew them when it built
# Gemma3ForConditionalGeneration: the bundle then has the same Gemma, byte for byte, whatever transformers
# is installed (5.x initialises in another order). 4.57 built the vision tower and ran torch's default
# init on each layer, then SigLIP's init; then the same for the language model with Gemma's init. Only
# the draws' order and formulas are reproduced, with torch's own init functions; constants are set after.


def _vision_build_order(tower: torch.nn.Module) -> list[torch.nn.Module]:
    """SigLIP's layers with parameters to draw, in the order 4.57 built them."""
    order = [tower.embeddings.patch_embedding, tower.embeddings.position_embedding]
    for layer in tower.encoder.layers:
        attn, mlp = layer.self_attn, layer.mlp
        order += [attn.k_proj, attn.v_proj, attn.q_proj, attn.out_proj, mlp.fc1, mlp.fc2]
    return order


def _text_build_order(language_model: torch.nn.Module) -> list[torch.nn.Module]:
    """Gemma's embedding and linear layers in the order 4.57 built them."""
    order = [language_model.embed_tokens]
    for layer in language_model.layers:
        attn, mlp = layer.self_attn, layer.mlp
        order += [attn.q_proj, attn.k_proj, attn.v_proj, attn.o_proj, mlp.gate_proj, mlp.up_proj, mlp.down_proj]
    return order


def _lecun_normal(weight: torch.Tensor) -> None:
    """SigLIP's lecun_normal: a normal truncated at 2 std, scaled to variance 1 / fan_in."""
    torch.nn.init.trunc_normal_(weight, mean=0.0, std=1.0, a=-2.0, b=2.0)
    weight.mul_(math.sqrt(1.0 / weight[0].numel()) / 0.87962566103423978)


def _siglip_init(tower: torch.nn.Module) -> None:
    """SigLIP's init, module by module as 4.57 visited them (children before their parent)."""
    embeddings = tower.embeddings
    _lecun_normal(embeddings.patch_embedding.weight)
    position = embeddings.position_embedding.weight
    position.normal_(std=math.sqrt(1.0 / position[0].numel()))  # the embedding's flax-style init
    position.normal_(mean=0.0, std=1 / math.sqrt(position.shape[1]))  # then the embeddings module's
    for layer in tower.encoder.layers:
        attn, mlp = layer.self_attn, layer.mlp
        for linear in (attn.k_proj, attn.v_proj, attn.q_proj, attn.out_proj):
            _lecun_normal(linear.weight)
        for linear in (attn.q_proj, attn.k_proj, attn.v_proj, attn.out_proj):
            torch.nn.init.xavier_uniform_(linear.weight)
        for linear in (mlp.fc1, mlp.fc2):
            _lecun_normal(linear.weight)
        for linear in (mlp.fc1, mlp.fc2):
            torch.nn.init.xavier_uniform_(linear.weight)
        for linear in (mlp.fc1, mlp.fc2):
            linear.bias.normal_(mean=0.0, std=1e-6)


def _set_constants(model: torch.nn.Module, drawn: set[int]) -> None:
    """Every parameter not drawn: LayerNorm weights 1, the rest 0 (biases, Gemma's 1-centred norms, projector)."""
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if id(param) in drawn:
                continue
            param.fill_(1.0 if isinstance(module, torch.nn.LayerNorm) and name == "weight" else 0.0)


@torch.no_grad()
def draw_gemma_weights(model: torch.nn.Module, seed: int) -> None:
    """Fill a Gemma3ForConditionalGeneration with the seed's random weights (see the comment above)."""
    tower, language_model = model.model.vision_tower, model.model.language_model
    tower = getattr(tower, "vision_model", tower)  # transformers < 5.8 nests the SigLIP transformer
    std = model.config.text_config.initializer_range
    torch.manual_seed(seed)
    for layer in _vision_build_order(tower):
        layer.reset_parameters()  # 4.57 drew these as it built each layer; SigLIP's init replaces them
    _siglip_init(tower)
    for layer in _text_build_order(language_model):
        layer.reset_parameters()
    for layer in _text_build_order(language_model):
        layer.weight.normal_(mean=0.0, std=std)
    language_model.embed_tokens.weight[language_model.embed_tokens.padding_idx].zero_()
    vision_layers = _vision_build_order(tower)
    drawn = {id(layer.weight) for layer in [*vision_layers, *_text_build_order(language_model)]}
    drawn |= {id(linear.bias) for layer in tower.encoder.layers for linear in (layer.mlp.fc1, layer.mlp.fc2)}
    _set_constants(model, drawn)


def write_gemma(directory: Path, seed: int) -> None:
    from transformers import AutoTokenizer, Gemma3Config, Gemma3ForConditionalGeneration

    directory.mkdir(parents=True, exist_ok=True)
    train_tokenizer(directory, seed)
    config = gemma_config(directory)
    (directory / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))

    model = Gemma3ForConditionalGeneration(Gemma3Config.from_dict(config))
    draw_gemma_weights(model, seed)
    tensors = {}
    for key, value in model.state_dict().items():
        legacy = _legacy_gemma_key(key)
        if legacy is not None:
            tensors[legacy] = value.detach().to(torch.bfloat16).contiguous()
    save_file(tensors, str(directory / "model.safetensors"), metadata={"format": "pt", "smoke_model": SMOKE_NOTICE})

    tokenizer_config = {
        "tokenizer_class": "GemmaTokenizer",
        "bos_token": "<bos>",
        "eos_token": "<eos>",
        "pad_token": "<pad>",
        "unk_token": "<unk>",
        # No mask token: transformers 5's GemmaTokenizer would add "<mask>" past the end of the vocabulary.
        "mask_token": None,
        "add_bos_token": True,
        "add_eos_token": False,
        "padding_side": "left",
        "model_max_length": 1024,
        "clean_up_tokenization_spaces": False,
        "chat_template": GEMMA_CHAT_TEMPLATE,
        "extra_special_tokens": {
            "boi_token": "<start_of_image>",
            "eoi_token": "<end_of_image>",
            "image_token": "<image_soft_token>",
        },
    }
    (directory / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2))
    special = {"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>", "unk_token": "<unk>"}
    (directory / "special_tokens_map.json").write_text(json.dumps(special, indent=2))
    # Convert once to the fast tokenizer so loads do not repeat the conversion (real Gemma ships tokenizer.json).
    # Only tokenizer.json is taken from it: transformers 5 would also rewrite tokenizer_config.json in a form
    # that 4.x cannot read (the parity test's reference reads this folder with transformers 4.57).
    fast = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
    (directory / "tokenizer.json").write_text(_tokenizer_json(fast.backend_tokenizer.to_str(), config))

    preprocessor = {
        "image_processor_type": "Gemma3ImageProcessor",
        "processor_class": "Gemma3Processor",
        "do_convert_rgb": True,
        "do_normalize": True,
        "do_pan_and_scan": False,
        "do_rescale": True,
        "do_resize": True,
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
        "resample": 2,
        "rescale_factor": 1 / 255,
        "size": {"height": 224, "width": 224},
    }
    (directory / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=2))
    (directory / "processor_config.json").write_text(
        json.dumps({"image_seq_length": 256, "processor_class": "Gemma3Processor"}, indent=2)
    )
    (directory / "SMOKE_MODEL.txt").write_text(SMOKE_NOTICE + "\n")


# ---------------------------------------------------------------------------
# The whole bundle
# ---------------------------------------------------------------------------


def build_smoke_bundle(
    root: Path | str, seed: int = 0, model_version: str = "2.0.0", sizes: SmokeSizes = SMOKE_SIZES
) -> SmokeBundle:
    """Write the whole bundle into `root` (created; written to a temp dir and moved in place)."""
    started = time.perf_counter()
    bundle = SmokeBundle.at(Path(root))
    bundle.root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".smoke-", dir=bundle.root.parent))
    staging.chmod(0o755)
    try:
        staged = SmokeBundle.at(staging)
        write_ltx_checkpoint(staged.checkpoint, seed, model_version, distilled=False, sizes=sizes)
        write_ltx_checkpoint(staged.distilled_checkpoint, seed + 1, model_version, distilled=True, sizes=sizes)
        write_upsampler(staged.spatial_upsampler, seed + 2, sizes)
        write_lora(staged.distilled_lora, seed + 3, scale=0.05, sizes=sizes, model_version=model_version)
        write_lora(staged.ic_lora, seed + 4, scale=0.05, extra_metadata={"reference_downscale_factor": "1"},
                   sizes=sizes, model_version=model_version)  # fmt: skip
        write_gemma(staged.gemma_root, seed + 5)
        manifest = {
            "notice": SMOKE_NOTICE,
            "seed": seed,
            "model_version": model_version,
            "sizes": asdict(sizes),
            "checkpoint": staged.checkpoint.name,
            "distilled_checkpoint": staged.distilled_checkpoint.name,
            "spatial_upsampler": staged.spatial_upsampler.name,
            "distilled_lora": staged.distilled_lora.name,
            "ic_lora": staged.ic_lora.name,
            "gemma_root": staged.gemma_root.name,
        }
        (staging / "bundle.json").write_text(json.dumps(manifest, indent=2))
        if bundle.root.exists():
            shutil.rmtree(bundle.root)
        staging.rename(bundle.root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.info("Smoke bundle written to %s in %.1f s", bundle.root, time.perf_counter() - started)
    return bundle


def bundle_sizes(bundle: SmokeBundle) -> SmokeSizes:
    """The sizes a written bundle was built with (bundles from before sizes were recorded: the default)."""
    manifest = json.loads((bundle.root / "bundle.json").read_text())
    return SmokeSizes(**manifest.get("sizes", {}))


def bundle_model_version(bundle: SmokeBundle) -> str:
    """The model_version a written bundle was built with."""
    return json.loads((bundle.root / "bundle.json").read_text()).get("model_version", "2.0.0")


def ensure_smoke_bundle(
    root: Path | str, seed: int = 0, sizes: SmokeSizes = SMOKE_SIZES, model_version: str = "2.0.0"
) -> SmokeBundle:
    """Return the bundle at `root`, building it first if it is missing, incomplete or of other sizes or version."""
    bundle = SmokeBundle.at(Path(root))
    if bundle.exists() and bundle_sizes(bundle) == sizes and bundle_model_version(bundle) == model_version:
        return bundle
    return build_smoke_bundle(root, seed, model_version=model_version, sizes=sizes)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m ltx_pipelines.smoke_model",
        description="Write a tiny random-weight LTX-2 bundle in the real file format. " + SMOKE_NOTICE,
    )
    parser.add_argument("output_dir", type=Path, help="Folder to write the bundle into (replaced if it exists).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the random weights (default: 0).")
    parser.add_argument(
        "--model-version", default="2.0.0",
        help="model_version of the bundle (default: 2.0.0). 2.3 or 2.4 writes LTX-2.3's monolithic checkpoint "
        "(gated attention, text cross-attention AdaLN, the text projection before the connectors); 2.5 or later "
        "writes the LTX-2.5 layout: one file per component in the download's folders (diffusion_models/, ...).",
    )  # fmt: skip
    parser.add_argument(
        "--attention-heads", type=int, default=2, choices=(2, 4),
        help="Attention heads of video and audio (default: 2); torchrun can use as many ranks as divide them.",
    )
    parser.add_argument(
        "--real-channels", action="store_true",
        help="Real LTX-2 latent channel counts (128 video, 8 audio z-channels) and 4 transformer blocks, for code "
        "that hard-codes them (e.g. the reference package); pass STG blocks explicitly with it.",
    )  # fmt: skip
    parser.add_argument(
        "--diffusion-vae", action="store_true",
        help="LTX-2.5 only: also write the diffusion-decoder video VAE file (vae/ltx-2.5-smoke-video-vae.safetensors, "
        "the CausalDiffusionVAE layout); --model-dir then decodes with it (--vae-decoder conv: the conv file).",
    )  # fmt: skip
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    sizes = replace(REAL_CHANNEL_SIZES if args.real_channels else SMOKE_SIZES, attention_heads=args.attention_heads)
    if (parse_version(args.model_version) or (2, 0)) >= (2, 5):
        from ltx_pipelines.smoke_model import ltx25

        bundle = ltx25.build_ltx25_smoke_bundle(args.output_dir, args.seed, sizes)
        if args.diffusion_vae:
            ltx25.write_diffusion_video_vae(bundle.root / ltx25.DIFFUSION_VAE_NAME, args.seed + 9, sizes)
        report(bundle)
        if args.diffusion_vae:
            print(f"  diffusion_video_vae: {bundle.root / ltx25.DIFFUSION_VAE_NAME}")
        return
    report(build_smoke_bundle(args.output_dir, args.seed, full_version(args.model_version), sizes))


def full_version(model_version: str) -> str:
    """A two-part version gets ".0" ("2.3" -> "2.3.0"), as released checkpoints carry it; others stay as given."""
    parts = model_version.split(".")
    return f"{model_version}.0" if len(parts) == 2 and all(p.isdigit() for p in parts) else model_version


def report(bundle: object) -> None:
    """Print the notice, the bundle's size and where each file is."""
    size = sum(p.stat().st_size for p in bundle.root.rglob("*") if p.is_file())
    print(f"{SMOKE_NOTICE}\nWrote {bundle.root} ({size / 1e6:.1f} MB)")
    for name, value in vars(bundle).items():
        if name != "root":
            print(f"  {name}: {value}")
