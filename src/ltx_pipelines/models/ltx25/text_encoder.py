"""LTX-2.5's text encoder: Gemma 4 (``gemma4_unified``) from one packed ``.safetensors`` file.

The reference for 2.5 is LTX-2 release 1.2.0. Its text encoder file (``text_encoders/``) holds everything the
prompt path needs, so unlike LTX-2 / 2.3 there is no Gemma folder:

* metadata ``gemma_config``: the Hugging Face config (``model_type`` ``gemma4_unified``, a top-level
  ``gemma_version`` that the transformer's ``gemma_source_checkpoint`` names; the pair is checked once, in
  ``models.files``);
* the Gemma weights, in ComfyUI's flat names (``model.layers.*``, ``model.embed_tokens.weight``, ``model.norm.*``
  and the towers as ``vision_model.*`` / ``multi_modal_projector.*`` / ``audio_projector.*``) or in Hugging
  Face's (``model.language_model.*``, ``model.vision_embedder.*``, ``model.embed_vision.*``,
  ``model.embed_audio.*``); no ``lm_head`` (tied to the embedding);
* ``tokenizer_json`` (the bytes of ``tokenizer.json`` as an integer tensor) and ``hf_asset__<name>`` sidecars
  (``tokenizer_config.json``, ...), which older packs keep as metadata strings instead;
* the feature extractor's projections ``text_embedding_projection.*`` (read by ``models.ltx25.text_embeddings``).

What is built from it (ltx-core's ``GemmaTextEncoder`` wrapper around our Gemma, so ``encode`` is ltx-core's):

* the model: the config's class via ``AutoModelForImageTextToText`` on the meta device, loaded from the file;
  the buffers no file stores are made on the CPU: the rotary module (one per layer type: default RoPE on the
  sliding layers, proportional RoPE over ``global_head_dim`` on the global ones, as transformers computes
  them) and the embedding scale sqrt(hidden size) in float32;
* the tokenizer, from the in-memory ``tokenizer.json`` with the 1.2.0 rules: the prompt stripped, truncated to
  1024 tokens, a BOS put first when the tokenizer did not (Gemma 4's does not; the list is cut to 1024 again),
  no EOS, then padded on the left to exactly 1024 with the pad token (EOS if there is none).

``encode`` returns all N + 1 hidden states (the embeddings, each layer, the last one after the final norm).
Gemma 4 unified only encodes: prompt enhancement needs a separate generative Gemma (``--prompt-enhancer-gemma-root``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from ltx_core.loader import KeyValueOperationResult, SDOps, SingleGPUModelBuilder
from ltx_core.loader.module_ops import ModuleOps

from ltx_pipelines.models.checkpoints import read_header
from ltx_pipelines.models.gemma import GemmaDirectoryLoader
from ltx_pipelines.utils.errors import InputError

GEMMA_CONFIG_KEY = "gemma_config"
TOKENIZER_KEY = "tokenizer_json"
SIDECAR_PREFIX = "hf_asset__"
#: Sidecars older packs store as metadata strings rather than ``hf_asset__`` tensors.
METADATA_SIDECARS = ("tokenizer_config.json", "processor_config.json", "chat_template.jinja", "generation_config.json")
#: The only Gemma family LTX-2.5's text path encodes with.
ENCODE_MODEL_TYPE = "gemma4_unified"
#: Prompt length: every prompt is truncated and left-padded to it.
TOKENIZER_MAX_LENGTH = 1024
#: tokenizer_config.json entries that are not constructor arguments of a fast tokenizer built from an object.
_TOKENIZER_CONFIG_SKIPPED = frozenset({"tokenizer_class", "auto_map", "model_max_length", "backend", "is_local",
                                       "local_files_only", "processor_class", "added_tokens_decoder"})  # fmt: skip
#: A packed file's LM layout: ComfyUI flattened the language model to ``model.*`` (this tensor), else HF names.
_COMFY_FLAT_MARK = "model.layers.0.post_feedforward_layernorm.weight"
_HF_LM_PREFIX = "model.language_model."
_LOADED_EMBEDDING = "model.model.language_model.embed_tokens.weight"


# -- the packed file ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PackedTextEncoder:
    """What a packed text-encoder file declares, from its header alone."""

    path: Path
    config: dict
    metadata: dict[str, str] = field(repr=False)
    tensors: dict[str, tuple[str, tuple[int, ...]]] = field(repr=False)

    @property
    def text_config(self) -> dict:
        return self.config.get("text_config", self.config)

    @property
    def model_type(self) -> str:
        return str(self.config.get("model_type", ""))

    @property
    def gemma_version(self) -> str | None:
        return self.config.get("gemma_version")

    @property
    def hidden_size(self) -> int:
        return int(self.text_config["hidden_size"])

    @property
    def num_hidden_layers(self) -> int:
        return int(self.text_config["num_hidden_layers"])

    @property
    def num_hidden_states(self) -> int:
        """Hidden states the encoder returns: the embeddings and every layer."""
        return self.num_hidden_layers + 1

    @property
    def comfy_flat(self) -> bool:
        return _COMFY_FLAT_MARK in self.tensors

    def has_sidecar(self, name: str) -> bool:
        return SIDECAR_PREFIX + name in self.tensors or name in self.metadata

    def gemma_tensors(self) -> dict[str, tuple[str, tuple[int, ...]]]:
        """The header entries of the Gemma weights (what the key ops load; no projections or assets)."""
        ops = gemma4_key_ops(self.comfy_flat)
        return {name: info for name, info in self.tensors.items() if ops.apply_to_key(name) is not None}


def _gemma_config(path: Path, metadata: dict[str, str]) -> dict:
    raw = metadata.get(GEMMA_CONFIG_KEY)
    if not raw:
        raise InputError(f"{path} is not a packed Gemma text encoder: its header has no '{GEMMA_CONFIG_KEY}' "
                         "metadata (the Hugging Face config). Use the text_encoders/ file published with the model.")
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: the '{GEMMA_CONFIG_KEY}' metadata is not valid JSON ({e}).") from e
    if not isinstance(config, dict):
        raise InputError(f"{path}: the '{GEMMA_CONFIG_KEY}' metadata is not a JSON object.")
    return config


def inspect_packed_text_encoder(path: str | Path) -> PackedTextEncoder:
    """Check that ``path`` is a packed Gemma-4 text encoder LTX-2.5 can encode with (header only)."""
    header = read_header(path, "text encoder (--text-encoder-path)")
    packed = PackedTextEncoder(header.path, _gemma_config(header.path, header.metadata), dict(header.metadata),
                               dict(header.tensors))  # fmt: skip
    if packed.model_type != ENCODE_MODEL_TYPE:
        raise InputError(f"The text encoder {packed.path} is a {packed.model_type or 'untyped'} Gemma; LTX-2.5 encodes "
                         f"prompts with {ENCODE_MODEL_TYPE} (Gemma 4 unified).")  # fmt: skip
    if TOKENIZER_KEY not in packed.tensors:
        raise InputError(f"The text encoder {packed.path} has no tokenizer (tensor '{TOKENIZER_KEY}').")
    if not packed.has_sidecar("tokenizer_config.json"):
        raise InputError(f"The text encoder {packed.path} has no tokenizer_config.json (tensor "
                         f"'{SIDECAR_PREFIX}tokenizer_config.json' or metadata).")  # fmt: skip
    if not packed.comfy_flat and not any(name.startswith(_HF_LM_PREFIX) for name in packed.tensors):
        raise InputError(f"The text encoder {packed.path} holds no Gemma language-model weights (neither "
                         f"'{_COMFY_FLAT_MARK}' nor '{_HF_LM_PREFIX}*').")  # fmt: skip
    for key in ("hidden_size", "num_hidden_layers"):
        if key not in packed.text_config:
            raise InputError(f"The text encoder {packed.path}: its Gemma config has no text_config.{key}.")
    return packed


def _as_bytes(tensor: torch.Tensor) -> bytes:
    """A tensor of byte values (uint8, or another integer type as some packers wrote it) as bytes."""
    return tensor.to(torch.uint8).contiguous().numpy().tobytes()


def read_asset(packed: PackedTextEncoder, tensor_name: str, metadata_name: str | None = None) -> bytes | None:
    """An asset stored as a byte tensor, else as a metadata string (older packs), else None."""
    if tensor_name in packed.tensors:
        from safetensors import safe_open

        with safe_open(str(packed.path), framework="pt") as f:
            return _as_bytes(f.get_tensor(tensor_name))
    if metadata_name is not None and metadata_name in packed.metadata:
        return packed.metadata[metadata_name].encode()
    return None


def read_sidecar(packed: PackedTextEncoder, name: str) -> bytes | None:
    return read_asset(packed, SIDECAR_PREFIX + name, name if name in METADATA_SIDECARS else None)


# -- tokenizer ------------------------------------------------------------------------------------------


def build_hf_tokenizer(packed: PackedTextEncoder) -> object:
    """The fast tokenizer of the file: its tokenizer.json, configured by its tokenizer_config.json."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    settings = json.loads(read_sidecar(packed, "tokenizer_config.json"))
    kwargs = {key: value for key, value in settings.items() if key not in _TOKENIZER_CONFIG_SKIPPED}
    template = read_sidecar(packed, "chat_template.jinja")
    if template is not None:
        kwargs.setdefault("chat_template", template.decode())
    tokenizer_object = Tokenizer.from_buffer(read_asset(packed, TOKENIZER_KEY))
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer_object, model_max_length=TOKENIZER_MAX_LENGTH, **kwargs)


class PromptTokenizer:
    """Token ids and mask of one prompt by the 1.2.0 rules (see the module docstring)."""

    def __init__(self, tokenizer: object, max_length: int = TOKENIZER_MAX_LENGTH):
        if tokenizer.bos_token_id is None:
            raise InputError("The text encoder's tokenizer has no BOS token; LTX-2.5 puts one before every prompt.")
        self.tokenizer = tokenizer
        self.max_length = max_length
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        if pad is None:
            raise InputError("The text encoder's tokenizer has neither a pad nor an EOS token to pad prompts with.")
        self.pad_token_id = int(pad)

    def tokenize(self, text: str) -> tuple[list[int], list[int]]:
        """(ids, mask), both ``max_length`` long: padding first (mask 0), then BOS and the prompt (mask 1)."""
        ids = self.tokenizer(text.strip(), padding=False, truncation=True, max_length=self.max_length)["input_ids"]
        bos = self.tokenizer.bos_token_id
        if not ids or ids[0] != bos:
            ids = [bos, *ids][: self.max_length]
        padding = self.max_length - len(ids)
        return [self.pad_token_id] * padding + ids, [0] * padding + [1] * len(ids)

    def tokenize_with_weights(self, text: str) -> dict[str, list[tuple[int, int]]]:
        """What ltx-core's ``GemmaTextEncoder.encode`` reads: ``{"gemma": [(id, mask), ...]}``."""
        ids, mask = self.tokenize(text)
        return {"gemma": list(zip(ids, mask, strict=True))}


# -- model ----------------------------------------------------------------------------------------------


def gemma4_hf_config(config: dict) -> object:
    """The transformers config object of a ``gemma_config`` (its class chosen by ``model_type``)."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    return CONFIG_MAPPING[config["model_type"]].from_dict(dict(config))


def build_gemma4(config: dict) -> torch.nn.Module:
    """The Gemma 4 model of ``config`` (``Gemma4UnifiedForConditionalGeneration``) on the current device."""
    from transformers import AutoModelForImageTextToText

    return AutoModelForImageTextToText.from_config(gemma4_hf_config(config))


class Gemma4TextEncoderFromConfig:
    """Configurator: a meta-device ``GemmaTextEncoder`` holding the Gemma 4 of the file's ``gemma_config``."""

    @classmethod
    def from_config(cls, config: dict) -> torch.nn.Module:
        from ltx_core.text_encoders.gemma import GemmaTextEncoder

        return GemmaTextEncoder(model=build_gemma4(config))


def _with_tied_lm_head(ops: SDOps) -> SDOps:
    """The file stores the embedding once; the (enhancement-only) lm_head shares it."""
    return ops.with_kv_operation(
        operation=lambda key, value: [
            KeyValueOperationResult(key, value),
            KeyValueOperationResult("model.lm_head.weight", value),
        ],
        key_prefix=_LOADED_EMBEDDING,
    )


def gemma4_key_ops(comfy_flat: bool) -> SDOps:
    """File names -> names inside ltx-core's wrapper (``model.`` + the Hugging Face module tree).

    ltx-core's renames are substring replacements applied in order, so the order matters: the Hugging Face
    tower names (which ComfyUI files that only flattened the language model keep) are renamed first, so that
    the ComfyUI tower names, once renamed to ``model.model.embed_*``, are not renamed a second time.
    """
    ops = SDOps("GEMMA4_COMFY_FLAT_KEY_OPS" if comfy_flat else "GEMMA4_HF_KEY_OPS").with_matching(prefix="model.")
    if comfy_flat:
        for prefix in ("vision_model.", "multi_modal_projector.", "audio_projector."):
            ops = ops.with_matching(prefix=prefix)
    else:
        ops = ops.with_replacement(_HF_LM_PREFIX, "model.model.language_model.")
    projection = "embedding_projection."
    vision_projection = "model.model.embed_vision.multimodal_embedder." + projection
    ops = (
        ops.with_replacement("model.embed_vision." + projection, vision_projection)
        .with_replacement("model.vision_embedder.", "model.model.embed_vision.")
        .with_replacement("model.embed_audio.", "model.model.embed_audio.")
    )  # fmt: skip
    if comfy_flat:
        ops = (
            ops.with_replacement("multi_modal_projector." + projection, vision_projection)
            .with_replacement("vision_model.", "model.model.embed_vision.")
            .with_replacement("audio_projector.", "model.model.embed_audio.")
            .with_replacement("model.layers.", "model.model.language_model.layers.")
            .with_replacement("model.embed_tokens.", "model.model.language_model.embed_tokens.")
            .with_replacement("model.norm.", "model.model.language_model.norm.")
        )  # fmt: skip
    return _with_tied_lm_head(ops)


def _is_gemma4_encoder(module: torch.nn.Module) -> bool:
    model = getattr(module, "model", None)
    return model is not None and getattr(model.config, "model_type", None) == ENCODE_MODEL_TYPE


def _meta_non_persistent_buffers(module: torch.nn.Module) -> list[str]:
    """Buffers no file stores that are still on meta (persistent ones, like ``layer_scalar``, load from the file)."""
    left = []
    for prefix, sub in module.named_modules():
        for name in sub._non_persistent_buffers_set:
            buffer = sub._buffers.get(name)
            if buffer is not None and buffer.is_meta:
                left.append(f"{prefix}.{name}" if prefix else name)
    return left


def fill_gemma4_buffers(encoder: torch.nn.Module) -> torch.nn.Module:
    """Module op: compute the buffers a meta-built Gemma 4 lacks, on the CPU, as transformers computes them."""
    language_model = encoder.model.model.language_model
    with torch.device("cpu"):  # the rotary class makes every layer type's frequencies from the config
        language_model.rotary_emb = type(language_model.rotary_emb)(language_model.config)
    scale = torch.tensor(language_model.config.hidden_size**0.5, dtype=torch.float32, device="cpu")
    language_model.embed_tokens.register_buffer("embed_scale", scale, persistent=False)
    left = _meta_non_persistent_buffers(encoder)
    if left:
        raise RuntimeError(f"Gemma 4 buffers this transformers version adds are not filled: {left}")
    return encoder


GEMMA4_BUFFER_OPS = ModuleOps(name="Gemma4Buffers", matcher=_is_gemma4_encoder, mutator=fill_gemma4_buffers)


def gemma4_tokenizer_ops(packed: PackedTextEncoder) -> ModuleOps:
    """Module op that attaches the file's tokenizer (Gemma 4 unified has no processor: it only encodes)."""

    def load_tokenizer(encoder: torch.nn.Module) -> torch.nn.Module:
        encoder.tokenizer = PromptTokenizer(build_hf_tokenizer(packed))
        return encoder

    return ModuleOps("Gemma4TokenizerLoad", lambda m: _is_gemma4_encoder(m) and m.tokenizer is None, load_tokenizer)


def gemma4_text_encoder_ops(packed: PackedTextEncoder) -> tuple[SDOps, tuple[ModuleOps, ...]]:
    """Key ops and module ops (buffers, then the tokenizer) of the text encoder's builder."""
    return gemma4_key_ops(packed.comfy_flat), (GEMMA4_BUFFER_OPS, gemma4_tokenizer_ops(packed))


def gemma4_builder(packed: PackedTextEncoder) -> SingleGPUModelBuilder:
    """Builds ltx-core's ``GemmaTextEncoder`` around the file's Gemma 4 (config from ``gemma_config``)."""
    key_ops, module_ops = gemma4_text_encoder_ops(packed)
    return SingleGPUModelBuilder(model_class_configurator=Gemma4TextEncoderFromConfig, model_path=str(packed.path),
                                 model_sd_ops=key_ops, module_ops=module_ops,
                                 model_loader=GemmaDirectoryLoader(packed.config))  # fmt: skip


__all__ = [
    "ENCODE_MODEL_TYPE",
    "GEMMA4_BUFFER_OPS",
    "TOKENIZER_MAX_LENGTH",
    "Gemma4TextEncoderFromConfig",
    "PackedTextEncoder",
    "PromptTokenizer",
    "build_gemma4",
    "build_hf_tokenizer",
    "fill_gemma4_buffers",
    "gemma4_builder",
    "gemma4_hf_config",
    "gemma4_key_ops",
    "gemma4_text_encoder_ops",
    "gemma4_tokenizer_ops",
    "inspect_packed_text_encoder",
    "read_asset",
    "read_sidecar",
]
