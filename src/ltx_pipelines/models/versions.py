"""What changes with the model version, as one table: a checkpoint gets the newest row at or below its version.

A new LTX-2.x release is one row here plus the code for what is really new in its model files; the
pipelines read their defaults and behaviour switches from the row, never from version strings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ltx_pipelines.utils import constants as C


@dataclass(frozen=True)
class ModelGeneration:
    """Defaults and behaviour of one model generation (the rows below)."""

    since: tuple[int, int]
    name: str
    #: Guided pipelines' default step count and STG block.
    num_inference_steps: int
    stg_block: int
    #: CRF that conditioning images are re-compressed with by default.
    image_crf: int
    #: The distilled pipeline's stage 1 takes Euler-ancestral steps (eta 1) drawing its own noise.
    ancestral_distilled_stage_1: bool
    #: The reference release whose sampling behaviour this generation follows exactly
    #: ("1.0.0": our CI-checked parity for LTX-2 and 2.3; "1.2.0": LTX-2.5's reference).
    follows_reference: str


GENERATIONS: tuple[ModelGeneration, ...] = (
    ModelGeneration((2, 0), "LTX-2", C.DEFAULT_NUM_INFERENCE_STEPS, C.DEFAULT_STG_BLOCK, C.DEFAULT_IMAGE_CRF,
                    ancestral_distilled_stage_1=False, follows_reference="1.0.0"),
    ModelGeneration((2, 3), "LTX-2.3", C.LTX_2_3_NUM_INFERENCE_STEPS, C.LTX_2_3_STG_BLOCK, C.DEFAULT_IMAGE_CRF,
                    ancestral_distilled_stage_1=False, follows_reference="1.0.0"),
    ModelGeneration((2, 4), "LTX-2.4", C.LTX_2_3_NUM_INFERENCE_STEPS, C.LTX_2_3_STG_BLOCK, C.LTX_2_4_IMAGE_CRF,
                    ancestral_distilled_stage_1=False, follows_reference="1.2.0"),
    ModelGeneration((2, 5), "LTX-2.5", C.LTX_2_3_NUM_INFERENCE_STEPS, C.LTX_2_3_STG_BLOCK, C.LTX_2_4_IMAGE_CRF,
                    ancestral_distilled_stage_1=True, follows_reference="1.2.0"),
)  # fmt: skip

_VERSION = re.compile(r"^\s*v?(\d+)\.(\d+)")


def parse_version(model_version: str) -> tuple[int, int] | None:
    """(major, minor) of a ``model_version`` string such as "2.3.0" or "2.5.1-rc"; None when absent or unreadable."""
    match = _VERSION.match(model_version or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def generation_of(model_version: str) -> ModelGeneration:
    """The newest generation at or below ``model_version`` (LTX-2 when the file declares none, as its first release)."""
    version = parse_version(model_version) or GENERATIONS[0].since
    rows = [row for row in GENERATIONS if row.since <= version]
    return rows[-1] if rows else GENERATIONS[0]


__all__ = ["GENERATIONS", "ModelGeneration", "generation_of", "parse_version"]
