"""--offload on whole pipelines (CPU, smoke bundle): streamed frames equal resident ones; the pre-flight.

On the CPU the "device" is the host itself, so streaming runs its whole machinery (stores, ring,
per-block LoRA fusion) with immediate copies: the arithmetic is the resident one, hence exact.
"""

from __future__ import annotations

import math
import wave
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import two_stage_files
from ltx_core.components.guiders import MultiModalGuiderParams

from ltx_pipelines import A2VidPipelineTwoStage, DistilledPipeline, TI2VidTwoStagesPipeline
from ltx_pipelines.engine.model_ledger import ModelLedger
from ltx_pipelines.memory.host import GIB
from ltx_pipelines.utils.errors import InputError

pytestmark = pytest.mark.usefixtures("one_thread")
SMALL = dict(seed=5, height=128, width=128, num_frames=9, frame_rate=24.0)
CHEAP = MultiModalGuiderParams(cfg_scale=3.0, stg_scale=1.0, rescale_scale=0.7, modality_scale=3.0, stg_blocks=[29])


def frames_of(result) -> torch.Tensor:  # noqa: ANN001
    return result.frames


def two_stage(bundle, offload: str):  # noqa: ANN001, ANN201
    pipeline = TI2VidTwoStagesPipeline(**two_stage_files(bundle, 0.8), offload=offload)
    return pipeline(prompt="a kite over the dunes", num_inference_steps=2, video_guider_params=CHEAP,
                    audio_guider_params=CHEAP, **SMALL)  # fmt: skip


@pytest.mark.parametrize("offload", ["cpu", "disk"])
def test_two_stage_streamed_equals_resident(smoke_bundle, offload) -> None:  # noqa: ANN001
    """Stage 1 guided (four passes block-major), stage 2 with the distilled LoRA fused block by block."""
    resident = two_stage(smoke_bundle, "none")
    streamed = two_stage(smoke_bundle, offload)
    assert torch.equal(frames_of(streamed), frames_of(resident))
    assert torch.equal(streamed.audio.waveform, resident.audio.waveform)


def test_distilled_streamed_equals_resident(smoke_bundle) -> None:  # noqa: ANN001
    def run(offload: str):  # noqa: ANN202
        pipeline = DistilledPipeline(checkpoint_path=smoke_bundle.distilled_checkpoint, gemma_root=smoke_bundle.gemma_root,
                                     spatial_upsampler_path=smoke_bundle.spatial_upsampler, offload=offload)  # fmt: skip
        return pipeline(prompt="a tram at night", **SMALL)

    assert torch.equal(frames_of(run("cpu")), frames_of(run("none")))


def test_audio_to_video_streamed_equals_resident(smoke_bundle, tmp_path: Path) -> None:  # noqa: ANN001
    wav = tmp_path / "tone.wav"
    t = np.arange(22050) / 22050
    with wave.open(str(wav), "wb") as f:
        f.setnchannels(1), f.setsampwidth(2), f.setframerate(22050)
        f.writeframes((0.4 * np.sin(2 * math.pi * 330 * t) * 32767).astype(np.int16).tobytes())

    def run(offload: str):  # noqa: ANN202
        pipeline = A2VidPipelineTwoStage(**two_stage_files(smoke_bundle, 0.8), offload=offload)
        return pipeline(prompt="a drummer", audio_path=wav, num_inference_steps=2, **SMALL)

    assert torch.equal(frames_of(run("disk")), frames_of(run("none")))


def test_a_streamed_pipeline_reads_the_checkpoint_once(smoke_bundle) -> None:  # noqa: ANN001
    pipeline = TI2VidTwoStagesPipeline(**two_stage_files(smoke_bundle, 0.8), offload="cpu")
    for _ in range(2):
        pipeline(prompt="a kite", num_inference_steps=1, video_guider_params=CHEAP, audio_guider_params=CHEAP, **SMALL)
    assert pipeline.ledger.files_loaded.count(str(smoke_bundle.checkpoint)) >= 1
    streamed = pipeline.ledger._streamed
    assert streamed is not None and streamed.streamer.transfers_done > 0


def test_the_preflight_refuses_before_any_model_loads(smoke_bundle, monkeypatch, no_model_builds) -> None:  # noqa: ANN001
    """A GPU with 2 GiB free (faked) and a 1 GiB cap: the request cannot fit; nothing is built."""
    monkeypatch.setattr(ModelLedger, "free_gpu_bytes", lambda self: 2 * GIB)
    pipeline = TI2VidTwoStagesPipeline(**two_stage_files(smoke_bundle, 0.8), max_gpu_memory=1)
    with pytest.raises(InputError, match="GPU memory") as e:
        pipeline(prompt="a kite", num_inference_steps=2, **SMALL)
    assert "--max-gpu-memory" in str(e.value)
    assert pipeline.ledger.files_loaded == []


def test_validate_runs_the_preflight_too(smoke_bundle, monkeypatch, no_model_builds) -> None:  # noqa: ANN001
    """The server refuses such a request with 422 before queueing it: validate() sees the refusal."""
    monkeypatch.setattr(ModelLedger, "free_gpu_bytes", lambda self: 2 * GIB)
    pipeline = TI2VidTwoStagesPipeline(**two_stage_files(smoke_bundle, 0.8), max_gpu_memory=1)
    with pytest.raises(InputError, match="GPU memory"):
        pipeline.validate(prompt="a kite", num_inference_steps=2, **SMALL)


def test_a_bad_offload_value_is_refused_clearly(smoke_bundle) -> None:  # noqa: ANN001
    with pytest.raises(InputError, match="offload must be one of none, cpu, disk, auto"):
        TI2VidTwoStagesPipeline(**two_stage_files(smoke_bundle, 0.8), offload="gpu")
    with pytest.raises(InputError, match="--max-gpu-memory must be a positive"):
        TI2VidTwoStagesPipeline(**two_stage_files(smoke_bundle, 0.8), max_gpu_memory=0)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_streamed_blocks_with_loras_hold_the_weights_ltx_core_fuses(smoke_bundle, dtype, monkeypatch) -> None:  # noqa: ANN001
    """In the file's dtype (bf16) the LoRAs are added into the ring's slot in place (no second copy of the
    block on the device); in another dtype they are fused into a copy. Either way ltx-core's bits."""
    from ltx_pipelines.engine.model_ledger import comfy_lora
    from ltx_pipelines.memory.streamed_transformer import streamed_transformer

    loras = (comfy_lora(smoke_bundle.distilled_lora, 0.8), comfy_lora(smoke_bundle.ic_lora, -0.3))
    built = ModelLedger(smoke_bundle.checkpoint, smoke_bundle.gemma_root, loras=loras, dtype=dtype,
                        memory_policy="low").get("transformer").state_dict()  # fmt: skip
    ledger = ModelLedger(smoke_bundle.checkpoint, smoke_bundle.gemma_root, loras=loras[:1], dtype=dtype, offload="cpu")
    owner = streamed_transformer(ledger.get("transformer", extra_loras=loras[1:]))
    streamer, in_place, fuse = owner.streamer, [], owner._fused_in_place
    monkeypatch.setattr(owner, "_fused_in_place", lambda i, views: in_place.append(i) or fuse(i, views))
    for step in range(2):  # a second pass over the blocks must not add the LoRAs twice
        for index in range(streamer.num_layers):
            streamer.acquire(index)
            block = {f"velocity_model.transformer_blocks.{index}.{k}": v for k, v in streamer.layers[index].state_dict().items()}
            differing = [k for k, v in block.items() if not torch.equal(v, built[k])]
            assert not differing, (step, differing[:3])
    streamer.release()
    assert bool(in_place) is (dtype == torch.bfloat16)  # the smoke checkpoint is stored in bf16


def test_by_default_models_stay_loaded_only_while_they_all_fit(smoke_bundle, monkeypatch) -> None:  # noqa: ANN001
    """No --memory-policy: a GPU that holds everything keeps it (a second call reloads nothing); when the
    next request leaves no room for that, what was kept is freed before it plans its stages."""
    from ltx_pipelines.engine.model_ledger import MemoryPolicy

    free = {"bytes": 100 * GIB}
    monkeypatch.setattr(ModelLedger, "free_gpu_bytes", lambda self: free["bytes"])
    pipeline = TI2VidTwoStagesPipeline(**two_stage_files(smoke_bundle, 0.8))
    ledger = pipeline.ledger
    reads = []
    for _ in range(2):
        pipeline(prompt="a kite", num_inference_steps=1, video_guider_params=CHEAP, audio_guider_params=CHEAP, **SMALL)
        reads.append(len(ledger.files_loaded))
    assert ledger.plan.keep_models and ledger.memory_policy is MemoryPolicy.KEEP
    assert reads[0] > 0 and reads[1] == reads[0] and ledger._models  # the second call read no file
    # 3.9 GiB usable: the low plan fits (the embeddings processor in parts), every model kept would not.
    free["bytes"] = int(4.65 * GIB)
    pipeline.validate(prompt="a kite", num_inference_steps=1, **SMALL)
    assert not ledger.plan.keep_models and ledger.memory_policy is MemoryPolicy.LOW
    assert not ledger._models


def test_an_explicit_low_policy_never_keeps(smoke_bundle, monkeypatch, no_model_builds) -> None:  # noqa: ANN001
    monkeypatch.setattr(ModelLedger, "free_gpu_bytes", lambda self: 100 * GIB)
    pipeline = TI2VidTwoStagesPipeline(**two_stage_files(smoke_bundle, 0.8), memory_policy="low")
    pipeline.validate(prompt="a kite", num_inference_steps=1, **SMALL)
    assert not pipeline.ledger.plan.keep_models


def test_an_explicit_keep_that_cannot_fit_frees_after_use_and_says_so_once(smoke_bundle, monkeypatch, caplog,
                                                                            no_model_builds) -> None:  # noqa: ANN001
    monkeypatch.setattr(ModelLedger, "free_gpu_bytes", lambda self: int(4.65 * GIB))
    pipeline = TI2VidTwoStagesPipeline(**two_stage_files(smoke_bundle, 0.8), memory_policy="keep")
    for _ in range(2):
        pipeline.validate(prompt="a kite", num_inference_steps=1, **SMALL)
    assert not pipeline.ledger.plan.keep_models
    assert caplog.text.count("--memory-policy keep: the models do not all fit") == 1
