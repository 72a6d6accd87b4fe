"""The SDPA backend chooser: per-shape choices, and the same choices in every process that shares a compile cache.

Issue 23: on an H100 a second process re-measured the backends, timing noise flipped near ties (6 144 x 1 024:
cuDNN in one run, PyTorch's default in another), the compiled graphs differed and none came from the compile
cache. These tests play that noise on the CPU with scripted timings (no GPU): each chooser stands for a process.
"""

from __future__ import annotations

import itertools
import logging

import pytest
import torch

from ltx_pipelines.acceleration import attention_choice as ac
from ltx_pipelines.acceleration import compile_cache as cc

SHAPES = [ac.AttentionShape(1, 32, 6144, kv, 128, False, torch.bfloat16, "cuda:0") for kv in (6144, 1024, 126)]


@pytest.fixture
def noisy_timings(monkeypatch):  # noqa: ANN201
    """Each call of the timer gives the next of a fixed sequence: cuDNN and the default trade places by 5 %."""
    runs = itertools.count()
    calls: list[tuple] = []

    def fake(shape, backend, repeats):  # noqa: ANN001, ANN202
        calls.append((shape, backend))
        process = next(runs) // (len(ac.CANDIDATES) * len(SHAPES))  # one full sweep per process
        fast, slow = 0.95, 1.0
        cudnn_wins = process % 2 == 0
        return {"default": slow if cudnn_wins else fast, "cudnn": fast if cudnn_wins else slow}.get(backend, 2.0)

    monkeypatch.setattr(ac, "_time_ms", fake)
    return calls


def test_without_a_store_two_processes_can_choose_differently(noisy_timings) -> None:  # noqa: ANN001
    """What broke the warm start: the same shapes, measured twice, gave two different sets of graphs."""
    first, second = ac.AttentionChooser(), ac.AttentionChooser()
    assert [first.backend(s) for s in SHAPES] == ["cudnn"] * 3
    assert [second.backend(s) for s in SHAPES] == [None] * 3


def test_a_second_process_takes_the_first_ones_choices_unmeasured(noisy_timings, tmp_path) -> None:  # noqa: ANN001
    store = tmp_path / "artifacts" / "tag" / cc.ATTENTION_FILE
    first = ac.AttentionChooser(store=store)
    chosen = [first.backend(s) for s in SHAPES]
    measured = len(noisy_timings)
    assert chosen == ["cudnn"] * 3 and measured == len(ac.CANDIDATES) * len(SHAPES) and store.is_file()

    second = ac.AttentionChooser(store=store)
    assert [second.backend(s) for s in SHAPES] == chosen  # the same graphs, so the same cache keys
    assert len(noisy_timings) == measured  # nothing timed again
    assert second.stored == set(SHAPES)
    assert [row["ms"] for row in second.table()] == [row["ms"] for row in first.table()]  # the first's timings

    other = ac.AttentionShape(2, 32, 6144, 6144, 128, False, torch.bfloat16, "cuda:0")  # a shape not stored yet
    second.backend(other)
    assert len(noisy_timings) == measured + len(ac.CANDIDATES)
    assert ac.shape_key(other) in ac.AttentionChooser(store=store)._read_store()  # added beside the others


def test_the_device_index_does_not_matter_but_the_shape_does() -> None:
    a, b = SHAPES[0], SHAPES[0].__class__(**{**SHAPES[0].__dict__, "device": "cuda:1"})
    assert ac.shape_key(a) == ac.shape_key(b)
    assert len({ac.shape_key(s) for s in SHAPES}) == len(SHAPES)


def test_a_damaged_store_is_measured_again_and_rewritten(noisy_timings, tmp_path, caplog) -> None:  # noqa: ANN001
    store = tmp_path / cc.ATTENTION_FILE
    store.write_text("{not json")
    chooser = ac.AttentionChooser(store=store)
    with caplog.at_level(logging.WARNING):
        assert chooser.backend(SHAPES[0]) == "cudnn"
    assert "ignored" in caplog.text
    assert ac.shape_key(SHAPES[0]) in ac.AttentionChooser(store=store)._read_store()


def test_an_unwritable_store_warns_once_and_still_chooses(noisy_timings, tmp_path, caplog) -> None:  # noqa: ANN001
    blocker = tmp_path / "file"
    blocker.write_text("")
    chooser = ac.AttentionChooser(store=blocker / "sub" / cc.ATTENTION_FILE)  # a folder under a file: never writable
    with caplog.at_level(logging.WARNING):
        assert [chooser.backend(s) for s in SHAPES] == ["cudnn"] * 3
    assert caplog.text.count("could not write") == 1 and chooser.store is None


def test_the_cpu_is_never_measured_nor_stored(noisy_timings, tmp_path) -> None:  # noqa: ANN001
    store = tmp_path / cc.ATTENTION_FILE
    cpu = ac.AttentionShape(1, 2, 64, 64, 16, False, torch.float32, "cpu")
    assert ac.AttentionChooser(store=store).backend(cpu) is None
    assert not noisy_timings and not store.exists()


def test_the_compiled_engine_keeps_its_choices_beside_the_bundles(transformer, tmp_path) -> None:  # noqa: ANN001
    from ltx_pipelines.acceleration.executor import compiled_engine, copy_without_engines
    from ltx_pipelines.acceleration.options import AccelerationOptions

    model = copy_without_engines(transformer)  # engines of its own: the package's transformer keeps its engines
    engine = compiled_engine(model, options=AccelerationOptions(compile=True, compile_cache=str(tmp_path)))
    assert engine.attention.store == engine.cache.attention_store
    assert engine.attention.store == tmp_path / "artifacts" / engine.cache.tag / cc.ATTENTION_FILE
    eager = compiled_engine(model, options=AccelerationOptions(compile=False), compile=False)
    assert eager.attention.store is None  # nothing compiled, nothing to keep in step with
