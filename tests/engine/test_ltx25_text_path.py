"""LTX-2.5's text path through the engine: the ledger builds Gemma 4 and the 2.5 processor from a split model's files.

The files are the reference fixtures of ``tests/golden/ltx25``: the packed text encoder and the transformer-side
``text_connectors.safetensors`` (a transformer file whose only tensors are the connectors: all the ledger's text
path reads). The contexts must be the reference's (LTX-2 1.2.0) through ``encode_prompts`` too, Gemma streamed by
layer must equal Gemma resident, and prompt enhancement needs a separate Gemma 3 or dense Gemma 4.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from golden.ltx25_fixtures import GOLDEN, PROMPTS, TEXT_MANIFEST, TOLERANCE, golden, rel_error

from ltx_pipelines.engine import cli
from ltx_pipelines.engine.model_ledger import ModelLedger
from ltx_pipelines.engine.pipeline_base import PipelineBase, check_prompt_enhancer, check_text_encoder
from ltx_pipelines.engine.prompt_enhancement import enhance_prompt
from ltx_pipelines.engine.prompts import _hidden_states, encode_prompts, process_in_parts
from ltx_pipelines.memory.streamed_text_encoder import StreamedTextEncoder
from ltx_pipelines.memory.streaming import MixedLayout
from ltx_pipelines.models.files import ModelFiles, inspect_file
from ltx_pipelines.models.prompt_enhancer import Gemma4PromptEnhancer, inspect_prompt_enhancer
from ltx_pipelines.smoke_model.ltx25_text_encoder import write_packed_text_encoder
from ltx_pipelines.utils.errors import InputError

MANIFEST = TEXT_MANIFEST
TEXT_ENCODER = GOLDEN / MANIFEST["text_encoder"]["file"]
TRANSFORMER = GOLDEN / MANIFEST["connectors"]["text_connectors"]["file"]

pytestmark = pytest.mark.usefixtures("one_thread")


def ledger_for(dtype: torch.dtype = torch.float32, **kwargs: object) -> ModelLedger:
    return ModelLedger(TRANSFORMER, TEXT_ENCODER, dtype=dtype, **kwargs)






def test_encode_prompts_gives_the_reference_contexts() -> None:
    ledger = ledger_for(memory_policy="low")
    encoded = encode_prompts(ledger, list(PROMPTS.values()))
    for name, embeddings in zip(PROMPTS, encoded, strict=True):
        expected = golden(TRANSFORMER, name)
        assert rel_error(embeddings.video[:, :48], expected["context.video.head"]) <= TOLERANCE
        assert rel_error(embeddings.video[:, -48:], expected["context.video.tail"]) <= TOLERANCE
        assert rel_error(embeddings.audio[:, -48:], expected["context.audio.tail"]) <= TOLERANCE
    assert ledger.files_loaded == [str(TEXT_ENCODER), str(TRANSFORMER), str(TEXT_ENCODER)]


def test_processing_in_parts_equals_the_whole_processor() -> None:
    ledger = ledger_for()
    hidden = _hidden_states(ledger, list(PROMPTS.values())[:2])
    with torch.inference_mode(), ledger.use("embeddings_processor") as processor:
        whole = [processor.process_hidden_states(states, mask) for states, mask in hidden]
        parts = process_in_parts(processor, list(hidden), torch.device("cpu"))
    for a, b in zip(parts, whole, strict=True):
        assert torch.equal(a.video_encoding, b.video_encoding) and torch.equal(a.audio_encoding, b.audio_encoding)
        assert bool(a.attention_mask.all())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_gemma4_streamed_by_layer_equals_resident_bit_for_bit(dtype: torch.dtype) -> None:
    resident, streamed = ledger_for(dtype), ledger_for(dtype, offload="disk")
    encoder = streamed.get("text_encoder")
    owner = encoder.ltx_streaming
    assert isinstance(owner, StreamedTextEncoder) and isinstance(owner.store.layout, MixedLayout)  # two layer shapes
    with torch.inference_mode():
        for prompt in ("A red fox runs.", PROMPTS["long"]):
            (states_a, mask_a), (states_b, mask_b) = resident.get("text_encoder").encode(prompt), encoder.encode(prompt)
            assert torch.equal(mask_a, mask_b) and len(states_a) == len(states_b) == 3
            for x, y in zip(states_a, states_b, strict=True):
                assert x.dtype == y.dtype == dtype and torch.equal(x, y)
    assert all(p.is_meta for layer in owner.layers for p in layer.parameters())  # no layer kept between passes
    streamed.release_all()


def test_memory_sizes_come_from_the_packed_header() -> None:
    sizes = ledger_for(torch.bfloat16).model_sizes()
    packed = ledger_for().packed_text_encoder
    gemma = sum(torch.Size(shape).numel() for _, shape in packed.gemma_tensors().values())
    assert sizes.text_encoder.total == 2 * gemma and sizes.text_encoder.num_layers == 2
    assert sizes.text_encoder.embedding == 2 * 64 * packed.text_config["vocab_size"]
    assert sizes.text_encoder.layer > 0  # the wider (global) layer
    assert sizes.components.feature_extractor == 2 * (32 + 16) * (64 * 3 + 1)  # the projections, from the encoder
    assert sizes.components.connectors > 0  # from the transformer file
    assert sizes.transformer.per_token_cross_adaln  # 2.5's audio<->video AdaLN rows are per token


def test_gemma4_only_encodes_and_a_separate_gemma3_enhances(smoke_bundle) -> None:
    ledger = ledger_for()
    assert not ledger.can_enhance_prompts() and ledger.prompt_enhancer_name() == "text_encoder"
    fake = SimpleNamespace(ledger=ledger, files=SimpleNamespace(transformer=SimpleNamespace(path=TRANSFORMER)),
                           parallel=None)  # fmt: skip
    with pytest.raises(InputError, match="--prompt-enhancer-gemma-root"):
        PipelineBase.enhance_prompt(fake, "a cat", enabled=True)
    assert ledger.files_loaded == []  # refused before anything loaded
    assert PipelineBase.enhance_prompt(fake, "a cat", enabled=False) == ("a cat", {})

    enhancing = ledger_for(prompt_enhancer_gemma_root=smoke_bundle.gemma_root, memory_policy="keep")
    assert enhancing.can_enhance_prompts() and enhancing.prompt_enhancer_name() == "prompt_enhancer"
    gemma3 = ModelLedger(smoke_bundle.checkpoint, smoke_bundle.gemma_root, memory_policy="keep")
    text = enhance_prompt(enhancing, "a fox crosses a snowy road", seed=3, max_new_tokens=8)
    assert text == enhance_prompt(gemma3, "a fox crosses a snowy road", seed=3, max_new_tokens=8)
    assert str(TEXT_ENCODER) not in enhancing.files_loaded  # Gemma 4 never loaded to enhance


def test_a_separate_dense_gemma4_enhances_text_prompts(dense_gemma4: Path, make_image) -> None:  # noqa: ANN001
    ledger = ledger_for(prompt_enhancer_gemma_root=dense_gemma4, memory_policy="keep")
    fake = SimpleNamespace(ledger=ledger, files=SimpleNamespace(transformer=SimpleNamespace(path=TRANSFORMER)),
                           parallel=None, prompt_enhancer=inspect_prompt_enhancer(dense_gemma4))  # fmt: skip
    image = SimpleNamespace(path=make_image(), frame_idx=0)
    with pytest.raises(InputError, match="Gemma 4 prompt enhancer .* text prompts only"):
        PipelineBase.enhance_prompt(fake, "a cat", enabled=True, images=[image])
    assert ledger.files_loaded == []  # refused before anything loaded
    text, metadata = PipelineBase.enhance_prompt(fake, "a fox crosses a snowy road", enabled=True, seed=3)
    assert text != "a fox crosses a snowy road" and metadata == {"enhanced_prompt": text}
    assert ledger.files_loaded == [str(dense_gemma4 / "model.safetensors")]  # Gemma 4 unified never loaded
    assert isinstance(ledger.get("prompt_enhancer"), Gemma4PromptEnhancer)


def split_files(text_encoder: Path = TEXT_ENCODER) -> ModelFiles:
    transformer = inspect_file(TRANSFORMER, "transformer")
    return ModelFiles(transformer=transformer, video_vae=transformer, audio_vae=transformer, text_encoder=text_encoder)


def test_split_text_path_is_checked_before_anything_loads(tmp_path: Path) -> None:
    files = split_files()
    assert files.split
    check_text_encoder(files)
    narrow = tmp_path / "narrow.safetensors"
    write_packed_text_encoder(narrow, 0, video_width=24)
    with pytest.raises(InputError, match="do not belong together"):
        check_text_encoder(split_files(narrow))


def test_prompt_enhancer_root_is_a_gemma3_or_dense_gemma4_folder(
    smoke_bundle, dense_gemma4: Path, tmp_path: Path  # noqa: ANN001
) -> None:
    files = split_files()
    assert check_prompt_enhancer(files, None) is None
    assert check_prompt_enhancer(files, smoke_bundle.gemma_root).root == Path(smoke_bundle.gemma_root)
    assert check_prompt_enhancer(files, dense_gemma4).family == "gemma4"
    with pytest.raises(InputError, match="--prompt-enhancer-gemma-root .* Gemma 3 folder or a dense Gemma 4"):
        check_prompt_enhancer(files, tmp_path)
    assert check_prompt_enhancer(files, TEXT_ENCODER) is None  # the encoder itself: it enhances or is refused then
    copy = tmp_path / "gemma4.safetensors"
    copy.write_bytes(TEXT_ENCODER.read_bytes())
    with pytest.raises(InputError, match="--prompt-enhancer-gemma-root"):
        check_prompt_enhancer(files, copy)  # a packed Gemma 4 (unified) cannot generate


def test_cli_flag_reaches_the_constructor() -> None:
    parser = cli.base_parser("x", height=64, width=64, size_multiple=32)
    args = parser.parse_args(["--transformer-path", "t", "--prompt", "p", "--output-path", "o.mp4",
                              "--enhance-prompt", "--prompt-enhancer-gemma-root", "g"])  # fmt: skip
    assert cli.model_kwargs(args)["prompt_enhancer_gemma_root"] == str(Path("g").resolve())
