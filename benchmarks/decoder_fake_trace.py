"""LTX-2.5's diffusion decoder at full size on fake CUDA tensors (nothing is allocated; runs on the CPU): the peak of
live device bytes of a planned decode, or the memory traffic of one stage-5 block, op by op.

What the GPU kernels allocate stands in for them: FlexAttention's compiled kernel its output and log-sum-exp, a
fused elementwise kernel (``decoder_kernels``) its output. The tile schedule, geometry on small CPU tensors whose
values decide it, is computed for real and its blend masks handed to the fake decode.

    python benchmarks/decoder_fake_trace.py peak --video 1536x1024x121 --cap 6     # the plan the 6 GiB cap picks
    python benchmarks/decoder_fake_trace.py peak --video 1536x1024x121 --eager     # whole, elementwise chains eager
    python benchmarks/decoder_fake_trace.py traffic --video 1536x1024x121          # one stage-5 block, GB per op

``tests/models/ltx25/test_diffusion_memory.py`` runs :func:`traced_decode` against the pre-flight's formula.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import torch
from torch._subclasses.fake_tensor import FakeTensorMode, unset_fake_temporarily
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from diffusion_decoder import FRAMES_TO_HOST, GPU_RESERVE  # noqa: E402 -- the GPU benchmark beside this file
from ltx_pipelines.memory.traced_peak import DeviceBytes
from ltx_pipelines.models.ltx25 import decoder_kernels, flex_neighborhood
from ltx_pipelines.models.ltx25 import diffusion_tiling as tiling
from ltx_pipelines.models.ltx25.diffusion_config import DiffusionDecoderConfig
from ltx_pipelines.models.ltx25.diffusion_decoder import DiffusionVideoDecoder
from ltx_pipelines.models.ltx25.neighborhood_attention import force_backend

GIB = 1 << 30
CONFIG = DiffusionDecoderConfig()  # the published layout's defaults


def _flex_allocations(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, **_: object) -> torch.Tensor:
    torch.empty(q.shape[:-1], dtype=torch.float32, device=q.device)
    return torch.empty_like(q)


def _fused_kernel(fn: object) -> object:
    """A fused kernel's allocation and traffic: it reads its volume-sized inputs once and writes one output like
    them (norm + RoPE: ``x``; ``silu(gate) * up``: ``gate`` and ``up``)."""

    def kernel(first: torch.Tensor, *rest: object) -> torch.Tensor:
        alike = [t for t in rest if isinstance(t, torch.Tensor) and t.shape == first.shape]
        return first.clone() if not alike else torch.add(first, alike[0])

    return kernel


@contextlib.contextmanager
def fake_decoder(fused: bool = True) -> Iterator[DiffusionVideoDecoder]:
    """The full-size decoder in bf16 on fake CUDA tensors, inside its fake mode, with the stand-ins installed;
    ``fused``: the elementwise chains as on CUDA by default, else eager (as after a failed compile)."""
    fake = FakeTensorMode(allow_non_fake_inputs=True)
    real_schedule = tiling.TileGeometry.schedule

    def schedule(self: tiling.TileGeometry, stage4_shape: tuple[int, int, int], config: object) -> tiling.Schedule:
        with unset_fake_temporarily():
            planned = real_schedule(self, stage4_shape, config)
        for tile in planned.tiles:
            object.__setattr__(tile, "masks", tuple(fake.from_tensor(m) for m in tile.masks))
        return planned

    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch.object(flex_neighborhood, "_compiled_flex", lambda: _flex_allocations))
        stack.enter_context(mock.patch.object(flex_neighborhood, "build_block_mask", lambda *a, **k: None))
        stack.enter_context(mock.patch.object(decoder_kernels, "_compiled", _fused_kernel))
        stack.enter_context(mock.patch.object(decoder_kernels, "FUSE_ELEMENTWISE", "cuda" if fused else "never"))
        stack.enter_context(mock.patch.object(tiling.TileGeometry, "schedule", schedule))
        stack.enter_context(fake)
        previous = torch.get_default_dtype()
        torch.set_default_dtype(torch.bfloat16)
        try:
            with torch.device("cuda"):
                decoder = DiffusionVideoDecoder(CONFIG)
        finally:
            torch.set_default_dtype(previous)
        stack.enter_context(force_backend("flex"))
        yield decoder


def traced_decode(video: tuple[int, int, int], plan: object, fused: bool = True) -> DeviceBytes:
    """Decode a latent of ``video`` (frames, height, width) with ``plan``'s tiles, each chunk handed to the host as
    uint8 the way ltx-core's ``decode_video`` does; the bytes counted beyond the weights and the latent."""
    frames, height, width = video
    st, sh, sw = CONFIG.scale
    with fake_decoder(fused) as decoder:
        shape = (1, CONFIG.latent_channels, (frames - 1) // st + 1, height // sh, width // sw)
        latent = torch.empty(shape, dtype=torch.bfloat16, device="cuda")
        counter = DeviceBytes().ignore([*decoder.parameters(), *decoder.buffers(), latent])
        with torch.inference_mode(), counter:
            for chunk in decoder.decode_chunks(latent, plan, None):
                FRAMES_TO_HOST["uint8"](chunk)
    return counter


#: Ops that dispatch as non-views but only relabel contiguous data.
RESHAPES = frozenset({"_unsafe_view", "_reshape_alias", "alias"})


class Traffic(TorchDispatchMode):
    """Bytes each op reads and writes on the device (views move nothing), by op and the line of ours that ran it."""

    def __init__(self) -> None:
        super().__init__()
        self.bytes: collections.Counter = collections.Counter()
        self.calls: collections.Counter = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001 -- the dispatch protocol
        out = func(*args, **(kwargs or {}))
        outs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        if not outs or func.is_view:
            return out
        name = func.overloadpacket.__name__
        if name in RESHAPES or name.startswith("empty"):  # no data moves (reshapes of contiguous data: views)
            return out
        ins = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor) and t.numel() > 1024]
        moved = sum(t.numel() * t.element_size() for t in ins)
        if not name.endswith("_"):  # an in-place op's output is its input, already counted
            moved += sum(t.numel() * t.element_size() for t in outs)
        ours = [f for f in traceback.extract_stack(limit=10) if "ltx_pipelines" in f.filename]
        key = f"{name} @ {ours[-1].name if ours else '?'}"
        self.bytes[key] += moved
        self.calls[key] += 1
        return out


def block_traffic(video: tuple[int, int, int], fused: bool) -> Traffic:
    """One stage-5 block over the whole video's stage-5 volume (no W padding)."""
    frames, height, width = video
    p = CONFIG.patch_size
    with fake_decoder(fused) as decoder:
        x = torch.empty(1, frames, height // p, width // p, CONFIG.stage5_width, dtype=torch.bfloat16, device="cuda")
        context = torch.empty(*x.shape[:4], CONFIG.context_width, dtype=torch.bfloat16, device="cuda")
        modulation = decoder.shared_adaln(decoder.t_embedder(torch.ones(1, device="cuda"), torch.bfloat16))
        traffic = Traffic()
        with torch.no_grad(), traffic:  # not inference mode: composite ops decompose into the kernels that run
            decoder.diff_blocks[0](x, context, modulation)
    return traffic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("peak", "traffic"))
    parser.add_argument("--video", default="1536x1024x121", help="WxHxF")
    parser.add_argument("--cap", type=float, help="GiB: plan as the pre-flight does under this cap (peak)")
    parser.add_argument("--budget", type=float, help="GiB for the decode beyond the weights (peak; default: whole)")
    parser.add_argument("--eager", action="store_true", help="the elementwise chains eager (default: fused)")
    args = parser.parse_args()
    width, height, frames = (int(v) for v in args.video.split("x"))
    video = (frames, height, width)
    if args.what == "traffic":
        traffic = block_traffic(video, fused=not args.eager)
        total = sum(traffic.bytes.values())
        print(f"one stage-5 block at {args.video}: {total / 1e9:.1f} GB moved")
        for key, moved in traffic.bytes.most_common(20):
            print(f"{moved / 1e9:8.2f} GB {traffic.calls[key]:5d} calls  {key}")
        return
    with fake_decoder() as decoder:  # its bf16 weights, counted without allocating them
        weights = sum(p.numel() * p.element_size() for p in decoder.parameters())
    budget = (args.cap * GIB - GPU_RESERVE - weights if args.cap else args.budget * GIB if args.budget else None)
    plan = tiling.tiles_for_budget(CONFIG, *video, int(budget)) if budget is not None else None
    estimate = tiling.plan_working_set_bytes(CONFIG, *video, plan)
    traced = traced_decode(video, plan, fused=not args.eager)
    print(f"{args.video}: plan {plan}; weights {weights / GIB:.3f} GiB; beyond them: estimated "
          f"{estimate / GIB:.2f} GiB, traced peak {traced.peak / GIB:.2f} GiB")  # fmt: skip
    for allocation in traced.largest(16):
        print(f"{allocation.nbytes / 2**20:9.1f} MiB {allocation.shape} {allocation.dtype}  {allocation.where}")


if __name__ == "__main__":
    main()
