"""The three neighborhood-attention paths give the same numbers as dense attention under the window mask.

The FlexAttention path is compiled here on the CPU (inductor's C++ backend), which is what makes it honour the
block table: uncompiled, FlexAttention evaluates every pair and only the element mask would be tested.
"""

from __future__ import annotations

import math

import pytest
import torch

from ltx_pipelines.models.ltx25 import flex_neighborhood as flex
from ltx_pipelines.models.ltx25.neighborhood_attention import (
    choose_backend,
    force_backend,
    neighborhood_attention,
    reference_neighborhood_attention,
)

TOLERANCE = 1e-6  # float32, relative to the largest output
SHAPES = [((1, 5, 11, 13, 2, 16), (3, 7, 7)), ((2, 3, 9, 20, 1, 8), (3, 5, 5)), ((1, 1, 10, 17, 2, 8), (1, 3, 3))]


def qkv(shape: tuple[int, ...]) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(sum(shape))
    return tuple(torch.randn(shape, generator=generator) for _ in range(3))


def relative_error(ours: torch.Tensor, expected: torch.Tensor) -> float:
    return float((ours - expected).abs().max() / expected.abs().max())


@pytest.mark.parametrize("backend", ["blocked", "flex"])
@pytest.mark.parametrize(("shape", "kernel"), SHAPES[:2])
def test_backend_equals_dense_masked_attention(backend: str, shape: tuple, kernel: tuple) -> None:
    q, k, v = qkv(shape)
    with force_backend(backend):
        ours = neighborhood_attention(q, k, v, kernel)
    assert relative_error(ours, reference_neighborhood_attention(q, k, v, kernel)) <= TOLERANCE


@pytest.mark.parametrize(("shape", "kernel"), SHAPES)
def test_flex_element_mask_uncompiled(shape: tuple, kernel: tuple) -> None:
    q, k, v = qkv(shape)
    ours = flex.flex_neighborhood_attention(q, k, v, kernel, compiled=False).reshape(q.shape[:4] + (-1,))
    assert relative_error(ours, reference_neighborhood_attention(q, k, v, kernel)) <= TOLERANCE


LAYOUTS = [((2, 8, 8), 128, 27), ((2, 8, 8), 64, 36), ((2, 8, 8), 32, 48), ((1, 8, 8), 32, 36), ((1, 8, 16), 32, 72)]


@pytest.mark.parametrize(("dims", "tile", "key_block", "most"), [
    (dims, *layout) for dims in [(5, 11, 13), (4, 16, 16), (1, 10, 17), (7, 9, 33)] for layout in LAYOUTS
    if layout[0][0] <= dims[0]  # a tile of more frames than the volume is never chosen
])  # fmt: skip
@pytest.mark.parametrize("kernel", [(3, 7, 7), (3, 3, 3)])
def test_block_table_covers_every_window(dims: tuple, kernel: tuple, tile: tuple, key_block: int, most: int) -> None:
    """The key blocks listed for a query tile are exactly those holding a key of one of its queries' windows (at
    most ``most``: per axis a tile's windows reach one neighbouring key unit per side)."""
    kernel = tuple(min(k, n) for k, n in zip(kernel, dims, strict=True))
    units = flex.key_units(tile, key_block)
    axes = tuple(flex._Axis(n, s, k, u) for n, s, k, u in zip(dims, tile, kernel, units, strict=True))
    counts, indices = flex.block_table(axes, torch.device("cpu"))
    order = flex.to_tiles(torch.arange(1, math.prod(dims) + 1).view(1, *dims, 1, 1), tile).flatten()
    key_blocks = order.shape[0] // key_block
    listed = torch.zeros(len(counts), key_blocks, dtype=torch.bool)
    for row, (count, index) in enumerate(zip(counts.tolist(), indices, strict=True)):
        listed[row, index[:count].long()] = True
    dense = reference_mask(dims, kernel)  # [N, N] in raster order
    real = order > 0  # padding is zero
    position = order - 1  # tile-order index -> raster token
    tiled = torch.zeros(order.shape[0], order.shape[0], dtype=torch.bool)
    idx = torch.nonzero(real).flatten()
    tiled[idx[:, None], idx[None, :]] = dense[position[idx][:, None], position[idx][None, :]]
    needed = tiled.view(len(counts), math.prod(tile), key_blocks, key_block).any(dim=(1, 3))
    assert torch.equal(needed, listed)  # every block a window needs, and no other
    assert int(counts.max()) <= most


@pytest.mark.parametrize("key_block", [64, 32])
def test_finer_key_blocks_give_the_same_attention(key_block: int) -> None:
    shape, kernel = SHAPES[0]
    q, k, v = qkv(shape)
    ours = flex.flex_neighborhood_attention(q, k, v, kernel, key_block=key_block).reshape(q.shape[:4] + (-1,))
    assert relative_error(ours, reference_neighborhood_attention(q, k, v, kernel)) <= TOLERANCE


@pytest.mark.parametrize(("tile", "key_block", "box"), [((2, 8, 8), 128, (2, 8, 8)), ((2, 8, 8), 64, (1, 8, 8)),
                                                        ((2, 8, 8), 32, (1, 4, 8)), ((1, 8, 16), 32, (1, 2, 16))])
def test_key_block_is_a_box_of_the_tile(tile: tuple, key_block: int, box: tuple) -> None:
    assert flex.key_units(tile, key_block) == box


def test_a_key_block_that_is_no_box_is_refused() -> None:
    with pytest.raises(ValueError, match="not a box"):
        flex.key_units((2, 8, 8), 24)


def reference_mask(dims: tuple[int, int, int], kernel: tuple[int, int, int]) -> torch.Tensor:
    masks = []
    for length, size in zip(dims, kernel, strict=True):
        starts = flex.window_starts(length, size)
        keys = torch.arange(length)
        masks.append((keys[None, :] >= starts[:, None]) & (keys[None, :] < starts[:, None] + size))
    t, h, w = masks
    n = dims[0] * dims[1] * dims[2]
    return (t[:, None, None, :, None, None] & h[None, :, None, None, :, None]
            & w[None, None, :, None, None, :]).reshape(n, n)  # fmt: skip


def test_tile_order_round_trips() -> None:
    x = torch.randn(2, 3, 9, 20, 2, 4)
    tile = flex.choose_tile((3, 9, 20))
    assert torch.equal(flex.from_tiles(flex.to_tiles(x, tile), (3, 9, 20), tile), x)


def test_auto_is_blocked_on_the_cpu_and_forcing_is_scoped() -> None:
    q = torch.zeros(1, 2, 2, 2, 1, 4)
    assert choose_backend(q) == "blocked"
    with force_backend("flex"):
        assert choose_backend(q) == "flex"
    assert choose_backend(q) == "blocked"
    with pytest.raises(ValueError, match="choose one of"), force_backend("dense"):
        pass


def test_flex_stays_out_of_a_compiled_caller_graph() -> None:
    """A compiled block breaks its graph at FlexAttention (which compiles on its own, with its cached block mask):
    traced into a block's graph, inductor failed lowering the window mask on the H100."""
    shape, kernel = SHAPES[0]
    q, k, v = qkv(shape)

    def block_like(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return neighborhood_attention(q * 1.0, k, v, kernel) + 1.0

    with force_backend("flex"):
        explained = torch._dynamo.explain(block_like)(q, k, v)
        ours = torch.compile(block_like, backend="eager")(q, k, v)
    traced = [type(node.target).__name__ for graph in explained.graphs for node in graph.graph.nodes]
    assert not [name for name in traced if "FlexAttention" in name]  # not inside the caller's graphs
    assert explained.graph_count == 2 + 1  # before, (the break), after: the block mask is not traced per call
    assert relative_error(ours - 1.0, reference_neighborhood_attention(q, k, v, kernel)) <= TOLERANCE


@pytest.mark.parametrize(("failure", "falls_back"), [(RuntimeError("no Triton"), True),
                                                     (torch.OutOfMemoryError("out of memory"), False)])  # fmt: skip
def test_flex_failure_falls_back_but_out_of_memory_is_raised(monkeypatch: pytest.MonkeyPatch, failure: Exception,
                                                             falls_back: bool) -> None:  # fmt: skip
    """A FlexAttention that cannot compile gives way to the blocked path for good; running out of memory does not
    (it is the caller's to handle: a smaller tile), and FlexAttention stays in use afterwards."""
    import ltx_pipelines.models.ltx25.neighborhood_attention as na

    def failing(*args: object, **kwargs: object) -> torch.Tensor:
        raise failure

    monkeypatch.setattr(na, "flex_neighborhood_attention", failing)
    monkeypatch.setattr(na, "_flex_broken", False)
    shape, kernel = SHAPES[1]
    q, k, v = qkv(shape)
    if falls_back:
        got = na._flex_or_blocked(q, k, v, kernel).reshape(q.shape[:4] + (-1,))
        assert relative_error(got, reference_neighborhood_attention(q, k, v, kernel)) <= TOLERANCE
    else:
        with pytest.raises(torch.OutOfMemoryError):
            na._flex_or_blocked(q, k, v, kernel)
    assert na._flex_broken is falls_back
