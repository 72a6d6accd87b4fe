"""Pinned host buffers made by registering a filled anonymous mapping (CUDA faked where it is needed)."""

from __future__ import annotations

import gc

import pytest
import torch

from ltx_pipelines.memory import pinned
from ltx_pipelines.memory.pinned import pinned_buffer


class FakeCudart:
    def __init__(self, fail: bool = False):
        self.registered: dict[int, int] = {}
        self.unregistered: list[int] = []
        self.fail = fail

    def cudaHostRegister(self, ptr: int, size: int, flags: int) -> int:  # noqa: N802 - CUDA's name
        if self.fail:
            return 1
        self.registered[ptr] = size
        return 0

    def cudaHostUnregister(self, ptr: int) -> int:  # noqa: N802
        self.unregistered.append(ptr)
        return 0


@pytest.fixture
def fake_cuda(monkeypatch):  # noqa: ANN001, ANN201
    cudart = FakeCudart()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "cudart", lambda: cudart)
    monkeypatch.setattr(torch.cuda, "is_current_stream_capturing", lambda: False)
    synced = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: synced.append(True))
    cudart.synced = synced
    return cudart


def test_the_buffer_is_written_before_it_is_registered_and_unregistered_when_its_views_go(fake_cuda) -> None:  # noqa: ANN001
    seen = {}

    def fill(buffer: torch.Tensor) -> None:
        seen["registered while filling"] = bool(fake_cuda.registered)
        buffer.copy_(torch.arange(4096, dtype=torch.int64).to(torch.uint8))

    buffer = pinned_buffer(4096, fill)
    assert seen == {"registered while filling": False}
    assert fake_cuda.registered == {buffer.data_ptr(): 4096}
    assert torch.equal(buffer, torch.arange(4096).to(torch.uint8))
    view = buffer[100:200].view(torch.int32)  # a view keeps the memory registered
    address = buffer.data_ptr()
    del buffer
    gc.collect()
    assert fake_cuda.unregistered == []
    del view
    gc.collect()
    assert fake_cuda.unregistered == [address] and fake_cuda.synced  # after the device's pending copies


def test_without_cuda_it_is_plain_host_memory(monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    buffer = pinned_buffer(1000, lambda b: b.fill_(7))
    assert buffer.numel() == 1000 and int(buffer.sum()) == 7000
    assert pinned_buffer(0).numel() == 0


def test_a_failed_registration_falls_back_to_pytorchs_pinned_allocator(fake_cuda, monkeypatch) -> None:  # noqa: ANN001
    fake_cuda.fail = True
    made = []
    real_empty = torch.empty

    def empty(*args, pin_memory: bool = False, **kwargs):  # noqa: ANN002, ANN003, ANN202
        made.append(pin_memory)
        return real_empty(*args, **kwargs)

    monkeypatch.setattr(pinned.torch, "empty", empty)
    buffer = pinned_buffer(64, lambda b: b.fill_(3))
    assert made == [True] and int(buffer.sum()) == 192


def test_without_anonymous_mappings_it_uses_pytorchs_allocator(monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delattr(pinned.mmap, "MAP_ANONYMOUS")
    buffer = pinned_buffer(10, lambda b: b.fill_(2))
    assert int(buffer.sum()) == 20
