"""Prompt encoding: the embeddings processor run one part at a time equals the whole processor (CPU)."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch

from ltx_pipelines.engine.model_ledger import ModelLedger
from ltx_pipelines.engine.prompts import _hidden_states, encode_prompts, process_in_parts

pytestmark = pytest.mark.usefixtures("one_thread")

PROMPTS = ["a fox crosses a snowy road at dusk", "rain on a tin roof, a dog barks twice"]


def test_processing_in_parts_equals_the_whole_processor(smoke_bundle) -> None:  # noqa: ANN001
    ledger = ModelLedger(smoke_bundle.checkpoint, smoke_bundle.gemma_root, dtype=torch.float32)
    hidden = _hidden_states(ledger, PROMPTS)
    with torch.inference_mode(), ledger.use("embeddings_processor") as processor:
        whole = [processor.process_hidden_states(states, mask) for states, mask in hidden]
        parts = process_in_parts(processor, list(hidden), torch.device("cpu"))
        home = {p.device for p in processor.parameters()}
    assert home == {torch.device("cpu")}  # the parts went back where they came from
    assert len(parts) == len(whole) == 2
    for a, b in zip(parts, whole, strict=True):
        assert torch.equal(a.video_encoding, b.video_encoding)
        assert torch.equal(a.attention_mask, b.attention_mask)
        assert (a.audio_encoding is None) == (b.audio_encoding is None)
        if a.audio_encoding is not None:
            assert torch.equal(a.audio_encoding, b.audio_encoding)


def test_gemma_is_gone_before_the_processor_loads(smoke_bundle, monkeypatch) -> None:  # noqa: ANN001
    """Under the default (low) policy nothing may keep Gemma alive while the processor runs."""
    ledger = ModelLedger(smoke_bundle.checkpoint, smoke_bundle.gemma_root, dtype=torch.float32, memory_policy="low")
    built, get = {}, ledger.get

    def recording_get(name: str, **kwargs: object) -> torch.nn.Module:
        model = get(name, **kwargs)
        built[name] = weakref.ref(model)
        if name == "embeddings_processor":
            gc.collect()
            built["gemma alive when the processor loaded"] = built["text_encoder"]() is not None
        return model

    monkeypatch.setattr(ledger, "get", recording_get)
    encode_prompts(ledger, PROMPTS[:1])
    assert built["gemma alive when the processor loaded"] is False
