"""LTX-2.5's embeddings processor: Gemma 4's hidden states -> the transformer's video and audio text contexts.

The same three parts as LTX-2.3's (ltx-core 1.0.0's ``EmbeddingsProcessor``), with the behaviour of the 2.5
reference (LTX-2 release 1.2.0) where it differs, and with weights from two files:

* **feature extractor** (V2, ltx-core's): per token and layer an RMS norm over the hidden size, the N + 1
  layers flattened (layer index fastest), padding zeroed, then one biased projection per modality (input scaled
  by sqrt(width / D)). Its weights ``text_embedding_projection.*`` live in the TEXT ENCODER file; D and N come
  from the file's ``gemma_config``.
* **the reorder to right padding** (new in 1.2.0): the tokenizer pads on the left; before the connectors the
  tokens are stably sorted so the prompt's tokens come first in their order, padding last, and the mask with them.
* **connectors** (ltx-core's 1-D transformer, from the TRANSFORMER file's
  ``model.diffusion_model.{video,audio}_embeddings_connector.*``), as 1.2.0 configures them: ``rope_type``
  split when the config omits it (1.0.0: interleaved), ``connector_ff_bias`` (feed-forward biases, default on),
  and padded positions replaced by the learnable registers in place (token i of the padding gets register
  i mod 128) -- 1.0.0 instead moved the valid tokens to the front of a left-padded row, which on the
  right-padded rows 1.2.0 hands the connector would put the registers in the wrong places. Any batch size.
* the mask handed on is all ones: every one of the 1024 context tokens is attended to (the DiT gets no
  context mask).

LTX-2 and 2.3 checkpoints keep ltx-core 1.0.0's processor unchanged (``models.gemma``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from ltx_core.loader import SingleGPUModelBuilder
from ltx_core.text_encoders.gemma import EmbeddingsProcessor
from ltx_core.text_encoders.gemma.embeddings_connector import Embeddings1DConnector
from ltx_core.utils import rms_norm

from ltx_pipelines.models.checkpoints import read_header
from ltx_pipelines.models.gemma import EmbeddingsProcessorFromConfig
from ltx_pipelines.models.ltx25.text_encoder import PackedTextEncoder
from ltx_pipelines.utils.errors import InputError

#: Where the processor's ``video_connector.`` / ``audio_connector.`` weights sit in a transformer file.
CONNECTOR_PREFIXES = {
    "video_connector.": "model.diffusion_model.video_embeddings_connector.",
    "audio_connector.": "model.diffusion_model.audio_embeddings_connector.",
}
PROJECTION_PREFIX = "text_embedding_projection."


@dataclass(frozen=True)
class ConnectorSettings:
    """One connector's shape and switches, read from the transformer config as the 1.2.0 reference reads them."""

    heads: int
    head_dim: int
    layers: int
    max_pos: list[int]
    rope_type: str
    double_precision: bool
    gated_attention: bool
    ff_bias: bool

    @classmethod
    def from_config(cls, transformer: dict, audio: bool) -> ConnectorSettings:
        def size(key: str, default: int) -> int:
            video = transformer.get(f"connector_{key}", default)
            return int(transformer.get(f"audio_connector_{key}", video) if audio else video)

        return cls(
            heads=size("num_attention_heads", 30),
            head_dim=size("attention_head_dim", 128),
            layers=size("num_layers", 2),
            max_pos=list(transformer.get("connector_positional_embedding_max_pos", [1])),
            rope_type=transformer.get("rope_type", "split"),
            double_precision=transformer.get("frequencies_precision", False) == "float64",
            gated_attention=bool(transformer.get("connector_apply_gated_attention", False)),
            ff_bias=bool(transformer.get("connector_ff_bias", True)),
        )


def _drop_feed_forward_bias(feed_forward: torch.nn.Module) -> None:
    """ltx-core's FeedForward (Linear, GELU, Linear) with both linears bias-free."""
    for linear in (feed_forward.net[0].proj, feed_forward.net[2]):
        linear.register_parameter("bias", None)


class RightPaddedConnector(Embeddings1DConnector):
    """ltx-core 1.0.0's connector taking right-padded rows, as 1.2.0's does (see the module docstring)."""

    def __init__(self, settings: ConnectorSettings):
        from ltx_core.model.transformer.rope import LTXRopeType

        super().__init__(
            attention_head_dim=settings.head_dim, num_attention_heads=settings.heads, num_layers=settings.layers,
            positional_embedding_max_pos=settings.max_pos, rope_type=LTXRopeType(settings.rope_type),
            double_precision_rope=settings.double_precision, apply_gated_attention=settings.gated_attention,
        )  # fmt: skip
        if not settings.ff_bias:
            for block in self.transformer_1d_blocks:
                _drop_feed_forward_bias(block.ff)

    def _replace_padded_with_learnable_registers(
        self, hidden_states: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded positions take the register of their index (mod the register count); all become attendable."""
        tokens = hidden_states.shape[1]
        if tokens % self.num_learnable_registers:
            raise ValueError(f"{tokens} text tokens are no multiple of the {self.num_learnable_registers} registers.")
        registers = self.learnable_registers.repeat(tokens // self.num_learnable_registers, 1).to(hidden_states.dtype)
        valid = (attention_mask[:, 0, 0, :] >= 0).unsqueeze(-1).to(hidden_states.dtype)
        mixed = valid * hidden_states + (1 - valid) * registers.unsqueeze(0)
        return mixed, torch.zeros_like(attention_mask)

    def forward(
        self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Registers, then the blocks with RoPE over positions 0..T-1 (one table per sample), then an RMS norm."""
        from ltx_core.model.transformer.rope import (
            generate_freq_grid_np,
            generate_freq_grid_pytorch,
            precompute_freqs_cis,
        )

        if self.num_learnable_registers:
            hidden_states, attention_mask = self._replace_padded_with_learnable_registers(hidden_states, attention_mask)
        batch, tokens = hidden_states.shape[:2]
        positions = torch.arange(tokens, dtype=torch.float32, device=hidden_states.device)
        positions = positions[None, None, :].expand(batch, -1, -1)
        pe = precompute_freqs_cis(
            indices_grid=positions, dim=self.inner_dim, out_dtype=hidden_states.dtype,
            theta=self.positional_embedding_theta, max_pos=self.positional_embedding_max_pos,
            num_attention_heads=self.num_attention_heads, rope_type=self.rope_type,
            freq_grid_generator=generate_freq_grid_np if self.double_precision_rope else generate_freq_grid_pytorch,
        )  # fmt: skip
        for block in self.transformer_1d_blocks:
            hidden_states = block(hidden_states, attention_mask=attention_mask, pe=pe)
        return rms_norm(hidden_states), attention_mask


def right_padding_order(additive_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(token order that puts each row's valid tokens first, in their order; the additive mask in that order)."""
    valid = (additive_mask[:, 0, 0, :] >= 0).to(torch.int32)
    order = torch.argsort(valid, dim=-1, descending=True, stable=True)
    reordered = torch.gather(valid, 1, order).to(additive_mask.dtype)
    return order, ((reordered - 1) * torch.finfo(additive_mask.dtype).max)[:, None, None, :]


def _reorder(features: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    return torch.gather(features, 1, order.unsqueeze(-1).expand_as(features))


class RightPaddingEmbeddingsProcessor(EmbeddingsProcessor):
    """ltx-core's processor whose connectors get the features reordered to right padding (1.2.0)."""

    def create_embeddings(
        self, video_features: torch.Tensor, audio_features: torch.Tensor | None, additive_attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        if (self.audio_connector is None) != (audio_features is None):
            raise ValueError("Audio features and the audio connector must be given together.")
        order, mask = right_padding_order(additive_attention_mask)
        video, connector_mask = self.video_connector(_reorder(video_features, order), mask)
        binary = (connector_mask < 1e-6).to(torch.int64).reshape(video.shape[0], video.shape[1], 1)
        audio = None
        if self.audio_connector is not None:
            audio, _ = self.audio_connector(_reorder(audio_features, order), mask)
        return video * binary, audio, binary.squeeze(-1)


@dataclass(frozen=True)
class Ltx25EmbeddingsProcessorFromConfig(EmbeddingsProcessorFromConfig):
    """Configurator (from the transformer file's config) of :class:`RightPaddingEmbeddingsProcessor`."""

    def from_config(self, config: dict) -> torch.nn.Module:
        transformer = config.get("transformer", {})
        return RightPaddingEmbeddingsProcessor(
            feature_extractor=self.feature_extractor(transformer),
            video_connector=RightPaddedConnector(ConnectorSettings.from_config(transformer, audio=False)),
            audio_connector=RightPaddedConnector(ConnectorSettings.from_config(transformer, audio=True)),
        )


def _file_name(model_key: str) -> str:
    """The name a processor tensor has in its file (the inverse of ltx-core's EMBEDDINGS_PROCESSOR_KEY_OPS)."""
    for prefix, stored in CONNECTOR_PREFIXES.items():
        if model_key.startswith(prefix):
            return stored + model_key[len(prefix) :]
    return PROJECTION_PREFIX + model_key.removeprefix("feature_extractor.")


def embeddings_processor_builder(transformer_path: str | Path, packed: PackedTextEncoder) -> SingleGPUModelBuilder:
    """Builds the processor: config and connectors from the transformer file, projections from the text encoder's."""
    from ltx_core.text_encoders.gemma import EMBEDDINGS_PROCESSOR_KEY_OPS

    configurator = Ltx25EmbeddingsProcessorFromConfig(packed.hidden_size, packed.num_hidden_states)
    return SingleGPUModelBuilder(model_class_configurator=configurator, model_path=(str(transformer_path),
                                 str(packed.path)), model_sd_ops=EMBEDDINGS_PROCESSOR_KEY_OPS)  # fmt: skip


def check_embeddings_files(transformer_path: str | Path, packed: PackedTextEncoder) -> None:
    """Every processor tensor is in its file with the shape the configs give (headers only; nothing loads)."""
    transformer = read_header(transformer_path, "transformer (--transformer-path)")
    configurator = Ltx25EmbeddingsProcessorFromConfig(packed.hidden_size, packed.num_hidden_states)
    with torch.device("meta"):
        processor = configurator.from_config(transformer.config())
    for key, tensor in processor.state_dict().items():
        name = _file_name(key)
        path, tensors = (packed.path, packed.tensors) if name.startswith(PROJECTION_PREFIX) else (
            transformer.path, transformer.tensors)  # fmt: skip
        if name not in tensors:
            raise InputError(f"{path} has no '{name}', which the LTX-2.5 text path needs. Use the transformer and "
                             "text encoder files published together for one model.")  # fmt: skip
        if tuple(tensors[name][1]) != tuple(tensor.shape):
            raise InputError(f"{path}: '{name}' has shape {list(tensors[name][1])}, but the transformer's config and "
                             f"the text encoder's Gemma config give {list(tensor.shape)}: the two files do not belong "
                             "together.")  # fmt: skip


__all__ = [
    "ConnectorSettings",
    "Ltx25EmbeddingsProcessorFromConfig",
    "RightPaddedConnector",
    "RightPaddingEmbeddingsProcessor",
    "check_embeddings_files",
    "embeddings_processor_builder",
    "right_padding_order",
]
