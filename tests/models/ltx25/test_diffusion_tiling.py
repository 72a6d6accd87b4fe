"""The diffusion decoder's memory plan (``tiles_for_budget``): the cheapest plan that fits, every plan fitting."""

from __future__ import annotations

import pytest

from ltx_pipelines.models.ltx25.diffusion_config import ATTENTION_SLAB_ELEMENTS, DiffusionDecoderConfig
from ltx_pipelines.models.ltx25.diffusion_tiling import (
    TileGeometry,
    plan_working_set_bytes,
    tiles_for_budget,
    working_set_bytes,
)

GIB = 1 << 30
CONFIG = DiffusionDecoderConfig()  # the published layout's defaults
VIDEOS = {"default": (121, 1024, 1536), "4k": (121, 2176, 3840)}


def used(video: tuple[int, int, int], plan) -> int:  # noqa: ANN001
    return plan_working_set_bytes(CONFIG, *video, plan)


def test_whole_video_and_whole_volume_attention_where_it_fits() -> None:
    video = VIDEOS["default"]
    assert tiles_for_budget(CONFIG, *video, used(video, None)) is None
    smaller = tiles_for_budget(CONFIG, *video, used(video, None) - 1)
    assert smaller is not None and used(video, smaller) < used(video, None)


@pytest.mark.parametrize(("video", "budget_gib"), [("default", 24), ("default", 15), ("default", 5), ("4k", 70),
                                                    ("4k", 22), ("4k", 14)])  # fmt: skip
def test_every_plan_fits_its_budget(video: str, budget_gib: float) -> None:
    shape = VIDEOS[video]
    plan = tiles_for_budget(CONFIG, *shape, int(budget_gib * GIB))
    assert plan is not None and plan.attention_slab in (None, ATTENTION_SLAB_ELEMENTS)
    assert used(shape, plan) <= budget_gib * GIB


def test_slabs_hold_less_than_whole_volume_attention_over_the_same_tile() -> None:
    video = VIDEOS["default"]
    geometry = TileGeometry.of(CONFIG)
    whole = working_set_bytes(geometry, CONFIG, *video, (121, 1024, 832))
    slabbed = working_set_bytes(geometry, CONFIG, *video, (121, 1024, 832), slab=ATTENTION_SLAB_ELEMENTS)
    assert slabbed < whole


def test_too_small_a_budget_says_what_the_whole_video_stage_keeps() -> None:
    with pytest.raises(ValueError, match=r"smallest tile does not fit.*stage-4 input alone is 4.3 GiB"):
        tiles_for_budget(CONFIG, *VIDEOS["4k"], 5 * GIB)
