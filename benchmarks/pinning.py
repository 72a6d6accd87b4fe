"""How fast layers can be put into pinned host memory on this machine (issue 9: set-up of ``--offload cpu``).

``--offload cpu`` packs every transformer block (0.72 GiB each in bf16) into pinned host memory. The
measured set-up was ~30 s for 35 GiB, one block after another through ``torch.empty(pin_memory=True)``
and a copy from the memory-mapped checkpoint. This times the ways of doing it, on a source file in
the page cache (as the checkpoint is after a first read), for ``--layers`` layers of ``--layer-gib``:

* ``alloc``: pinned allocations alone (``cudaHostAlloc`` through PyTorch's host allocator);
* ``torch-pin``: allocate pinned, then copy the layer in (what :class:`PinnedStore` did), 1 or N threads;
* ``register``: an anonymous mapping (transparent huge pages asked for), the layer copied in, then
  ``cudaHostRegister``; 1 or N threads;

and, for each kind of buffer, the host-to-GPU bandwidth of one layer (pinned memory reads ~50 GB/s,
pageable ~8), so a fast path that is not really pinned shows.

    PYTHONPATH=src:/tmp/site python3 benchmarks/pinning.py --json $OUT/pinning.json
"""

from __future__ import annotations

import argparse
import json
import mmap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

GIB = 1 << 30


def source_file(path: Path, nbytes: int) -> torch.Tensor:
    """A file of random bytes, read once so it sits in the page cache, as a memory-mapped uint8 tensor."""
    if not path.exists() or path.stat().st_size != nbytes:
        g = torch.Generator(device="cuda").manual_seed(0)
        with path.open("wb") as f:
            for _ in range(nbytes // (256 << 20)):
                chunk = torch.randint(0, 256, (256 << 20,), dtype=torch.uint8, device="cuda", generator=g)
                f.write(chunk.cpu().numpy().tobytes())
    mapped = torch.from_numpy(np.memmap(path, dtype=np.uint8, mode="r+"))
    mapped.sum(dtype=torch.int64)  # touch every page
    return mapped


def pinned_alloc(nbytes: int) -> torch.Tensor:
    return torch.empty(nbytes, dtype=torch.uint8, pin_memory=True)


class Registered:
    """An anonymous mapping, huge pages asked for, registered with CUDA after it is filled."""

    def __init__(self, nbytes: int, huge: bool):
        self.map = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        if huge and hasattr(mmap, "MADV_HUGEPAGE"):
            self.map.madvise(mmap.MADV_HUGEPAGE)
        self.tensor = torch.frombuffer(self.map, dtype=torch.uint8)
        self.registered = False

    def register(self) -> None:
        err = torch.cuda.cudart().cudaHostRegister(self.tensor.data_ptr(), self.tensor.numel(), 0)
        if int(err) != 0:
            raise RuntimeError(f"cudaHostRegister failed: {err}")
        self.registered = True

    def close(self) -> None:
        if self.registered:
            torch.cuda.cudart().cudaHostUnregister(self.tensor.data_ptr())
        del self.tensor
        self.map.close()


def h2d_gbps(buffer: torch.Tensor) -> float:
    dst = torch.empty(buffer.numel(), dtype=torch.uint8, device="cuda")
    dst.copy_(buffer, non_blocking=True)
    torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(3):
        dst.copy_(buffer, non_blocking=True)
    torch.cuda.synchronize()
    return 3 * buffer.numel() / (time.perf_counter() - started) / 1e9


def run_way(name: str, layers: list[torch.Tensor], threads: int, make) -> dict:
    """``make(layer) -> (buffer tensor, keep-alive)``; all layers, ``threads`` at a time."""
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        made = list(pool.map(make, layers))
    seconds = time.perf_counter() - started
    total = sum(t.numel() for t in layers)
    row = {"way": name, "threads": threads, "seconds": round(seconds, 2), "gib_per_s": round(total / GIB / seconds, 2),
           "h2d_gb_per_s": round(h2d_gbps(made[0][0]), 1), "is_pinned": bool(made[0][0].is_pinned())}  # fmt: skip
    for _, keep in made:
        if isinstance(keep, Registered):
            keep.close()
    del made
    torch._C._host_emptyCache()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=Path("/dev/shm/pinning-source.bin"))
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--layer-gib", type=float, default=0.72)
    parser.add_argument("--threads", default="1,4,8")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    layer = int(args.layer_gib * GIB) // 4096 * 4096
    mapped = source_file(args.source, layer * args.layers)
    layers = [mapped[i * layer : (i + 1) * layer] for i in range(args.layers)]
    threads = [int(t) for t in args.threads.split(",")]
    rows = []

    def torch_pin(src: torch.Tensor):
        buf = pinned_alloc(src.numel())
        buf.copy_(src)
        return buf, buf

    def register(huge: bool):
        def make(src: torch.Tensor):
            reg = Registered(src.numel(), huge)
            reg.tensor.copy_(src)
            reg.register()
            return reg.tensor, reg

        return make

    def alloc_only(src: torch.Tensor):
        buf = pinned_alloc(src.numel())
        return buf, buf

    ways = [("alloc", alloc_only, [1]), ("torch-pin", torch_pin, threads), ("register-huge", register(True), threads),
            ("register-4k", register(False), [1, max(threads)])]  # fmt: skip
    for name, make, counts in ways:
        for n in counts:
            row = run_way(name, layers, n, make)
            rows.append(row)
            print(json.dumps(row), flush=True)
    pageable = layers[0].clone()
    rows.append({"way": "pageable (reference)", "h2d_gb_per_s": round(h2d_gbps(pageable), 1)})
    print(json.dumps(rows[-1]), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"gpu": torch.cuda.get_device_name(), "layer_bytes": layer, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
