"""Gemma streamed by layer equals the resident Gemma, on the smoke bundle's tiny two-layer Gemma (CPU).

The streamed encoder is what the ledger builds for an explicit ``offload`` of cpu/disk on the CPU, so
these tests drive it through the ledger exactly as the pipelines do. Its weights come from the
Gemma weights split into three shard files, one layer across two of them, so the routing of each key
to its file is exercised too (the resident encoder reads the smoke bundle's single file).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ltx_pipelines import DistilledPipeline
from ltx_pipelines.engine.model_ledger import ModelLedger
from ltx_pipelines.engine.prompt_enhancement import enhance_prompt
from ltx_pipelines.engine.prompts import encode_prompts
from ltx_pipelines.memory.streamed_text_encoder import HOST_MODULES, LAYERS, StreamedTextEncoder
from ltx_pipelines.memory.streaming import ImmediateTransfers, LayerLayout, MappedStore

pytestmark = pytest.mark.usefixtures("one_thread")

PROMPTS = ["a fox crosses a snowy road at dusk", "rain on a tin roof, a dog barks twice"]
DTYPES = [torch.float32, torch.bfloat16]


@pytest.fixture(scope="module")
def sharded_gemma(smoke_bundle, tmp_path_factory) -> Path:  # noqa: ANN001
    """The smoke Gemma directory with its weights in three shards; layer 0 is split over the first two."""
    root = tmp_path_factory.mktemp("gemma-shards")
    source = Path(smoke_bundle.gemma_root)
    for path in source.iterdir():
        if path.suffix != ".safetensors":
            shutil.copy(path, root / path.name)
    with safe_open(str(source / "model.safetensors"), framework="pt") as f:
        tensors = {key: f.get_tensor(key) for key in f.keys()}
    layer0 = sorted(k for k in tensors if ".layers.0." in k and "vision" not in k)
    first = {"language_model.model.embed_tokens.weight", *layer0[: len(layer0) // 2]}
    second = {k for k in tensors if ".layers." in k and "vision" not in k} - first
    shards = [first, second, set(tensors) - first - second]
    for i, keys in enumerate(shards):
        save_file({k: tensors[k] for k in sorted(keys)}, str(root / f"model-0000{i + 1}-of-00003.safetensors"))
    return root


def resident(smoke_bundle, dtype: torch.dtype, **kwargs) -> ModelLedger:  # noqa: ANN001, ANN003
    return ModelLedger(smoke_bundle.distilled_checkpoint, smoke_bundle.gemma_root, dtype=dtype, **kwargs)


def streamed(smoke_bundle, gemma_root: Path, dtype: torch.dtype, **kwargs) -> ModelLedger:  # noqa: ANN001, ANN003
    return ModelLedger(smoke_bundle.distilled_checkpoint, gemma_root, dtype=dtype, offload="disk", **kwargs)


def owner(ledger: ModelLedger) -> StreamedTextEncoder:
    streaming = getattr(ledger.get("text_encoder"), "ltx_streaming", None)
    assert isinstance(streaming, StreamedTextEncoder)
    return streaming


def encode(ledger: ModelLedger, prompt: str) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
    with torch.inference_mode():
        return ledger.get("text_encoder").encode(prompt)


# --------------------------------------------------------------------------- equality


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_streamed_hidden_states_equal_the_resident_ones_bit_for_bit(
    smoke_bundle, sharded_gemma, dtype,  # noqa: ANN001
) -> None:
    a, b = resident(smoke_bundle, dtype), streamed(smoke_bundle, sharded_gemma, dtype)
    for prompt in PROMPTS:
        (states_a, mask_a), (states_b, mask_b) = encode(a, prompt), encode(b, prompt)
        assert len(states_a) == len(states_b) == 3  # the embeddings and two layers
        for x, y in zip(states_a, states_b, strict=True):
            assert x.dtype == y.dtype == dtype and torch.equal(x, y)
        assert torch.equal(mask_a, mask_b)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_encode_prompts_gives_equal_embeddings(smoke_bundle, sharded_gemma, dtype) -> None:  # noqa: ANN001
    a = encode_prompts(resident(smoke_bundle, dtype), PROMPTS)
    b = encode_prompts(streamed(smoke_bundle, sharded_gemma, dtype), PROMPTS)
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x.video, y.video)
        assert (x.audio is None) == (y.audio is None) and (x.audio is None or torch.equal(x.audio, y.audio))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_prompt_enhancement_streamed_gives_the_same_text(
    smoke_bundle, sharded_gemma, dtype, make_image,  # noqa: ANN001
) -> None:
    a, b = resident(smoke_bundle, dtype), streamed(smoke_bundle, sharded_gemma, dtype)
    text = enhance_prompt(a, PROMPTS[0], seed=4, max_new_tokens=10)
    assert text != PROMPTS[0] and enhance_prompt(b, PROMPTS[0], seed=4, max_new_tokens=10) == text
    image = make_image()  # i2v runs the vision tower, which stays on the device
    text = enhance_prompt(a, PROMPTS[0], image_path=image, seed=4, max_new_tokens=6)
    assert enhance_prompt(b, PROMPTS[0], image_path=image, seed=4, max_new_tokens=6) == text


# --------------------------------------------------------------------------- mechanics


@pytest.fixture(scope="module")
def ledger(smoke_bundle, sharded_gemma) -> ModelLedger:  # noqa: ANN001
    return streamed(smoke_bundle, sharded_gemma, torch.float32)


def test_layers_stream_in_order_once_per_pass(smoke_bundle, sharded_gemma, monkeypatch) -> None:  # noqa: ANN001
    ledger = streamed(smoke_bundle, sharded_gemma, torch.float32)
    streaming = owner(ledger)
    order: list[int] = []
    materialize = streaming.streamer.materialize
    monkeypatch.setattr(streaming.streamer, "materialize", lambda i, views: order.append(i) or materialize(i, views))
    encode(ledger, PROMPTS[0])
    encode(ledger, PROMPTS[1])
    assert order == [0, 1, 0, 1]
    # Each pass moves each layer once; the copy of layer 0 for the next pass starts during the last layer.
    assert streaming.streamer.transfers_done == 2 * 2 + 1


def test_between_uses_the_layers_hold_no_weights(ledger: ModelLedger) -> None:
    streaming = owner(ledger)
    encode(ledger, PROMPTS[0])
    encoder = ledger.get("text_encoder")
    layer_tensors = [t for layer in streaming.layers for t in (*layer.parameters(), *layer.buffers())]
    assert layer_tensors and all(t.is_meta for t in layer_tensors)
    outside = [(n, t) for n, t in (*encoder.named_parameters(), *encoder.named_buffers()) if not n.startswith(LAYERS)]
    assert not [n for n, t in outside if t.is_meta]
    # The token embedding and the tied lm_head are one host tensor, as in the file.
    embedding, lm_head = (encoder.get_submodule(name).weight for name in HOST_MODULES)
    assert embedding.device.type == "cpu" and embedding.data_ptr() == lm_head.data_ptr()


def test_the_ledger_logs_that_gemma_streams_with_the_slot_size(
    smoke_bundle, sharded_gemma, caplog,  # noqa: ANN001
) -> None:
    caplog.set_level(logging.INFO)
    ledger = streamed(smoke_bundle, sharded_gemma, torch.float32)
    slot = owner(ledger).store.layout.nbytes
    lines = [r.getMessage() for r in caplog.records if "streamed by layer" in r.getMessage()]
    assert len(lines) == 1 and f"2 device slots of {slot / 2**20:.2f} MiB" in lines[0]


def test_a_released_encoder_stops_its_staging_reader(smoke_bundle, sharded_gemma) -> None:  # noqa: ANN001
    ledger = streamed(smoke_bundle, sharded_gemma, torch.float32, memory_policy="low")
    with ledger.use("text_encoder") as encoder:
        streaming = encoder.ltx_streaming
        assert streaming.store._thread.is_alive()
    assert not streaming.store._thread.is_alive() and not streaming.streamer.slots


def test_resident_unless_asked(smoke_bundle) -> None:  # noqa: ANN001
    assert not hasattr(resident(smoke_bundle, torch.float32).get("text_encoder"), "ltx_streaming")


def test_the_staging_ring_has_no_more_buffers_than_layers() -> None:
    """With more staging buffers than layers, the reader used to wrap onto a layer it held and leak a buffer."""

    class Counting(ImmediateTransfers):
        allocated = 0

        def pinned(self, nbytes: int) -> torch.Tensor:
            Counting.allocated += 1
            return super().pinned(nbytes)

    layers = [{"w": torch.full((4,), float(i))} for i in range(2)]
    store = MappedStore(LayerLayout.of(layers[0]), 2, lambda i: layers[i], Counting(), name="test", staging=3)
    try:
        for index in (0, 1, 0, 1, 0):
            buffer = store.source(index)
            assert torch.equal(store.layout.views(buffer)["w"], layers[index]["w"])
            store.consumed(index, None)
        assert Counting.allocated == 2
    finally:
        store.close()


# --------------------------------------------------------------------------- a whole pipeline


def test_distilled_pipeline_with_disk_offload_gives_the_same_frames(smoke_bundle) -> None:  # noqa: ANN001
    """Gemma and the transformer both streamed (an explicit disk on the CPU) against everything resident."""
    results = {}
    for offload in ("none", "disk"):
        pipeline = DistilledPipeline(
            checkpoint_path=smoke_bundle.distilled_checkpoint, gemma_root=smoke_bundle.gemma_root,
            spatial_upsampler_path=smoke_bundle.spatial_upsampler, offload=offload,
        )  # fmt: skip
        results[offload] = pipeline(prompt=PROMPTS[0], seed=3, height=64, width=64, num_frames=9, frame_rate=24.0)
        streams = hasattr(pipeline.ledger.get("text_encoder"), "ltx_streaming")
        assert streams == (offload == "disk") and (pipeline.ledger._streamed is not None) == streams
    assert torch.equal(results["none"].frames, results["disk"].frames)
