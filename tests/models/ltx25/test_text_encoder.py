"""Our LTX-2.5 text encoder (packed Gemma 4) against the reference's own numbers (``tests/golden/ltx25/text_*``).

``text_encoder.safetensors`` is our smoke writer's tiny packed Gemma 4; ``tests/golden/make_ltx25_text_goldens.py``
ran the reference (LTX-2 1.2.0) on it and stored its tokens and hidden states next to the connector weights in
``text_connectors.safetensors``. Here the file is loaded as the pipelines load it (ltx-core's builder through
:func:`gemma4_builder`).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from golden.ltx25_fixtures import GOLDEN, PROMPTS, TEXT_MANIFEST, TOLERANCE, check_stats, golden, rel_error
from safetensors import safe_open
from safetensors.torch import save_file

from ltx_pipelines.models.ltx25.text_encoder import (
    TOKENIZER_MAX_LENGTH,
    Gemma4TextEncoderFromConfig,
    PromptTokenizer,
    build_gemma4,
    build_hf_tokenizer,
    fill_gemma4_buffers,
    gemma4_builder,
    gemma4_key_ops,
    inspect_packed_text_encoder,
)
from ltx_pipelines.smoke_model.ltx25_text_encoder import VOCAB, write_packed_text_encoder
from ltx_pipelines.utils.errors import InputError

MANIFEST = TEXT_MANIFEST
FIXTURE = GOLDEN / MANIFEST["text_encoder"]["file"]

pytestmark = pytest.mark.usefixtures("one_thread")








@pytest.fixture(scope="module")
def packed():
    return inspect_packed_text_encoder(FIXTURE)


@pytest.fixture(scope="module")
def encoder(packed) -> torch.nn.Module:
    return gemma4_builder(packed).build(device=torch.device("cpu"), dtype=torch.float32).eval()


def test_fixture_is_the_smoke_writers_file(tmp_path: Path) -> None:
    writer = MANIFEST["text_encoder"]["writer"]
    path = tmp_path / "te.safetensors"
    write_packed_text_encoder(path, writer["seed"], writer["video_width"], writer["audio_width"])
    assert path.read_bytes() == FIXTURE.read_bytes()  # the writer is byte-reproducible, and unchanged
    assert FIXTURE.stat().st_size < 1_000_000


def test_header_facts(packed) -> None:
    assert packed.model_type == "gemma4_unified" and packed.comfy_flat
    assert (packed.hidden_size, packed.num_hidden_states) == (64, 3)
    assert packed.gemma_version == MANIFEST["text_encoder"]["gemma_version"]
    assert not any(name.startswith(("text_embedding_projection.", "hf_asset__", "tokenizer")) for name in
                   packed.gemma_tensors())  # fmt: skip


@pytest.mark.parametrize("prompt", list(PROMPTS))
def test_tokens_match_the_reference(encoder, prompt: str) -> None:
    ids, mask = encoder.tokenizer.tokenize(PROMPTS[prompt])
    expected = golden("text_connectors.safetensors", prompt)
    assert ids == expected["input_ids"][0].tolist() and mask == expected["attention_mask"][0].tolist()
    assert len(ids) == TOKENIZER_MAX_LENGTH
    first = mask.index(1)
    assert ids[first] == VOCAB.index("<bos>") and set(mask[first:]) == {1} and set(ids[:first]) <= {0}


def test_tokenizer_rules(encoder) -> None:
    tokenizer: PromptTokenizer = encoder.tokenizer
    assert sum(tokenizer.tokenize(PROMPTS["blank"])[1]) == 1  # stripped to nothing: BOS alone
    ids, mask = tokenizer.tokenize(PROMPTS["long"])
    assert sum(mask) == TOKENIZER_MAX_LENGTH and ids[0] == VOCAB.index("<bos>")  # BOS first, the end cut
    assert VOCAB.index("<unk>") in tokenizer.tokenize(PROMPTS["unknown"])[0]
    assert tokenizer.tokenize("  a cat ") == tokenizer.tokenize("a cat")
    assert VOCAB.index("<eos>") not in tokenizer.tokenize("a cat")[0]


@pytest.mark.parametrize("prompt", list(PROMPTS))
def test_hidden_states_match_the_reference(encoder, prompt: str) -> None:
    expected = golden("text_connectors.safetensors", prompt)
    with torch.no_grad():
        states, mask = encoder.encode(PROMPTS[prompt])
    assert len(states) == 3 and mask.shape == (1, TOKENIZER_MAX_LENGTH)  # embeddings + 2 layers (last: normed)
    for layer, state in enumerate(states):
        assert state.dtype == torch.float32 and state.shape == (1, TOKENIZER_MAX_LENGTH, 64)
        assert rel_error(state[:, -48:], expected[f"hidden.{layer}.tail"]) <= TOLERANCE
        check_stats(state, expected["hidden.stats"][layer])


def test_last_hidden_state_is_after_the_final_norm(encoder) -> None:
    tokens = encoder.tokenizer.tokenize(PROMPTS["fox"])
    ids, mask = (torch.tensor([t]) for t in tokens)
    with torch.no_grad():
        out = encoder.model.model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    assert torch.equal(out.hidden_states[-1], out.last_hidden_state)


def meta_encoder(config: dict) -> torch.nn.Module:
    with torch.device("meta"):
        return Gemma4TextEncoderFromConfig.from_config(config)


def test_file_keys_cover_the_model(packed) -> None:
    ops = gemma4_key_ops(comfy_flat=True)
    loaded = {ops.apply_to_key(name) for name in packed.gemma_tensors()}
    assert set(meta_encoder(packed.config).state_dict()) == loaded | {"model.lm_head.weight"}
    tied = ops.apply_to_key_value("model.model.language_model.embed_tokens.weight", torch.zeros(1))
    assert [key for key, _ in tied] == ["model.model.language_model.embed_tokens.weight", "model.lm_head.weight"]


def hf_name(comfy: str) -> str:
    """The Hugging Face checkpoint name of a ComfyUI-flat one (what Google's files call each tensor)."""
    for flat, hf in (("model.", "model.language_model."), ("vision_model.", "model.vision_embedder."),
                     ("multi_modal_projector.", "model.embed_vision."), ("audio_projector.", "model.embed_audio.")):
        if comfy.startswith(flat):
            return hf + comfy[len(flat) :]
    raise AssertionError(comfy)


def legacy_flat_name(comfy: str) -> str:
    """A ComfyUI file that flattened only the language model keeps Hugging Face's tower names."""
    return comfy if comfy.startswith("model.") else hf_name(comfy)


@pytest.mark.parametrize(("rename", "comfy_flat"), [(hf_name, False), (legacy_flat_name, True)])
def test_other_layouts_load_the_same_names(packed, rename, comfy_flat: bool) -> None:
    flat = gemma4_key_ops(comfy_flat=True)
    other = gemma4_key_ops(comfy_flat=comfy_flat)
    for name in packed.gemma_tensors():
        assert other.apply_to_key(rename(name)) == flat.apply_to_key(name), name


def test_hf_layout_file_encodes_the_same(packed, encoder, tmp_path: Path) -> None:
    path = rewritten(tmp_path, rename=lambda name: hf_name(name) if name in packed.gemma_tensors() else name)
    other = inspect_packed_text_encoder(path)
    assert not other.comfy_flat
    model = gemma4_builder(other).build(device=torch.device("cpu"), dtype=torch.float32)
    with torch.no_grad():
        assert torch.equal(model.encode(PROMPTS["fox"])[0][-1], encoder.encode(PROMPTS["fox"])[0][-1])


def test_buffers_are_the_ones_transformers_computes(packed) -> None:
    filled = fill_gemma4_buffers(meta_encoder(packed.config))
    built = build_gemma4(packed.config)  # on the CPU: transformers computes every buffer itself
    theirs = {f"model.{name}": b for name, b in built.named_buffers() if not name.endswith("layer_scalar")}
    ours = dict(filled.named_buffers())
    assert any(name.endswith("full_attention_inv_freq") for name in theirs)
    for name, buffer in theirs.items():
        assert ours[name].dtype == buffer.dtype and torch.equal(ours[name], buffer), name
    rotary = filled.model.model.language_model.rotary_emb
    # the global layers rotate a quarter of their wider head (proportional RoPE over global_head_dim = 32)
    assert rotary.full_attention_inv_freq.shape == (16,) and rotary.sliding_attention_inv_freq.shape == (8,)
    assert int((rotary.full_attention_inv_freq != 0).sum()) == 4


# -- refusals and older packs -----------------------------------------------------------------------------


def rewritten(tmp_path: Path, *, drop: tuple[str, ...] = (), metadata: dict | None = None, rename=None,
              retype: dict | None = None) -> Path:
    """The fixture with tensors dropped, renamed or retyped and its metadata changed."""
    with safe_open(str(FIXTURE), framework="pt") as f:
        tensors = {(rename(k) if rename else k): f.get_tensor(k) for k in f.keys() if k not in drop}  # noqa: SIM118
        meta = dict(f.metadata())
    for name, dtype in (retype or {}).items():
        tensors[name] = tensors[name].to(dtype)
    meta.update(metadata or {})
    path = tmp_path / "packed.safetensors"
    save_file(tensors, str(path), metadata={k: v for k, v in meta.items() if v is not None})
    return path


def config_with(**changes: object) -> str:
    with safe_open(str(FIXTURE), framework="pt") as f:
        config = json.loads(f.metadata()["gemma_config"])
    return json.dumps({**config, **changes})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"metadata": {"gemma_config": None}}, "no 'gemma_config'"),
        ({"metadata": {"gemma_config": "{not json"}}, "not valid JSON"),
        ({"metadata": {"gemma_config": config_with(model_type="gemma3")}}, "gemma3 Gemma"),
        ({"metadata": {"gemma_config": config_with(model_type="gemma4")}}, "gemma4 Gemma"),
        ({"drop": ("tokenizer_json",)}, "no tokenizer"),
        ({"drop": ("hf_asset__tokenizer_config.json",)}, "no tokenizer_config.json"),
        ({"rename": lambda k: k.replace("model.layers.", "model.blocks.")}, "no Gemma language-model weights"),
    ],
)
def test_refusals_name_the_file(tmp_path: Path, change: dict, message: str) -> None:
    path = rewritten(tmp_path, **change)
    with pytest.raises(InputError, match=message) as error:
        inspect_packed_text_encoder(path)
    assert str(path) in str(error.value)


def test_older_packs_tokenize_the_same(packed, tmp_path: Path) -> None:
    """Sidecars as metadata strings, the tokenizer as int8 bytes: both as some packers wrote them."""
    with safe_open(str(FIXTURE), framework="pt") as f:
        sidecar = bytes(f.get_tensor("hf_asset__tokenizer_config.json").tolist()).decode()
    path = rewritten(tmp_path, drop=("hf_asset__tokenizer_config.json",), retype={"tokenizer_json": torch.int8},
                     metadata={"tokenizer_config.json": sidecar})  # fmt: skip
    older = PromptTokenizer(build_hf_tokenizer(inspect_packed_text_encoder(path)))
    newer = PromptTokenizer(build_hf_tokenizer(packed))
    for prompt in PROMPTS.values():
        assert older.tokenize(prompt) == newer.tokenize(prompt)
