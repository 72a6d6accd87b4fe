"""The streaming mechanics on the CPU: the ring of slots, the copy-ahead order, both stores."""

from __future__ import annotations

import pytest
import torch

from ltx_pipelines.memory.streaming import ImmediateTransfers, LayerLayout, LayerStreamer, MappedStore, PinnedStore


class RecordingTransfers(ImmediateTransfers):
    """Copies at once, and records which slot each copy filled and what it waited for."""

    def __init__(self):
        super().__init__("cpu")
        self.copies: list[tuple[int, object]] = []
        self.marks = 0

    def copy(self, dst, src, after):  # noqa: ANN001, ANN201
        self.copies.append((dst.data_ptr(), after))
        return super().copy(dst, src, after)

    def mark(self):  # noqa: ANN201
        self.marks += 1
        return f"mark {self.marks}"


def layers_and_reader(n: int = 5):  # noqa: ANN201
    """n tiny linear layers on meta, and a reader giving layer i weights full of i."""
    layers = [torch.nn.Linear(4, 3).to("meta") for _ in range(n)]

    def read(i: int) -> dict[str, torch.Tensor]:
        return {"weight": torch.full((3, 4), float(i)), "bias": torch.full((3,), float(i))}

    return layers, read


def identity(index: int, views: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return views


@pytest.mark.parametrize("store_cls", [PinnedStore, MappedStore])
def test_each_layer_gets_its_own_weights_and_is_emptied_after_use(store_cls) -> None:  # noqa: ANN001
    layers, read = layers_and_reader()
    transfers = RecordingTransfers()
    store = store_cls(LayerLayout.of(read(0)), len(layers), read, transfers, "test")
    streamer = LayerStreamer(layers, store, transfers, identity, slots=2)
    try:
        for _ in range(2):  # two steps
            for i in range(len(layers)):
                streamer.acquire(i)
                assert torch.equal(layers[i].weight, torch.full((3, 4), float(i)))
                out = layers[i](torch.ones(1, 4))
                assert torch.allclose(out, torch.full((1, 3), 5.0 * i))
        streamer.release()
        assert all(layer.weight.is_meta for layer in layers)
    finally:
        streamer.close()
        store.close()
    # Block-major order: one copy per layer per step, plus layer 0 copied ahead for the next step.
    assert streamer.transfers_done == 2 * len(layers) + 1


def test_a_slot_is_refilled_only_after_the_work_that_read_it() -> None:
    layers, read = layers_and_reader(4)
    transfers = RecordingTransfers()
    store = PinnedStore(LayerLayout.of(read(0)), len(layers), read, transfers, "test")
    streamer = LayerStreamer(layers, store, transfers, identity, slots=2)
    for i in range(4):
        streamer.acquire(i)
    streamer.close()
    store.close()
    slots = [ptr for ptr, _ in transfers.copies]
    assert len(set(slots)) == 2  # two device slots, used in turn
    assert slots[:4] == [slots[0], slots[1], slots[0], slots[1]]
    # The first use of each slot waits for nothing; a refill waits for the compute mark of its last occupant.
    assert [after for _, after in transfers.copies[:2]] == [None, None]
    assert all(isinstance(after, str) and after.startswith("mark") for _, after in transfers.copies[2:])


def test_out_of_order_requests_still_get_the_right_layer() -> None:
    layers, read = layers_and_reader(6)
    transfers = ImmediateTransfers()
    store = MappedStore(LayerLayout.of(read(0)), len(layers), read, transfers, "test", staging=2)
    streamer = LayerStreamer(layers, store, transfers, identity, slots=3)
    try:
        for i in (0, 1, 4, 2, 2, 5, 0):
            streamer.acquire(i)
            assert torch.equal(layers[i].bias, torch.full((3,), float(i)))
    finally:
        streamer.close()
        store.close()


def test_a_failing_read_reaches_the_caller() -> None:
    layers, read = layers_and_reader(3)

    def broken(i: int) -> dict[str, torch.Tensor]:
        if i == 1:
            raise OSError("disk gone")
        return read(i)

    transfers = ImmediateTransfers()
    store = PinnedStore(LayerLayout.of(read(0)), len(layers), broken, transfers, "test")
    streamer = LayerStreamer(layers, store, transfers, identity, slots=2)
    with pytest.raises(RuntimeError, match="disk gone"):
        for i in range(3):
            streamer.acquire(i)
    store.close()


def test_layout_keeps_column_major_strides() -> None:
    """FP8 weights are stored transposed; a packed copy must keep their strides."""
    w = torch.arange(12.0).reshape(3, 4).t()
    layout = LayerLayout.of({"w": w})
    flat = torch.empty(layout.nbytes, dtype=torch.uint8)
    layout.write(flat, {"w": w})
    view = layout.views(flat)["w"]
    assert view.stride() == w.stride() and torch.equal(view, w)
