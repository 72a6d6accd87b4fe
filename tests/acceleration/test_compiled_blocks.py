"""The compiled engine: one graph per variant for all blocks, no recompiles, the plain path's numbers."""

from __future__ import annotations

import pytest
import torch
from torch._dynamo.utils import counters

from ltx_pipelines.acceleration.compiled_blocks import CompiledBlocks

pytestmark = pytest.mark.usefixtures("one_thread")

CASES = ["plain", "stg", "isolated", "mixed"]


@pytest.fixture(autouse=True)
def fresh_dynamo():  # noqa: ANN201
    """Each test starts with no compiled code (dynamo's caches are per process)."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def test_one_graph_per_variant_serves_every_block(transformer, batch_for, reference, run) -> None:  # noqa: ANN001
    """30 blocks, four kinds of batch: five graphs (plain, STG block, isolated, and two for the mixed batch)."""
    engine = CompiledBlocks(transformer, backend="aot_eager")  # graph capture without code generation: fast
    before = counters["stats"]["unique_graphs"]
    for case in CASES:
        video, audio, perturbations = batch_for(case)
        for got, want in zip(run(engine, video, audio, perturbations), reference(case), strict=True):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert engine.stats.fallback is None
    assert engine.stats.graphs == 5 == counters["stats"]["unique_graphs"] - before
    for case in CASES:  # a second step: nothing new to compile
        run(engine, *batch_for(case))
    assert engine.stats.graphs == 5 == counters["stats"]["unique_graphs"] - before


def test_inductor_graph_matches_the_plain_path(transformer, batch_for, reference, run) -> None:  # noqa: ANN001
    """The real compiler (C++ on the CPU): fused kernels, float32 within rounding of ltx-core's forward."""
    engine = CompiledBlocks(transformer)
    video, audio, perturbations = batch_for("plain")
    got = run(engine, video, audio, perturbations)
    for g, w in zip(got, reference("plain"), strict=True):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-4)
        assert not torch.equal(g, w) or g.abs().max() == 0  # really compiled: fused kernels round differently
    assert engine.stats.fallback is None and engine.stats.graphs == 1
    run(engine, video, audio, perturbations)
    assert engine.stats.graphs == 1


def test_a_graph_break_falls_back_to_eager(  # noqa: ANN201
    transformer, batch_for, reference, run, monkeypatch, caplog  # noqa: ANN001
):
    """Code dynamo cannot trace does not fail a generation: the engine warns and runs the same forward eagerly."""
    import ltx_pipelines.acceleration.fused_block as fused_block

    original = fused_block._feed_forward

    def untraceable(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        torch._dynamo.graph_break()
        return original(*args, **kwargs)

    monkeypatch.setattr(fused_block, "_feed_forward", untraceable)
    engine = CompiledBlocks(transformer, backend="aot_eager", compact=False)  # per-token rows: ltx-core's bits
    video, audio, perturbations = batch_for("plain")
    got = run(engine, video, audio, perturbations)
    assert engine.stats.fallback is not None and not engine.compiled
    assert "running it eagerly" in caplog.text
    for g, w in zip(got, reference("plain"), strict=True):
        assert torch.equal(g, w)


class ForcedBackend:
    """An attention chooser that forces one backend on every attention (cuDNN cannot run on a CPU)."""

    def __init__(self, backend: str):
        self.backend = backend

    def choose(self, model, video, audio) -> dict:  # noqa: ANN001
        return dict.fromkeys(("video_self", "video_text", "audio_self", "audio_text", "a2v", "v2a"), self.backend)

    def table(self) -> list:
        return []


def test_an_unusable_attention_backend_gives_way_to_pytorchs_pick(  # noqa: ANN201
    transformer, batch_for, reference, run, caplog  # noqa: ANN001
):
    engine = CompiledBlocks(transformer, backend="aot_eager", attention=ForcedBackend("cudnn"))
    video, audio, perturbations = batch_for("plain")
    got = run(engine, video, audio, perturbations)
    assert "using PyTorch's choice" in caplog.text
    assert engine.compiled and engine.stats.fallback is None  # still compiled, with SDPA's own pick
    assert all(k.video_self is None for k in engine._kernels.values())
    for g, w in zip(got, reference("plain"), strict=True):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-5)


def test_a_compiler_failure_falls_back_to_eager_with_a_warning(  # noqa: ANN201
    transformer, batch_for, reference, run, caplog  # noqa: ANN001
):
    """A compiler that fails (here: as a missing C++ toolchain would) warns; the generation goes on, plain."""

    def broken_compiler(graph, example_inputs):  # noqa: ANN001, ANN202
        raise RuntimeError("C++ compiler not found")

    engine = CompiledBlocks(transformer, backend=broken_compiler, compact=False)
    video, audio, perturbations = batch_for("plain")
    got = run(engine, video, audio, perturbations)
    assert not engine.compiled and "C++ compiler not found" in engine.stats.fallback
    assert "running it eagerly" in caplog.text
    for g, w in zip(got, reference("plain"), strict=True):
        assert torch.equal(g, w)


def test_the_log_says_what_was_compiled_and_where_it_came_from(transformer, batch_for, run, caplog) -> None:  # noqa: ANN001
    import logging

    caplog.set_level(logging.INFO)
    engine = CompiledBlocks(transformer, backend="aot_eager")
    run(engine, *batch_for("stg"))
    assert engine.stats.graphs == 2 and len(engine.stats.variants) == 2
    assert {v["plan"] for v in engine.stats.variants} == {"[video+audio]", "[video+audio; video_self=skip, audio_self=skip]"}
    assert "Transformer block variant [video+audio]" in caplog.text
