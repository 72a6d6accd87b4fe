"""How a pipeline runs its passes with acceleration on: the right executor, the plain path's results."""

from __future__ import annotations

import pytest
import torch

from ltx_pipelines import DistilledPipeline
from ltx_pipelines.acceleration.compiled_blocks import CompiledBlocks
from ltx_pipelines.acceleration.executor import CompiledPasses, accelerated_executor, compiled_engine
from ltx_pipelines.acceleration.options import AccelerationOptions
from ltx_pipelines.acceleration.step_cache import StepCachedPasses
from ltx_pipelines.models.transformer_passes import TransformerPasses

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def fresh_dynamo():  # noqa: ANN201
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def test_pipeline_picks_the_executor(smoke_bundle) -> None:  # noqa: ANN001
    files = dict(checkpoint_path=smoke_bundle.distilled_checkpoint, gemma_root=smoke_bundle.gemma_root,
                 spatial_upsampler_path=smoke_bundle.spatial_upsampler)  # fmt: skip
    transformer = DistilledPipeline(**files).ledger.get("transformer")
    assert type(DistilledPipeline(**files).pass_executor(transformer)) is TransformerPasses  # CPU default: off
    compiled = DistilledPipeline(**files, compile=True).pass_executor(transformer)
    assert isinstance(compiled, CompiledPasses) and compiled.engine is compiled_engine(transformer)  # one per model
    cached = DistilledPipeline(**files, compile=False, step_cache=0.1).pass_executor(transformer)
    assert isinstance(cached, StepCachedPasses) and cached.threshold == 0.1


def test_compiled_schedule_equals_the_plain_passes(transformer, steps, plain_passes) -> None:  # noqa: ANN001
    """STG prefix sharing and the pass schedule over compiled blocks (graph capture only, no codegen)."""
    engine = CompiledBlocks(transformer, backend="aot_eager")
    executor = CompiledPasses(transformer, engine)
    got, want = steps(executor), steps(plain_passes)
    for got_step, want_step in zip(got, want, strict=True):
        for name in want_step:
            for g, w in zip(got_step[name], want_step[name], strict=True):
                torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-5)
    assert engine.stats.graphs == 3  # plain, STG block, isolated: all compiled on the first step


def test_step_cache_through_options(transformer, steps) -> None:  # noqa: ANN001
    executor = accelerated_executor(transformer, AccelerationOptions(compile=False, step_cache=1e9))
    steps(executor)
    assert executor.blocks_reused > 0


def test_the_default_compiles_by_token_count(transformer, step_inputs, monkeypatch) -> None:  # noqa: ANN001
    """--compile unset where compiling is the default: large inputs compiled, small ones on the plain executor."""
    from ltx_pipelines.acceleration import executor as executor_module
    from ltx_pipelines.acceleration import options as options_module
    from ltx_pipelines.acceleration.executor import TokenCountPasses

    monkeypatch.setitem(options_module.COMPILE_BY_DEFAULT, "cpu", True)  # as on CUDA
    picked = accelerated_executor(transformer, AccelerationOptions())
    assert isinstance(picked, TokenCountPasses) and picked.min_tokens == options_module.COMPILE_MIN_VIDEO_TOKENS
    assert isinstance(picked.compiled, CompiledPasses) and type(picked.plain) is TransformerPasses
    video = step_inputs[0]
    assert picked.pick(video) is picked.plain  # the smoke video: a few dozen tokens
    monkeypatch.setattr(picked, "min_tokens", video.latent.shape[1])
    assert picked.pick(video) is picked.compiled
    assert isinstance(accelerated_executor(transformer, AccelerationOptions(compile=True)), CompiledPasses)
    assert type(accelerated_executor(transformer, AccelerationOptions(compile=False))) is TransformerPasses
    del executor_module


def test_a_process_group_keeps_the_plain_default(smoke_bundle) -> None:  # noqa: ANN001
    """Several ranks shard one TransformerPasses executor: the token-count default must not hand them another kind."""
    pipeline = DistilledPipeline(checkpoint_path=smoke_bundle.distilled_checkpoint, gemma_root=smoke_bundle.gemma_root,
                                 spatial_upsampler_path=smoke_bundle.spatial_upsampler)  # fmt: skip
    assert pipeline._local_acceleration() is pipeline.acceleration  # no group: as given
    pipeline.parallel = object()  # as inside a group
    assert pipeline._local_acceleration().compile is False
    pipeline.acceleration = AccelerationOptions(compile=True)
    assert pipeline._local_acceleration().compile is True  # --compile: compiled passes, a TransformerPasses
