"""A tiny packed Gemma-4 text-encoder file in the layout of LTX-2.5's ``text_encoders/`` file.

The published ``gemma4-12b-with-proj-ltx-2.5-bf16.safetensors`` packs everything the text path needs into one
file; this writes the same layout at toy size, for the tests and for the LTX-2.5 smoke bundle:

* metadata ``gemma_config``: the Hugging Face config (``model_type`` ``gemma4_unified``) with a top-level
  ``gemma_version``, which the transformer's ``gemma_source_checkpoint`` must name; ``format`` = ``pt``; the
  smoke notice under ``smoke_model``;
* the Gemma weights in ComfyUI's flat names (``model.layers.*``, ``model.embed_tokens.weight``,
  ``model.norm.weight``, ``vision_model.*``, ``multi_modal_projector.*``, ``audio_projector.*``), bf16, no
  ``lm_head`` (tied to the embedding);
* ``text_embedding_projection.{video,audio}_aggregate_embed.{weight,bias}``: the feature extractor's two
  projections, ``D * (N + 1)`` Gemma features to the transformer's video and audio widths;
* ``tokenizer_json`` and ``hf_asset__<name>`` sidecars as uint8 tensors: a word-level tokenizer made with the
  ``tokenizers`` package (Gemma's special-token ids: pad 0, eos 1, bos 2, unk 3; like Gemma 4's, it adds no
  BOS itself), ``tokenizer_config.json`` and ``processor_config.json``.

The model has both of Gemma 4's attention layer types (a sliding layer with default RoPE, a global layer with
proportional RoPE over a wider head whose keys double as values), so every piece of the real build is used.
The same seed gives the same bytes.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ltx_pipelines.smoke_model import SMOKE_NOTICE, save_file

GEMMA4_HIDDEN = 64
GEMMA4_LAYERS = 2
DEFAULT_GEMMA_VERSION = "gemma4-smoke-ltx-v1"

PAD, EOS, BOS, UNK = "<pad>", "<eos>", "<bos>", "<unk>"
#: Markers Gemma 4's processor looks up in the tokenizer (images, audio, video).
MEDIA_TOKENS = {
    "boi_token": "<|image>",
    "eoi_token": "<image|>",
    "image_token": "<|image|>",
    "boa_token": "<|audio>",
    "eoa_token": "<audio|>",
    "audio_token": "<|audio|>",
}
VIDEO_TOKEN = "<|video|>"
SPECIAL_TOKENS = (PAD, EOS, BOS, UNK, *MEDIA_TOKENS.values(), VIDEO_TOKEN)

WORDS = tuple(
    "a an the of and in on at with over under into through across from to by near behind beside "
    "beautiful sunset sunrise dawn dusk ocean sea mountain river lake forest city street road bridge night "
    "day camera slowly quickly pans tilts zooms tracks close up wide shot person woman man child girl boy "
    "dog cat fox bird horse car train boat plane light shadow color red blue green golden white black warm "
    "cold wind rain snow fresh sun moon sky cloud water fire smoke music sound voice speaks sings says walks "
    "runs dances jumps looks smiles laughs background foreground cinematic detailed realistic video frame "
    "scene motion gentle fast slow quiet loud landscape portrait style soft sharp old young tall small "
    "large bright dark morning evening winter summer spring autumn field grass tree trees flowers house "
    "window door table chair room kitchen market crowd people hands face eyes hair coat hat dress".split()
)
PUNCTUATION = tuple(". , ! ? ; : ' \" - ( )".split())
VOCAB = (*SPECIAL_TOKENS, *WORDS, *PUNCTUATION)


def gemma4_config(gemma_version: str | None = DEFAULT_GEMMA_VERSION) -> dict:
    """The smoke model's ``gemma_config``: a two-layer ``gemma4_unified`` (one sliding, one global layer)."""
    token = {name: VOCAB.index(text) for name, text in MEDIA_TOKENS.items()}
    config = {
        "architectures": ["Gemma4UnifiedForConditionalGeneration"],
        "model_type": "gemma4_unified",
        "boi_token_id": token["boi_token"],
        "eoi_token_id": token["eoi_token"],
        "image_token_id": token["image_token"],
        "boa_token_id": token["boa_token"],
        "eoa_token_index": token["eoa_token"],
        "audio_token_id": token["audio_token"],
        "video_token_id": VOCAB.index(VIDEO_TOKEN),
        "tie_word_embeddings": True,
        "text_config": {
            "model_type": "gemma4_unified_text",
            "vocab_size": len(VOCAB),
            "hidden_size": GEMMA4_HIDDEN,
            "intermediate_size": 128,
            "num_hidden_layers": GEMMA4_LAYERS,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "head_dim": 16,
            "global_head_dim": 32,
            "num_global_key_value_heads": 1,
            "attention_k_eq_v": True,
            "layer_types": ["sliding_attention", "full_attention"],
            "sliding_window": 8,
            "max_position_embeddings": 2048,
            "rope_parameters": {
                "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                "full_attention": {"rope_type": "proportional", "partial_rotary_factor": 0.25, "rope_theta": 1e6},
            },
            "hidden_activation": "gelu_pytorch_tanh",
            "rms_norm_eps": 1e-6,
            "pad_token_id": VOCAB.index(PAD),
            "eos_token_id": VOCAB.index(EOS),
            "bos_token_id": VOCAB.index(BOS),
            "use_bidirectional_attention": "vision",
            "tie_word_embeddings": True,
        },
        "vision_config": {
            "model_type": "gemma4_unified_vision",
            "patch_size": 2,
            "pooling_kernel_size": 2,
            "mm_embed_dim": 16,
            "mm_posemb_size": 8,
            "output_proj_dims": 16,
        },
        "audio_config": {"model_type": "gemma4_unified_audio", "audio_embed_dim": 8},
    }
    if gemma_version is not None:
        config["gemma_version"] = gemma_version
    return config


def tokenizer_json() -> str:
    """A word-level tokenizer over :data:`VOCAB` (lower-cased, split on whitespace and punctuation)."""
    from tokenizers import AddedToken, Tokenizer, models, normalizers, pre_tokenizers

    tokenizer = Tokenizer(models.WordLevel({text: i for i, text in enumerate(VOCAB)}, unk_token=UNK))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.add_special_tokens([AddedToken(text, special=True, normalized=False) for text in SPECIAL_TOKENS])
    return tokenizer.to_str()


def tokenizer_config() -> dict:
    return {
        "tokenizer_class": "GemmaTokenizer",
        "bos_token": BOS,
        "eos_token": EOS,
        "pad_token": PAD,
        "unk_token": UNK,
        "padding_side": "left",
        "model_max_length": 1024,
        "clean_up_tokenization_spaces": False,
        "extra_special_tokens": dict(MEDIA_TOKENS),
    }


def processor_config() -> dict:
    """What the reference needs to build Gemma 4's processor (encoding never uses it)."""
    return {
        "processor_class": "Gemma4UnifiedProcessor",
        "image_processor": {"image_processor_type": "Gemma4UnifiedImageProcessor"},
        "feature_extractor": {"feature_extractor_type": "Gemma4UnifiedAudioFeatureExtractor"},
        "video_processor": {"video_processor_type": "Gemma4UnifiedVideoProcessor"},
    }


def comfy_key(name: str) -> str | None:
    """The packed file's (ComfyUI) name of a ``Gemma4UnifiedForConditionalGeneration`` state-dict entry."""
    renames = (
        ("model.language_model.", "model."),
        ("model.embed_vision.multimodal_embedder.", "multi_modal_projector."),
        ("model.embed_vision.", "vision_model."),
        ("model.embed_audio.", "audio_projector."),
    )
    for prefix, packed in renames:
        if name.startswith(prefix):
            return packed + name[len(prefix) :]
    return None  # lm_head: tied to the embedding, not stored


def _gemma_shapes(config: dict) -> dict[str, torch.Size]:
    """Packed name -> shape of every stored Gemma tensor (built on the meta device, nothing allocated)."""
    from transformers import AutoModelForImageTextToText
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(CONFIG_MAPPING[config["model_type"]].from_dict(config))
    shapes = {comfy_key(name): value.shape for name, value in model.state_dict().items()}
    shapes.pop(None, None)
    return shapes


def _draw(name: str, shape: torch.Size, generator: torch.Generator) -> torch.Tensor:
    """A random value of the right scale: unit-ish scales for norms and layer scalars, small biases."""
    if name.endswith(".bias"):
        return 0.02 * torch.randn(shape, generator=generator)
    if len(shape) == 1:  # norm weights and layer scalars multiply: around 1
        return 1.0 + 0.1 * torch.randn(shape, generator=generator)
    return torch.randn(shape, generator=generator) / shape[-1] ** 0.5


def _bytes_tensor(data: bytes) -> torch.Tensor:
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).clone()


def projection_shapes(video_width: int, audio_width: int) -> dict[str, torch.Size]:
    """The feature extractor's projections: every hidden state (N layers + embeddings) of every token to a width."""
    flat = GEMMA4_HIDDEN * (GEMMA4_LAYERS + 1)
    shapes = {}
    for modality, width in (("video", video_width), ("audio", audio_width)):
        shapes[f"text_embedding_projection.{modality}_aggregate_embed.weight"] = torch.Size([width, flat])
        shapes[f"text_embedding_projection.{modality}_aggregate_embed.bias"] = torch.Size([width])
    return shapes


def write_packed_text_encoder(path: Path, seed: int, video_width: int = 32, audio_width: int = 16,
                              gemma_version: str = DEFAULT_GEMMA_VERSION) -> None:  # fmt: skip
    """Write the tiny packed Gemma-4 text encoder (random bf16 weights, same bytes for the same arguments)."""
    config = gemma4_config(gemma_version)
    shapes = {**_gemma_shapes(config), **projection_shapes(video_width, audio_width)}
    generator = torch.Generator().manual_seed(seed)
    tensors = {name: _draw(name, shapes[name], generator).to(torch.bfloat16).contiguous() for name in sorted(shapes)}
    tensors["tokenizer_json"] = _bytes_tensor(tokenizer_json().encode())
    for name, content in (("tokenizer_config.json", tokenizer_config()), ("processor_config.json", processor_config())):
        tensors[f"hf_asset__{name}"] = _bytes_tensor(json.dumps(content, indent=2, sort_keys=True).encode())
    metadata = {"format": "pt", "gemma_config": json.dumps(config, sort_keys=True), "smoke_model": SMOKE_NOTICE}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=metadata)


__all__ = ["DEFAULT_GEMMA_VERSION", "GEMMA4_HIDDEN", "GEMMA4_LAYERS", "VOCAB", "comfy_key", "gemma4_config",
           "projection_shapes", "tokenizer_config", "tokenizer_json", "write_packed_text_encoder"]  # fmt: skip
