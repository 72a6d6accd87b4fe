"""benchmarks/multi_gpu.py --tiny: 1 rank vs 2 ranks in one torchrun run, on the CPU (gloo), smoke model."""

from __future__ import annotations

import json


def test_tiny_benchmark_reports_both_modes(torchrun, smoke_bundle, tmp_path) -> None:  # noqa: ANN001
    report = tmp_path / "rows.json"
    done = torchrun(
        2, "benchmarks/multi_gpu.py", "--tiny", "--bundle", smoke_bundle.root, "--out", tmp_path / "mp4",
        "--json", report,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    rows = json.loads(report.read_text())
    runs = [(r["mode"], r["run"]) for r in rows if "mode" in r]
    assert runs == [("1 rank", "warm-up"), ("1 rank", "measured"), ("2 ranks", "warm-up"), ("2 ranks", "measured")]
    single, parallel = rows[1], rows[3]
    for row in (single, parallel):
        stages = {"text encoding", "stage 1", "upsample", "stage 2", "decode video", "write mp4"}
        assert stages <= set(row["breakdown_s"])
        assert row["peak_gib"] > 0
    assert single["comm_s"] == 0 and single["comm_calls"] == 0
    assert parallel["comm_s"] > 0 and parallel["comm_calls"] > 0 and parallel["comm_per_stage_s"]["stage 2"] > 0
    assert len(parallel["per_rank"]) == 2
    check = rows[-1]
    assert check["check"] == "2 ranks vs 1 rank, same seed" and check["max_level_diff"] <= 1
    assert sorted(p.name for p in (tmp_path / "mp4").iterdir()) == ["128x128x9x2_1_rank.mp4", "128x128x9x2_2_ranks.mp4"]
