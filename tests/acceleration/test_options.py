"""The compile policy (by device and token count), --attention and the checks made before any model loads."""

from __future__ import annotations

import importlib.util

import pytest

from ltx_pipelines.acceleration import options as options_module
from ltx_pipelines.acceleration.options import COMPILE_MIN_VIDEO_TOKENS, AccelerationOptions
from ltx_pipelines.utils.errors import InputError


def test_cuda_compiles_large_passes_by_default_and_the_cpu_never() -> None:
    default = AccelerationOptions()
    assert default.compiles_at("cuda", COMPILE_MIN_VIDEO_TOKENS) and default.compiles_at("cuda", 24576)
    assert not default.compiles_at("cuda", COMPILE_MIN_VIDEO_TOKENS - 1)
    assert not default.compiles_at("cpu", 24576) and not default.compiles("cpu") and not default.enabled("cpu")
    assert default.compiles("cuda") and default.enabled("cuda") and default.by_token_count()
    assert not default.compiles_video_decoder()  # the diffusion decoder: --compile only
    assert AccelerationOptions(compile=True).compiles_video_decoder()


@pytest.mark.parametrize(("stage", "video_tokens"), [
    ("stage 1 of 768x512x121 and the distilled stage 1 (H100: 0.77 s compiled vs 1.47 s plain)", 1536),
    ("stage 1 of 1536x1024x121 (512x768)", 6144),
    ("stage 2 of 1536x1024x121", 24576),
])  # fmt: skip
def test_every_measured_stage_of_the_default_generations_compiles_on_cuda(stage: str, video_tokens: int) -> None:
    """The sizes benchmarks/RESULTS.md timed both ways in one run, and where compiled won: all compiled by default."""
    assert AccelerationOptions().compiles_at("cuda", video_tokens), stage


def test_the_flag_overrides_the_token_count() -> None:
    assert AccelerationOptions(compile=True).compiles_at("cuda", 1536)
    assert AccelerationOptions(compile=True).compiles_at("cpu", 10)
    off = AccelerationOptions(compile=False)
    assert not off.compiles_at("cuda", 24576) and not off.enabled("cuda") and not off.by_token_count()


def test_eight_bit_attention_is_refused_where_it_cannot_run(monkeypatch) -> None:  # noqa: ANN001
    with pytest.raises(InputError, match="--attention must be one of"):
        AccelerationOptions(attention="fp4")
    options = AccelerationOptions(attention="8bit")
    assert options.enabled("cpu")  # it runs through our fused block
    with pytest.raises(InputError, match="needs an NVIDIA GPU"):
        options.check_device("cpu")
    real = importlib.util.find_spec
    monkeypatch.setattr(options_module.importlib.util, "find_spec",
                        lambda name, *a: None if name == "sageattention" else real(name, *a))  # fmt: skip
    with pytest.raises(InputError, match="pip install sageattention"):
        options.check_device("cuda")
    AccelerationOptions().check_device("cpu")  # the default needs nothing


def test_eight_bit_attention_is_refused_before_any_model_loads(smoke_bundle, no_model_builds) -> None:  # noqa: ANN001
    from ltx_pipelines import DistilledPipeline

    with pytest.raises(InputError, match="--attention 8bit"):
        DistilledPipeline(checkpoint_path=smoke_bundle.distilled_checkpoint, gemma_root=smoke_bundle.gemma_root,
                          spatial_upsampler_path=smoke_bundle.spatial_upsampler, device="cpu", attention="8bit")  # fmt: skip
