"""Gemma text-encoder building blocks sized from the Gemma directory itself.

ltx-core 1.0.0 hard-codes the Gemma-3-12B config in its text-encoder and
feature-extractor configurators. These replacements read ``config.json`` from the
Gemma directory instead, so the same code loads the real 12B model and the smoke
bundle's two-layer one. The key mapping and the buffers of a meta build are ours
and the loading of tokenizer and processor (``models.gemma3``: ltx-core's assume
transformers 4.57); the tokenizer class and the encoder wrapper are ltx-core's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from ltx_core.loader import SafetensorsModelStateDictLoader, SDOps
from ltx_core.loader.module_ops import ModuleOps

from ltx_pipelines.models.gemma3 import GEMMA3_BUFFER_OPS, build_gemma3, gemma3_asset_ops, gemma3_key_ops
from ltx_pipelines.utils.errors import InputError

# ltx_core.text_encoders imports transformers (over a second): it is imported where a model is
# built, so `--help` and the input checks stay fast.

# Config keys that mark the LTX-2.3 ("V2") text path: projection before the connector.
_V2_KEYS = {
    "caption_proj_before_connector": True,
    "caption_projection_first_linear": False,
    "caption_proj_input_norm": False,
    "caption_projection_second_linear": False,
}


@dataclass(frozen=True)
class GemmaFiles:
    """Where the pieces of a Gemma directory are."""

    root: Path
    config: dict
    weights: tuple[str, ...]

    @property
    def text_config(self) -> dict:
        return self.config.get("text_config", self.config)

    @property
    def hidden_size(self) -> int:
        return int(self.text_config.get("hidden_size", 3840))

    @property
    def num_hidden_states(self) -> int:
        """Hidden states the encoder returns: every layer plus the embeddings."""
        return int(self.text_config.get("num_hidden_layers", 48)) + 1


def find_gemma_files(gemma_root: str | Path) -> GemmaFiles:
    """Locate config and weights under `gemma_root`, with errors that say what is missing."""
    root = Path(gemma_root).expanduser()
    if not root.is_dir():
        raise InputError(f"The Gemma directory (--gemma-root) {root} does not exist or is not a folder.")
    configs = sorted(root.rglob("config.json"), key=lambda p: len(p.parts))
    config = next((json.loads(p.read_text()) for p in configs if "text_config" in json.loads(p.read_text())), None)
    if config is None:
        raise InputError(f"No Gemma-3 config.json (with a 'text_config') found under {root}.")
    weights = sorted(str(p) for p in root.rglob("*.safetensors"))
    if not weights:
        raise InputError(f"No Gemma weights (*.safetensors) found under {root}.")
    for required in ("tokenizer.model", "preprocessor_config.json"):
        if not any(root.rglob(required)):
            raise InputError(f"The Gemma directory {root} has no {required}; download the full model folder.")
    return GemmaFiles(root=root, config=config, weights=tuple(weights))


class GemmaDirectoryLoader(SafetensorsModelStateDictLoader):
    """Reads Gemma weights like any safetensors file, but takes the config from config.json."""

    def __init__(self, config: dict):
        super().__init__()
        self._config = config

    def metadata(self, path: str) -> dict:  # noqa: ARG002 (the config does not live in the weights)
        return self._config


class GemmaTextEncoderFromConfig:
    """Configurator: a meta-device GemmaTextEncoder shaped by the directory's config.json."""

    @classmethod
    def from_config(cls, config: dict) -> torch.nn.Module:
        from ltx_core.text_encoders.gemma import GemmaTextEncoder

        return GemmaTextEncoder(model=build_gemma3(config))


def gemma_text_encoder_ops(files: GemmaFiles) -> tuple[SDOps, tuple[ModuleOps, ...]]:
    """Key ops and module ops (buffers, then tokenizer and processor) of the text encoder's builder."""
    return gemma3_key_ops(), (GEMMA3_BUFFER_OPS, *gemma3_asset_ops(files.root))


@dataclass(frozen=True)
class EmbeddingsProcessorFromConfig:
    """Configurator for feature extractor + connectors, with Gemma's real width and depth."""

    gemma_hidden_size: int
    gemma_hidden_states: int

    def from_config(self, config: dict) -> torch.nn.Module:
        from ltx_core.text_encoders.gemma import EmbeddingsProcessor
        from ltx_core.text_encoders.gemma.embeddings_connector import (
            AudioEmbeddings1DConnectorConfigurator,
            Embeddings1DConnectorConfigurator,
        )

        return EmbeddingsProcessor(
            feature_extractor=self.feature_extractor(config.get("transformer", {})),
            video_connector=Embeddings1DConnectorConfigurator.from_config(config),
            audio_connector=AudioEmbeddings1DConnectorConfigurator.from_config(config),
        )

    def feature_extractor(self, transformer_config: dict) -> torch.nn.Module:
        """The text projection the checkpoint's config asks for: V1 (LTX-2) or V2 (LTX-2.3: before the connectors)."""
        from ltx_core.text_encoders.gemma.feature_extractor import FeatureExtractorV1, FeatureExtractorV2

        flat_dim = self.gemma_hidden_size * self.gemma_hidden_states
        present = {k: transformer_config[k] for k in _V2_KEYS if k in transformer_config}
        if not present:  # LTX-2 (19B): one aggregate projection, shared by video and audio
            return FeatureExtractorV1(
                aggregate_embed=torch.nn.Linear(flat_dim, self.gemma_hidden_size, bias=False), is_av=True
            )
        if present != _V2_KEYS:
            raise InputError(f"Unsupported text-projection config in the checkpoint: {present}.")
        video_dim = transformer_config["num_attention_heads"] * transformer_config["attention_head_dim"]
        audio_dim = transformer_config["audio_num_attention_heads"] * transformer_config["audio_attention_head_dim"]
        return FeatureExtractorV2(
            video_aggregate_embed=torch.nn.Linear(flat_dim, video_dim, bias=True),
            embedding_dim=self.gemma_hidden_size,
            audio_aggregate_embed=torch.nn.Linear(flat_dim, audio_dim, bias=True),
        )
