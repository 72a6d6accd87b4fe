"""Gemma 3 on transformers 5: the parts of ltx-core 1.0.0's Gemma code that assume transformers 4.57.

ltx-core builds Gemma on the meta device and loads the released checkpoint into it. These pieces
break on transformers 5 and are replaced here; the rest (the ``GemmaTextEncoder`` wrapper and its
encode/enhance methods, the tokenizer class, feature extractor, connectors) is still ltx-core's:

* **key mapping**: transformers 5.8 flattened ``SiglipVisionModel`` (its ``vision_model`` child is
  gone), so the checkpoint's ``vision_tower.vision_model.X`` now loads as ``model.model.vision_tower.X``;
  the language-model and projector keys are unchanged.
* **buffers after the meta build**: the checkpoint holds no non-persistent buffers (rotary
  frequencies, the embedding scale, the vision position ids), so they stay on meta and must be
  computed. transformers 5 has one rotary module with per-layer-type buffers instead of 4.57's
  ``rotary_emb`` and ``rotary_emb_local``; it is rebuilt on the CPU by its own class from the config,
  so its frequencies are the ones transformers itself computes (old-style config keys such as
  ``rope_scaling`` and ``rope_local_base_freq`` are converted by ``Gemma3Config`` to ``rope_parameters``).
* **the image processor** for prompt enhancement: ``transformers.AutoImageProcessor`` is a stub
  without torchvision in transformers 5, and with it would pick the torchvision backend. The PIL
  backend is loaded instead: the "slow" processor 4.57 used for the Gemma 3 folders, same pixels.
* **position ids while generating** (prompt enhancement): see :func:`generation_positions_from_mask`.

Together they give what 4.57 gave: on the smoke bundle, hidden states and embeddings are bit-identical
in float32 and bfloat16 on the CPU, and seeded enhancement writes the same text.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from ltx_core.loader import SDOps
from ltx_core.loader.module_ops import ModuleOps

# Checkpoint prefix of the vision tower once ltx-core's key ops have run, and where transformers 5 keeps it.
_VISION_LOADED_AS = "model.model.vision_tower.vision_model."
_VISION_MODULE = "model.model.vision_tower."


def gemma3_config(config: dict) -> object:
    """``Gemma3Config`` of a Gemma directory's config.json (transformers converts old-style rope keys)."""
    from transformers import Gemma3Config

    return Gemma3Config.from_dict(config)


def build_gemma3(config: dict) -> torch.nn.Module:
    """A ``Gemma3ForConditionalGeneration`` for `config`, on whatever device is current (meta in the builder)."""
    from transformers import Gemma3ForConditionalGeneration

    return Gemma3ForConditionalGeneration(gemma3_config(config))


def gemma3_key_ops() -> SDOps:
    """ltx-core's Gemma key ops (prefixes, tied lm_head), plus the flattened vision tower of transformers 5."""
    from ltx_core.text_encoders.gemma import GEMMA_LLM_KEY_OPS

    ops = GEMMA_LLM_KEY_OPS.with_replacement(_VISION_LOADED_AS, _VISION_MODULE)
    return dataclasses.replace(ops, name="GEMMA3_KEY_OPS_TRANSFORMERS5")


def _is_gemma3_encoder(module: torch.nn.Module) -> bool:
    from transformers import Gemma3ForConditionalGeneration

    return isinstance(getattr(module, "model", None), Gemma3ForConditionalGeneration)


def _fill_rotary(language_model: torch.nn.Module) -> None:
    """Rebuild the rotary embedding on the CPU: its class computes every layer type's frequencies."""
    rotary_class = type(language_model.rotary_emb)
    with torch.device("cpu"):
        language_model.rotary_emb = rotary_class(language_model.config)


def _fill_embed_scale(language_model: torch.nn.Module) -> None:
    """Gemma scales token embeddings by sqrt(hidden size), a float32 scalar as the model makes it."""
    scale = torch.tensor(language_model.config.hidden_size**0.5, dtype=torch.float32, device="cpu")
    language_model.embed_tokens.register_buffer("embed_scale", scale, persistent=False)


def _fill_vision_positions(vision_tower: torch.nn.Module) -> None:
    """SigLIP's position ids: 0..num_positions-1, one row."""
    embeddings = vision_tower.embeddings
    positions = torch.arange(embeddings.num_positions, dtype=torch.long, device="cpu").unsqueeze(0)
    embeddings.register_buffer("position_ids", positions, persistent=False)


def _meta_buffers(module: torch.nn.Module) -> list[str]:
    return [name for name, buffer in module.named_buffers() if buffer.is_meta]


def fill_gemma3_buffers(encoder: torch.nn.Module) -> torch.nn.Module:
    """Module op: compute the buffers a meta-built Gemma 3 lacks (no checkpoint stores them).

    Raises if one is left on meta: ltx-core's builder would only log it and return a meta model.
    """
    inner = encoder.model.model
    _fill_rotary(inner.language_model)
    _fill_embed_scale(inner.language_model)
    _fill_vision_positions(inner.vision_tower)
    left = _meta_buffers(encoder)
    if left:
        raise RuntimeError(f"Gemma 3 buffers this transformers version adds are not filled: {left}")
    return encoder


GEMMA3_BUFFER_OPS = ModuleOps(name="Gemma3Buffers", matcher=_is_gemma3_encoder, mutator=fill_gemma3_buffers)

#: Prompt length of the encoder: ltx-core's tokenizer pads and truncates every prompt to it.
TOKENIZER_MAX_LENGTH = 1024


def _folder_of(gemma_root: str | Path, name: str) -> str:
    """The folder under `gemma_root` holding `name` (the shallowest one)."""
    found = sorted(Path(gemma_root).rglob(name), key=lambda p: len(p.parts))
    if not found:
        raise FileNotFoundError(f"No {name} under {gemma_root}.")
    return str(found[0].parent)


def load_image_processor(folder: str) -> object:
    """The Gemma image processor with the PIL backend (the numerics of 4.57's default "slow" one)."""
    from transformers.models.auto.image_processing_auto import AutoImageProcessor

    return AutoImageProcessor.from_pretrained(folder, local_files_only=True, backend="pil")


def gemma3_asset_ops(gemma_root: str | Path) -> tuple[ModuleOps, ModuleOps]:
    """Module ops that attach ltx-core's tokenizer and a ``Gemma3Processor`` (prompt enhancement)."""
    tokenizer_folder = _folder_of(gemma_root, "tokenizer.model")
    processor_folder = _folder_of(gemma_root, "preprocessor_config.json")

    def load_tokenizer(encoder: torch.nn.Module) -> torch.nn.Module:
        from ltx_core.text_encoders.gemma.tokenizer import LTXVGemmaTokenizer

        encoder.tokenizer = LTXVGemmaTokenizer(tokenizer_folder, TOKENIZER_MAX_LENGTH)
        return encoder

    def load_processor(encoder: torch.nn.Module) -> torch.nn.Module:
        from transformers import Gemma3Processor

        image_processor = load_image_processor(processor_folder)
        encoder.processor = Gemma3Processor(image_processor=image_processor, tokenizer=encoder.tokenizer.tokenizer)
        return encoder

    return (
        ModuleOps("TokenizerLoad", lambda m: _is_gemma3_encoder(m) and m.tokenizer is None, load_tokenizer),
        ModuleOps("ProcessorLoad", lambda m: _is_gemma3_encoder(m) and m.processor is None, load_processor),
    )


def _positions_from_mask(module: torch.nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
    """Forward pre-hook: position ids as transformers 4.57's generate made them at every step.

    That is: count the unmasked tokens (cumsum of the mask, minus one), masked tokens at 1, keep the
    positions of the tokens this step feeds. transformers 5 numbers from the first step's ids on, so
    after ltx-core's trailing alignment pad (mask 0, position 0) the answer restarts at position 1.
    """
    mask, ids = kwargs.get("attention_mask"), kwargs.get("input_ids")
    if ids is None:
        ids = kwargs.get("inputs_embeds")
    if mask is None or ids is None or mask.dim() != 2:
        return None
    positions = mask.long().cumsum(-1) - 1
    positions.masked_fill_(mask == 0, 1)
    kwargs["position_ids"] = positions[:, -ids.shape[1] :]
    return args, kwargs


@contextmanager
def generation_positions_from_mask(model: torch.nn.Module) -> Iterator[None]:
    """Within this block ``model.generate`` numbers tokens as transformers 4.57 did (see _positions_from_mask).

    ltx-core's prompt enhancement pads the chat prompt at the end to a multiple of 8 tokens; without
    this, transformers 5 would place the answer's tokens right after position 0, far from the prompt.
    """
    handle = model.register_forward_pre_hook(_positions_from_mask, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()


__all__ = [
    "GEMMA3_BUFFER_OPS",
    "TOKENIZER_MAX_LENGTH",
    "build_gemma3",
    "fill_gemma3_buffers",
    "gemma3_asset_ops",
    "gemma3_config",
    "gemma3_key_ops",
    "generation_positions_from_mask",
    "load_image_processor",
]
