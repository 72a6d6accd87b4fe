"""Prompt encoding: Gemma hidden states -> feature extractor -> per-modality connectors."""

from __future__ import annotations

import logging
import time

import torch

from ltx_pipelines.utils.guidance import PromptEmbeddings
from ltx_pipelines.utils.model_ledger import ModelLedger

logger = logging.getLogger(__name__)


def encode_prompts(ledger: ModelLedger, prompts: list[str]) -> list[PromptEmbeddings]:
    """Encode each prompt once per ledger: repeated prompts skip Gemma entirely."""
    missing = [p for p in dict.fromkeys(prompts) if p not in ledger.prompt_cache]
    with ledger.timed("text encoding"):
        if missing:
            started = time.perf_counter()
            for prompt, embeddings in zip(missing, _encode(ledger, missing), strict=True):
                ledger.prompt_cache[prompt] = embeddings
            logger.info("Encoded %d prompt(s) in %.1f s", len(missing), time.perf_counter() - started)
    return [ledger.prompt_cache[p] for p in prompts]


def _encode(ledger: ModelLedger, prompts: list[str]) -> list[PromptEmbeddings]:
    with torch.inference_mode():
        with ledger.use("text_encoder") as text_encoder:
            hidden = [text_encoder.encode(prompt) for prompt in prompts]
        with ledger.use("embeddings_processor") as processor:
            encoded = [processor.process_hidden_states(states, mask) for states, mask in hidden]
    return [
        PromptEmbeddings(out.video_encoding.to(ledger.dtype), _maybe(out.audio_encoding, ledger.dtype))
        for out in encoded
    ]


def _maybe(tensor: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    return tensor.to(dtype) if tensor is not None else None
