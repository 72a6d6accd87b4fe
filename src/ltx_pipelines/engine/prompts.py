"""Prompt encoding: Gemma hidden states -> feature extractor -> per-modality connectors."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from ltx_core.text_encoders.gemma.embeddings_processor import EmbeddingsProcessorOutput, convert_to_additive_mask

from ltx_pipelines.engine.guidance import PromptEmbeddings
from ltx_pipelines.engine.model_ledger import ModelLedger

logger = logging.getLogger(__name__)

HiddenStates = tuple[tuple[torch.Tensor, ...], torch.Tensor]  # Gemma's hidden states of every layer, the mask


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
    # Two functions, so that Gemma is gone (no name left holding it) before the processor loads.
    hidden = _hidden_states(ledger, prompts)
    encoded = _embeddings(ledger, hidden)
    return [
        PromptEmbeddings(out.video_encoding.to(ledger.dtype), _maybe(out.audio_encoding, ledger.dtype))
        for out in encoded
    ]


def _hidden_states(ledger: ModelLedger, prompts: list[str]) -> list[HiddenStates]:
    """Gemma's hidden states of each prompt; parked in host memory when the processor runs in parts."""
    out = []
    with torch.inference_mode(), ledger.use("text_encoder") as text_encoder:
        for prompt in prompts:
            states, mask = text_encoder.encode(prompt)
            if ledger.stages_embeddings():  # 49 layers x 1024 tokens: 0.36 GiB a prompt on a 6 GiB budget
                states, mask = tuple(s.cpu() for s in states), mask.cpu()
            out.append((states, mask))
    return out


def _embeddings(ledger: ModelLedger, hidden: list[HiddenStates]) -> list[EmbeddingsProcessorOutput]:
    with torch.inference_mode(), ledger.use("embeddings_processor") as processor:
        if not ledger.stages_embeddings():
            return [processor.process_hidden_states(states, mask) for states, mask in hidden]
        return process_in_parts(processor, hidden, ledger.device)


def process_in_parts(processor: torch.nn.Module, hidden: list[HiddenStates],
                     device: torch.device) -> list[EmbeddingsProcessorOutput]:  # fmt: skip
    """``process_hidden_states`` with the processor held on the host and its two parts moved to the
    device in turn (feature extractor, then connectors): the same operations, in half the GPU memory.
    ``hidden`` is consumed: one prompt's hidden states at a time come to the device, and are freed once
    its features exist."""
    features = []
    with _on_device(processor.feature_extractor, device):
        while hidden:
            states, mask = hidden.pop(0)
            states, mask = tuple(s.to(device) for s in states), mask.to(device)  # one prompt on the device
            video, audio = processor.feature_extractor(states, mask, "left")
            features.append((video, audio, mask))
            del states
    with _on_device(processor.video_connector, device), _on_device(processor.audio_connector, device):
        out = []
        for video, audio, mask in features:
            video, audio, binary = processor.create_embeddings(video, audio, convert_to_additive_mask(mask, video.dtype))
            out.append(EmbeddingsProcessorOutput(video, audio, binary))
        return out


@contextmanager
def _on_device(module: torch.nn.Module | None, device: torch.device) -> Iterator[None]:
    """Move a (host) module to the device for a block of work, and back."""
    if module is None:
        yield
        return
    home = next(module.parameters()).device
    module.to(device)
    try:
        yield
    finally:
        module.to(home)


def _maybe(tensor: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    return tensor.to(dtype) if tensor is not None else None
