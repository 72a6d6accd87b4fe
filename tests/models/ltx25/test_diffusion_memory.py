"""The diffusion decoder's memory formula against the decoder itself: the real code at full channel counts, run on
fake CUDA tensors (nothing is allocated), every storage counted (``memory.traced_peak``).

A GPU run under a 6 GiB cap ran out of memory where the formula said 5.1 GiB; traced, the decode held two temporal
groups' blend buffers at once and stage 5's tile pixels, which the formula did not count. These cases keep the two
together: the traced peak never above the estimate, the estimate not so loose that it wastes a small card.
"""

from __future__ import annotations

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from ltx_pipelines.memory.traced_peak import DeviceBytes
from ltx_pipelines.models.ltx25 import decoder_kernels, flex_neighborhood
from ltx_pipelines.models.ltx25 import diffusion_tiling as tiling
from ltx_pipelines.models.ltx25.diffusion_config import DiffusionDecoderConfig
from ltx_pipelines.models.ltx25.diffusion_decoder import DiffusionVideoDecoder
from ltx_pipelines.models.ltx25.neighborhood_attention import force_backend

GIB = 1 << 30
CONFIG = DiffusionDecoderConfig()  # the published layout's defaults
#: How much the estimate may exceed the traced peak (fragmentation is ``budget.GPU_RESERVE``'s, not this margin's).
LOOSEST = 1.3


def _flex_allocations(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, **_: object) -> torch.Tensor:
    """What the compiled FlexAttention kernel allocates on the GPU: its output and the row log-sum-exp."""
    torch.empty(q.shape[:-1], dtype=torch.float32, device=q.device)
    return torch.empty_like(q)


def _schedules_outside_fake_mode(monkeypatch: pytest.MonkeyPatch, fake: FakeTensorMode) -> None:
    """The tile schedule is geometry on small CPU tensors whose values decide it (a partition-of-unity check):
    computed for real, its blend masks then handed to the fake decode."""
    real = tiling.TileGeometry.schedule

    def schedule(self: tiling.TileGeometry, stage4_shape: tuple[int, int, int], config: object) -> tiling.Schedule:
        with torch._subclasses.fake_tensor.unset_fake_temporarily():
            planned = real(self, stage4_shape, config)
        for tile in planned.tiles:
            object.__setattr__(tile, "masks", tuple(fake.from_tensor(m) for m in tile.masks))
        return planned

    monkeypatch.setattr(tiling.TileGeometry, "schedule", schedule)


def _fused_allocations(fn: object) -> object:
    """What a fused elementwise kernel allocates on the GPU: its output, shaped as its first input."""
    return lambda first, *rest: torch.empty_like(first)


def traced_decode_peak(monkeypatch: pytest.MonkeyPatch, video: tuple[int, int, int], plan: object,
                       fused: bool) -> DeviceBytes:  # fmt: skip
    """Decode a random latent of ``video`` (frames, height, width) with ``plan``'s tiles on fake CUDA tensors in
    bf16, handing each chunk to the host as uint8 the way ltx-core's ``decode_video`` does; the elementwise chains
    fused (the default on CUDA) or eager (where their compile failed)."""
    fake = FakeTensorMode(allow_non_fake_inputs=True)
    monkeypatch.setattr(flex_neighborhood, "_compiled_flex", lambda: _flex_allocations)
    monkeypatch.setattr(decoder_kernels, "_compiled", _fused_allocations)
    monkeypatch.setattr(decoder_kernels, "FUSE_ELEMENTWISE", "cuda" if fused else "never")
    monkeypatch.setattr(flex_neighborhood, "build_block_mask", lambda *args, **kwargs: None)  # ~24 B a token
    _schedules_outside_fake_mode(monkeypatch, fake)
    frames, height, width = video
    st, sh, sw = CONFIG.scale
    previous = torch.get_default_dtype()
    with fake:
        torch.set_default_dtype(torch.bfloat16)
        try:
            with torch.device("cuda"):
                decoder = DiffusionVideoDecoder(CONFIG)
                latent = torch.empty(1, CONFIG.latent_channels, (frames - 1) // st + 1, height // sh, width // sw)
        finally:
            torch.set_default_dtype(previous)
        counter = DeviceBytes().ignore([*decoder.parameters(), *decoder.buffers(), latent])
        with force_backend("flex"), torch.inference_mode(), counter:
            for chunk in decoder.decode_chunks(latent, plan, None):
                ((chunk + 1.0) / 2.0).clamp(0.0, 1.0).mul(255.0).to(torch.uint8).cpu()
    return counter


@pytest.mark.parametrize(("video", "budget_gib", "fused"), [
    ((49, 512, 768), 2.0, True),  # spatial tiles
    ((121, 512, 768), 2.5, True),  # temporal and spatial tiles
    ((121, 512, 768), 2.5, False),  # the same, elementwise chains eager
    ((49, 1024, 1536), 7.0, True),  # attention in slabs
])  # fmt: skip
def test_the_estimate_covers_the_traced_peak_and_not_by_much(monkeypatch: pytest.MonkeyPatch,
                                                             video: tuple[int, int, int], budget_gib: float,
                                                             fused: bool) -> None:  # fmt: skip
    plan = tiling.tiles_for_budget(CONFIG, *video, int(budget_gib * GIB))
    assert plan is not None  # a tiled plan: the case the cap runs take
    estimate = tiling.plan_working_set_bytes(CONFIG, *video, plan)
    traced = traced_decode_peak(monkeypatch, video, plan, fused)
    largest = "; ".join(f"{a.nbytes / 2**20:.0f} MiB {a.shape} at {a.where}" for a in traced.largest(8))
    assert traced.peak <= estimate, f"traced {traced.peak / GIB:.2f} GiB > estimated {estimate / GIB:.2f}: {largest}"
    assert estimate <= LOOSEST * traced.peak, f"estimated {estimate / GIB:.2f} GiB for {traced.peak / GIB:.2f} traced"
