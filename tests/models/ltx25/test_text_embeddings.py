"""Our LTX-2.5 embeddings processor against the reference's own numbers (``tests/golden/ltx25/text_*``).

The reference (LTX-2 1.2.0) ran its ``PromptEncoder`` on our tiny packed Gemma 4 with two transformer-side files
(``text_connectors.safetensors``: every 1.2.0 connector switch on and ``rope_type`` left out;
``text_connectors_plain.safetensors``: the defaults); ``tests/golden/make_ltx25_text_goldens.py`` says how. The
processor loads as the pipelines load it: the transformer file first (config, connectors), the text encoder file
second (projections).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from golden.ltx25_fixtures import GOLDEN, PROMPTS, TEXT_MANIFEST, TOLERANCE, check_stats, golden, rel_error
from ltx_core.text_encoders.gemma import EmbeddingsProcessor
from ltx_core.text_encoders.gemma.embeddings_connector import Embeddings1DConnector
from safetensors import safe_open
from safetensors.torch import save_file

from ltx_pipelines.models.ltx25.text_embeddings import (
    ConnectorSettings,
    RightPaddedConnector,
    RightPaddingEmbeddingsProcessor,
    check_embeddings_files,
    embeddings_processor_builder,
    right_padding_order,
)
from ltx_pipelines.models.ltx25.text_encoder import gemma4_builder, inspect_packed_text_encoder
from ltx_pipelines.smoke_model.ltx25_text_encoder import write_packed_text_encoder
from ltx_pipelines.utils.errors import InputError

MANIFEST = TEXT_MANIFEST
TEXT_ENCODER = GOLDEN / MANIFEST["text_encoder"]["file"]
CONNECTOR_FILES = [entry["file"] for entry in MANIFEST["connectors"].values()]
CPU = torch.device("cpu")

pytestmark = pytest.mark.usefixtures("one_thread")








@pytest.fixture(scope="module")
def packed():
    return inspect_packed_text_encoder(TEXT_ENCODER)


@pytest.fixture(scope="module")
def hidden(packed) -> dict[str, tuple]:
    encoder = gemma4_builder(packed).build(device=CPU, dtype=torch.float32)
    with torch.no_grad():
        return {name: encoder.encode(prompt) for name, prompt in PROMPTS.items()}


def processor_for(file: str, packed) -> RightPaddingEmbeddingsProcessor:
    return embeddings_processor_builder(GOLDEN / file, packed).build(device=CPU, dtype=torch.float32).eval()


@pytest.mark.parametrize("file", CONNECTOR_FILES)
def test_contexts_match_the_reference(file: str, packed, hidden) -> None:
    processor = processor_for(file, packed)
    for prompt, (states, mask) in hidden.items():
        expected = golden(file, prompt)
        with torch.no_grad():
            out = processor.process_hidden_states(states, mask)
        for modality, context in (("video", out.video_encoding), ("audio", out.audio_encoding)):
            assert context.shape == (1, 1024, 32 if modality == "video" else 16)
            assert rel_error(context[:, :48], expected[f"context.{modality}.head"]) <= TOLERANCE, (prompt, modality)
            assert rel_error(context[:, -48:], expected[f"context.{modality}.tail"]) <= TOLERANCE, (prompt, modality)
            check_stats(context, expected[f"context.{modality}.stats"])
        assert torch.equal(out.attention_mask.int(), expected["context.mask"]) and bool(out.attention_mask.all())


def test_features_match_the_reference(packed, hidden) -> None:
    file = CONNECTOR_FILES[0]
    extractor = processor_for(file, packed).feature_extractor
    for prompt, (states, mask) in hidden.items():
        expected = golden(file, prompt)
        with torch.no_grad():
            video, audio = extractor(states, mask)
        for modality, features in (("video", video), ("audio", audio)):
            assert rel_error(features[:, -48:], expected[f"features.{modality}.tail"]) <= TOLERANCE
            check_stats(features, expected[f"features.{modality}.stats"])


def old_connector(ours: RightPaddedConnector) -> Embeddings1DConnector:
    """ltx-core 1.0.0's own connector with our weights and rope type (it only differs in the registers)."""
    old = Embeddings1DConnector(attention_head_dim=ours.inner_dim // ours.num_attention_heads,
                                num_attention_heads=ours.num_attention_heads,
                                num_layers=len(ours.transformer_1d_blocks), rope_type=ours.rope_type,
                                positional_embedding_max_pos=ours.positional_embedding_max_pos).float()  # fmt: skip
    old.load_state_dict(ours.state_dict())
    return old


def test_1_0_0_registers_agree_on_one_left_padded_prompt(packed, hidden) -> None:
    """1.0.0 moved the valid tokens to the front and filled the rest with registers: for one prompt that is the
    reorder + in-place registers of 1.2.0 (what changed for 2.5 is the rope default, biases, gating, batches)."""
    file = CONNECTOR_FILES[1]  # plain connectors: 1.0.0 can build them (biases, no gating, float32 grid)
    ours = processor_for(file, packed)
    old = EmbeddingsProcessor(feature_extractor=ours.feature_extractor, video_connector=old_connector(
        ours.video_connector), audio_connector=old_connector(ours.audio_connector))  # fmt: skip
    states, mask = hidden["fox"]
    with torch.no_grad():
        video = old.process_hidden_states(states, mask).video_encoding
    assert rel_error(video[:, :48], golden(file, "fox")["context.video.head"]) <= TOLERANCE


def test_the_fixture_pins_the_split_rope_default(packed, hidden) -> None:
    """``text_connectors`` leaves rope_type out: with 1.0.0's default (interleaved) the contexts miss the goldens."""
    file = CONNECTOR_FILES[0]
    ours = processor_for(file, packed)
    with safe_open(str(GOLDEN / file), framework="pt") as f:
        transformer = json.loads(f.metadata()["config"])["transformer"]
    assert "rope_type" not in transformer
    interleaved = RightPaddedConnector(ConnectorSettings.from_config({**transformer, "rope_type": "interleaved"},
                                                                     audio=False)).float()  # fmt: skip
    interleaved.load_state_dict(ours.video_connector.state_dict())
    ours.video_connector = interleaved
    states, mask = hidden["fox"]
    with torch.no_grad():
        video = ours.process_hidden_states(states, mask).video_encoding
    assert rel_error(video[:, :48], golden(file, "fox")["context.video.head"]) > 1e-2


def test_connector_settings_follow_1_2_0_defaults() -> None:
    plain = ConnectorSettings.from_config({"connector_num_attention_heads": 4, "connector_attention_head_dim": 8},
                                          audio=True)  # fmt: skip
    assert (plain.heads, plain.head_dim, plain.layers) == (4, 8, 2)  # audio falls back to the video sizes
    assert plain.rope_type == "split" and plain.ff_bias and not plain.gated_attention and plain.max_pos == [1]
    assert not plain.double_precision
    config = {"connector_ff_bias": False, "connector_num_attention_heads": 2, "connector_attention_head_dim": 8}
    connector = RightPaddedConnector(ConnectorSettings.from_config(config, audio=False))
    assert connector.transformer_1d_blocks[0].ff.net[2].bias is None


def test_right_padding_order_is_stable() -> None:
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    additive = (mask - 1).float()[:, None, None, :] * torch.finfo(torch.float32).max
    order, reordered = right_padding_order(additive)
    assert order.tolist() == [[2, 3, 4, 0, 1], [0, 1, 2, 3, 4]]
    assert (reordered[:, 0, 0] >= 0).int().tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]


def test_batch_of_prompts_equals_one_at_a_time(packed, hidden) -> None:
    processor = processor_for(CONNECTOR_FILES[0], packed)
    names = ["fox", "blank"]
    states = tuple(torch.cat([hidden[n][0][i] for n in names]) for i in range(3))
    mask = torch.cat([hidden[n][1] for n in names])
    with torch.no_grad():
        batched = processor.process_hidden_states(states, mask).video_encoding
        single = [processor.process_hidden_states(*hidden[n]).video_encoding for n in names]
    assert rel_error(batched, torch.cat(single)) <= TOLERANCE


def test_files_are_checked_against_each_other(packed, tmp_path: Path) -> None:
    for file in CONNECTOR_FILES:
        check_embeddings_files(GOLDEN / file, packed)
    narrow = tmp_path / "te_24.safetensors"
    write_packed_text_encoder(narrow, 1, video_width=24)
    with pytest.raises(InputError, match="video_aggregate_embed.weight' has shape"):
        check_embeddings_files(GOLDEN / CONNECTOR_FILES[0], inspect_packed_text_encoder(narrow))
    with safe_open(str(GOLDEN / CONNECTOR_FILES[0]), framework="pt") as f:
        kept = {k: f.get_tensor(k) for k in f.keys() if "audio_embeddings_connector" not in k}  # noqa: SIM118
        metadata = f.metadata()
    no_audio = tmp_path / "no_audio.safetensors"
    save_file(kept, str(no_audio), metadata=metadata)
    with pytest.raises(InputError, match=f"{no_audio} has no 'model.diffusion_model.audio_embeddings_connector"):
        check_embeddings_files(no_audio, packed)
