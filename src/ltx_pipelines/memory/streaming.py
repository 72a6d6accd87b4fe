"""Layers streamed to the GPU one at a time: a ring of device buffers fed from host memory.

The mechanism is generic over a list of layers (the transformer's blocks, Gemma's decoder
layers), identical or of a few shapes (Gemma 4's sliding and global layers: :class:`MixedLayout`):

* a **store** hands out each layer's tensors packed in one host buffer: pinned copies made once
  (:class:`PinnedStore`, ``--offload cpu``) or views of the memory-mapped file copied into a few
  pinned staging buffers just ahead of use (:class:`MappedStore`, ``--offload disk``);
* a **ring** of ``slots`` device buffers of one layer each; the layer after the current one is
  copied in on a side stream while the current one computes (events order the two streams; the
  hot loop never waits on the host);
* **materialize** turns a slot's raw tensors into the layer's weights (dtype cast, LoRA fusion,
  FP8 quantization where those must happen on the device) and loads them into the layer module,
  which otherwise holds no weights (meta tensors).

Layers are expected in order, 0..N-1 then 0 again (the pass scheduler runs every pass through a
block before the next block: one transfer per block per step). Another order still works, only
without the copy ahead. The CUDA parts sit behind :class:`Transfers` so that the ring, the
prefetch order and the stores run on the CPU in tests (:class:`ImmediateTransfers`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch

from ltx_pipelines.memory.pinned import pinned_buffer

logger = logging.getLogger(__name__)

ALIGN = 256  # bytes; every packed tensor starts on this boundary (any dtype view is aligned)


# -- packing ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TensorPlace:
    """Where one tensor lives inside a layer's packed buffer (strides kept: FP8 weights are column-major)."""

    name: str
    dtype: torch.dtype
    shape: tuple[int, ...]
    stride: tuple[int, ...]
    offset: int
    nbytes: int


@dataclass(frozen=True)
class LayerLayout:
    """How the tensors of one layer pack into a single byte buffer (one copy moves a whole layer)."""

    places: tuple[TensorPlace, ...]
    nbytes: int

    @classmethod
    def of(cls, tensors: dict[str, torch.Tensor]) -> "LayerLayout":
        places, offset = [], 0
        for name, t in tensors.items():
            size = _storage_span(t) * t.element_size()
            places.append(TensorPlace(name, t.dtype, tuple(t.shape), tuple(t.stride()), offset, size))
            offset += -(-size // ALIGN) * ALIGN
        return cls(tuple(places), max(offset, ALIGN))

    def views(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """The tensors as views into ``flat`` (uint8, ``nbytes`` long, on any device)."""
        out = {}
        for p in self.places:
            typed = flat[p.offset : p.offset + p.nbytes].view(p.dtype)
            out[p.name] = torch.as_strided(typed, p.shape, p.stride)
        return out

    def write(self, flat: torch.Tensor, tensors: dict[str, torch.Tensor]) -> None:
        for name, view in self.views(flat).items():
            view.copy_(tensors[name])

    def for_layer(self, index: int) -> "LayerLayout":  # noqa: ARG002 - every layer packs the same way
        return self


@dataclass(frozen=True)
class MixedLayout:
    """Layers that differ in tensors or shapes, each packed its own way into buffers of the largest one's size."""

    layouts: tuple[LayerLayout, ...]

    @property
    def nbytes(self) -> int:
        return max(layout.nbytes for layout in self.layouts)

    def for_layer(self, index: int) -> LayerLayout:
        return self.layouts[index]

    @classmethod
    def of(cls, layers: list[dict[str, torch.Tensor]]) -> "LayerLayout | MixedLayout":
        """One layout when every layer packs alike, else one per layer."""
        layouts = tuple(LayerLayout.of(tensors) for tensors in layers)
        return layouts[0] if all(layout == layouts[0] for layout in layouts) else cls(layouts)


def _storage_span(t: torch.Tensor) -> int:
    """Elements a tensor with these strides spans (its shape's extent in memory)."""
    if t.numel() == 0:
        return 0
    return 1 + sum((size - 1) * stride for size, stride in zip(t.shape, t.stride(), strict=True))


# -- the CUDA parts -----------------------------------------------------------------------------------


class Transfers:
    """Copies to the device on a side stream, ordered against the compute stream by events."""

    def __init__(self, device: torch.device):
        self.device = device
        self.stream = torch.cuda.Stream(device)

    def pinned(self, nbytes: int, fill: Callable[[torch.Tensor], None] | None = None) -> torch.Tensor:
        """A page-locked host buffer, written by ``fill`` first when given (see memory.pinned)."""
        return pinned_buffer(nbytes, fill)

    def device_buffer(self, nbytes: int) -> torch.Tensor:
        return torch.empty(nbytes, dtype=torch.uint8, device=self.device)

    def copy(self, dst: torch.Tensor, src: torch.Tensor, after: object | None) -> object:
        """Enqueue ``dst <- src`` once ``after`` (a compute-stream mark) has passed; returns its done event."""
        with torch.cuda.stream(self.stream):
            if after is not None:
                self.stream.wait_event(after)
            dst.copy_(src, non_blocking=True)
            done = torch.cuda.Event()
            done.record(self.stream)
        return done

    def wait(self, done: object) -> None:
        """Make the compute stream wait for a copy (no host synchronisation)."""
        torch.cuda.current_stream(self.device).wait_event(done)

    def mark(self) -> object:
        """An event after everything enqueued on the compute stream so far."""
        event = torch.cuda.Event()
        event.record(torch.cuda.current_stream(self.device))
        return event

    def host_wait(self, event: object | None) -> None:
        """Block this (host) thread until ``event`` has passed: only the staging reader thread does this."""
        if event is not None:
            event.synchronize()


class ImmediateTransfers(Transfers):
    """The same interface with every copy done at once: streaming on the CPU (tests, CPU runs)."""

    def __init__(self, device: torch.device | str = "cpu"):
        self.device = torch.device(device)

    def pinned(self, nbytes: int, fill: Callable[[torch.Tensor], None] | None = None) -> torch.Tensor:
        buffer = torch.empty(nbytes, dtype=torch.uint8)
        if fill is not None:
            fill(buffer)
        return buffer

    def copy(self, dst: torch.Tensor, src: torch.Tensor, after: object | None) -> object:
        dst.copy_(src)
        return None

    def wait(self, done: object) -> None:
        return None

    def mark(self) -> object:
        return None


def release_pinned_cache() -> None:
    """Give freed pinned host memory back to the system.

    PyTorch keeps freed pinned blocks cached for reuse; a closed store's 35 GiB would otherwise stay
    pinned (measured: resident host memory grew by each store closed, until the machine thrashed).
    """
    if torch.cuda.is_available():
        torch._C._host_emptyCache()


def transfers_for(device: torch.device) -> Transfers:
    return Transfers(device) if device.type == "cuda" else ImmediateTransfers(device)


# -- stores -------------------------------------------------------------------------------------------

ReadLayer = Callable[[int], dict[str, torch.Tensor]]  # layer index -> its tensors (host, e.g. mapped views)
#: Layers read and pinned at once: 4 filled 23 GiB/s on the device's H200 host, 1 filled 9 GiB/s.
FILL_THREADS = 4


class PinnedStore:
    """Every layer packed in pinned host memory, filled in the background in layer order.

    Reading and pinning 35 GiB takes seconds (``FILL_THREADS`` layers at a time, see memory.pinned),
    so it happens while the generation starts: a layer not pinned yet makes its first use wait for
    it, then never again. ``read`` is called from several threads at once.
    """

    def __init__(self, layout: LayerLayout, num_layers: int, read: ReadLayer, transfers: Transfers, name: str):
        self.layout = layout
        self.buffers: list[torch.Tensor | None] = [None] * num_layers
        self._ready = [threading.Event() for _ in range(num_layers)]
        self._error: BaseException | None = None
        self._stop = False
        self._thread = threading.Thread(
            target=self._fill, args=(read, transfers), name=f"pin {name}", daemon=True
        )
        self._thread.start()

    def _fill(self, read: ReadLayer, transfers: Transfers) -> None:
        with ThreadPoolExecutor(FILL_THREADS, thread_name_prefix="pin layer") as pool:
            list(pool.map(lambda index: self._fill_one(index, read, transfers), range(len(self.buffers))))

    def _fill_one(self, index: int, read: ReadLayer, transfers: Transfers) -> None:
        if self._stop or self._error is not None:
            return
        try:
            layout = self.layout.for_layer(index)
            self.buffers[index] = transfers.pinned(self.layout.nbytes, lambda b: layout.write(b, read(index)))
            self._ready[index].set()
        except BaseException as e:  # noqa: BLE001 - handed to the thread that waits for the layer
            self._error = e
            for event in self._ready:
                event.set()

    def source(self, index: int) -> torch.Tensor:
        self._ready[index].wait()
        if self._error is not None:
            raise RuntimeError(f"Reading layer {index} into pinned memory failed: {self._error}") from self._error
        return self.buffers[index]

    def consumed(self, index: int, copy_done: object) -> None:
        """Pinned buffers are permanent: nothing to recycle."""

    @property
    def complete(self) -> bool:
        return all(e.is_set() for e in self._ready) and self._error is None

    def close(self) -> None:
        self._stop = True
        self._thread.join()
        self.buffers = [None] * len(self.buffers)
        release_pinned_cache()


class MappedStore:
    """Layers copied from the memory-mapped file into ``staging`` pinned buffers, just ahead of use.

    A reader thread walks the layers in order (wrapping around), filling the next free staging
    buffer while staying at most ``staging`` layers ahead of the consumer; a buffer is free again
    once the device copy out of it has finished. Private host memory stays at the staging buffers:
    the file itself lives in the page cache.
    """

    def __init__(self, layout: LayerLayout, num_layers: int, read: ReadLayer, transfers: Transfers,
                 name: str, staging: int = 3) -> None:  # fmt: skip
        self.layout = layout
        self.num_layers = num_layers
        self._read = read
        self._transfers = transfers
        # More buffers than layers would let the reader wrap around onto a layer it already holds.
        staging = min(staging, num_layers)
        self._buffers = [transfers.pinned(layout.nbytes) for _ in range(staging)]
        self._free_after: list[object | None] = [None] * staging
        self._filled: dict[int, int] = {}  # layer -> staging buffer holding it
        self._busy: set[int] = set()  # staging buffers filled or being filled
        self._reading: int | None = None
        self._next = 0  # the layer the reader reads next
        self._wanted = 0  # the layer the consumer asks for next
        self._error: BaseException | None = None
        self._stop = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=f"read {name}", daemon=True)
        self._thread.start()

    def _ahead(self) -> int:
        return (self._next - self._wanted) % self.num_layers

    def _can_read(self) -> bool:
        return len(self._busy) < len(self._buffers) and self._ahead() < len(self._buffers)

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    self._cond.wait_for(lambda: self._stop or self._can_read())
                    if self._stop:
                        return
                    index = self._next
                    slot = min(set(range(len(self._buffers))) - self._busy)
                    self._busy.add(slot)
                    self._reading = index
                    self._next = (index + 1) % self.num_layers
                    free_after = self._free_after[slot]
                self._transfers.host_wait(free_after)  # the last device copy out of this buffer is done
                self.layout.for_layer(index).write(self._buffers[slot], self._read(index))
                with self._cond:
                    self._reading = None
                    self._filled[index] = slot
                    self._cond.notify_all()
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            with self._cond:
                self._error = e
                self._cond.notify_all()

    def source(self, index: int) -> torch.Tensor:
        with self._cond:
            if index not in self._filled and self._reading != index:
                # Out of the usual order: drop the read-ahead and read this layer next.
                for slot in self._filled.values():
                    self._busy.discard(slot)
                self._filled.clear()
                self._next = index
            self._wanted = index
            self._cond.notify_all()
            self._cond.wait_for(lambda: index in self._filled or self._error is not None)
            if self._error is not None:
                raise RuntimeError(f"Reading layer {index} from the file failed: {self._error}") from self._error
            return self._buffers[self._filled[index]]

    def consumed(self, index: int, copy_done: object) -> None:
        """The device copy of ``index`` is enqueued: its staging buffer is free once ``copy_done`` passes."""
        with self._cond:
            slot = self._filled.pop(index)
            self._free_after[slot] = copy_done
            self._busy.discard(slot)
            self._wanted = (index + 1) % self.num_layers
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join()
        self._buffers = []
        release_pinned_cache()


Store = PinnedStore | MappedStore
Materialize = Callable[[int, dict[str, torch.Tensor]], dict[str, torch.Tensor]]


# -- the ring -----------------------------------------------------------------------------------------


class LayerStreamer:
    """Keeps the layer being computed (and the next ones) on the device, loading them into their modules."""

    def __init__(
        self,
        layers: list[torch.nn.Module],
        store: Store,
        transfers: Transfers,
        materialize: Materialize,
        slots: int = 2,
    ):
        if slots < 2:
            raise ValueError("streaming needs at least two device slots (one computing, one loading)")
        self.layers = layers
        self.store = store
        self.transfers = transfers
        self.materialize = materialize
        self.num_slots = slots
        self.slots: list[torch.Tensor] = []
        self._slot_free: list[object | None] = [None] * slots
        self.unpark()
        self._in_flight: dict[int, tuple[int, object]] = {}  # layer -> (slot, copy done)
        self.current: int | None = None
        self._current_slot: int | None = None
        self.transfers_done = 0  # layers moved to the device so far (tests and logs)

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def acquire(self, index: int) -> None:
        """Make layer ``index`` computable; start copying the layers after it."""
        if self.current == index:
            return
        self.release()
        if index not in self._in_flight:
            self._prefetch(index, evict=True)
        slot, done = self._in_flight.pop(index)
        self.transfers.wait(done)
        weights = self.materialize(index, self.store.layout.for_layer(index).views(self.slots[slot]))
        self.layers[index].load_state_dict(weights, strict=True, assign=True)
        self.current, self._current_slot = index, slot
        for ahead in range(1, len(self.slots)):
            following = (index + ahead) % self.num_layers
            if following == index or (following not in self._in_flight and not self._prefetch(following)):
                break

    def release(self) -> None:
        """Drop the current layer's weights; its slot may be refilled once the work enqueued so far is done."""
        if self.current is None:
            return
        self.layers[self.current].to("meta")
        self._slot_free[self._current_slot] = self.transfers.mark()
        self.current = self._current_slot = None

    def _prefetch(self, index: int, evict: bool = False) -> bool:
        """Start copying layer ``index`` into a free slot; False when every slot is taken."""
        slot = self._free_slot()
        if slot is None:
            if not evict:
                return False
            slot, _ = self._in_flight.pop(next(iter(self._in_flight)))  # a prefetch nobody asked for
        source = self.store.source(index)
        done = self.transfers.copy(self.slots[slot], source, self._slot_free[slot])
        self.store.consumed(index, done)
        self._in_flight[index] = (slot, done)
        self.transfers_done += 1
        return True

    def _free_slot(self) -> int | None:
        used = {slot for slot, _ in self._in_flight.values()} | {self._current_slot}
        return next((slot for slot in range(len(self.slots)) if slot not in used), None)

    def hook(self) -> None:
        """Acquire each layer automatically when it is called (so plain forward passes work too)."""
        for index, layer in enumerate(self.layers):
            layer.register_forward_pre_hook(lambda module, args, i=index: self.acquire(i))

    def park(self) -> None:
        """Give the device slots back (between stages, for other models); :meth:`unpark` makes new ones."""
        self.release()
        self._in_flight.clear()
        self.slots = []

    def unpark(self) -> None:
        if not self.slots:
            self.slots = [self.transfers.device_buffer(self.store.layout.nbytes) for _ in range(self.num_slots)]
            self._slot_free = [None] * self.num_slots

    def reset(self, store: Store) -> None:
        """Stream from another store from now on (same layout: the device slots are kept)."""
        if store.layout != self.store.layout:
            raise ValueError("a new store must pack layers the same way as the old one")
        self.release()
        self._in_flight.clear()
        self.store = store

    def close(self) -> None:
        """Free the device slots (the store belongs to whoever made it)."""
        self.park()


__all__ = [
    "ImmediateTransfers",
    "LayerLayout",
    "LayerStreamer",
    "MappedStore",
    "MixedLayout",
    "PinnedStore",
    "TensorPlace",
    "Transfers",
    "transfers_for",
]
