"""A rank that fails ends every rank, with a message naming it, and no output file is left.

The failing rank prints ``error: rank R of N failed: ...`` and exits at once; torchrun then stops
the ranks blocked in a collective waiting for it (SIGTERM) - unless gloo tells them first that the
connection to the failed rank is gone, which they then report the same way. The subprocess limit below only guards
against a hang (the collective timeout is 30 minutes): the run ends within seconds.
"""

from __future__ import annotations

import pytest


def two_stage_args(bundle, output) -> list:  # noqa: ANN001
    return [
        "ti2vid_two_stages", "--checkpoint-path", bundle.checkpoint, "--distilled-lora", bundle.distilled_lora, "0.8",
        "--spatial-upsampler-path", bundle.spatial_upsampler, "--gemma-root", bundle.gemma_root,
        "--prompt", "a red kite", "--height", 64, "--width", 64, "--num-frames", 9, "--num-inference-steps", 2,
        "--output-path", output,
    ]  # fmt: skip


@pytest.mark.parametrize("rank,call", [(1, 2), (0, 4)])  # rank 1 in stage 1; rank 0 in stage 2 (Ulysses)
def test_a_failing_rank_ends_every_rank(torchrun, smoke_bundle, tmp_path, rank, call) -> None:  # noqa: ANN001
    output = tmp_path / "out.mp4"
    done = torchrun(2, "tests/parallel/fail_on_rank.py", rank, call, *two_stage_args(smoke_bundle, output), timeout=120)
    assert done.returncode != 0
    message = f"error: rank {rank} of 2 failed: RuntimeError: injected failure. torchrun stops the other ranks; " \
              "no output was written."  # fmt: skip
    assert message in done.stderr, done.stderr[-3000:]
    assert done.stderr.count("injected failure. torchrun stops") == 1
    # The other rank is stopped by torchrun, or first sees its peer's connection drop and says so.
    other = [line for line in done.stderr.splitlines() if line.startswith(f"error: rank {1 - rank} of 2 failed")]
    assert all("Connection" in line or "peer" in line for line in other), other
    assert list(tmp_path.iterdir()) == []  # no mp4, no temporary file
