"""What the torchrun decode checks share: every rank's report gathered, merged and written by rank 0."""

from __future__ import annotations

import json
from pathlib import Path

import torch.distributed as dist


def write_merged_report(rank: int, world_size: int, report: dict, out: Path) -> None:
    """Gather ``{case: {..., "exact", "generator_state"}}`` from every rank; rank 0 writes rank 0's report with
    ``exact`` true only where every rank's is and ``generator_state`` listed per rank."""
    reports: list = [None] * world_size
    dist.all_gather_object(reports, report)
    if rank == 0:
        merged = {case: {**reports[0][case], "exact": all(r[case]["exact"] for r in reports),
                         "generator_state": [r[case]["generator_state"] for r in reports]}
                  for case in report}  # fmt: skip
        out.write_text(json.dumps(merged, indent=1))
