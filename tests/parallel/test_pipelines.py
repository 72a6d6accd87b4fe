"""Every pipeline under torchrun on 2 gloo ranks gives the single-process output (same seed).

The eight pipelines run through the Python API built inside a process group
(``pipeline_driver.py``), once in one process and once on 2 ranks; the distilled and two-stage
command lines run under torchrun (``cli.run_cli``, the ``-m`` entry) and give the API's frames on 2
ranks. (Frames are compared before the mp4 encoder, which runs frame threads and is not
bit-reproducible.)

Exact where the arithmetic is identical: a guided stage on 2 ranks computes each pass whole
(one-stage, retake: frames and audio equal bit for bit). A stage with one pass (the distilled
stages, every stage 2) shards its tokens (Ulysses), whose feed-forward matmuls round differently
on fewer rows (~1e-6, see test_ulysses): after decoding, a few values of the uint8 frames
(at most 0.1%) move by 1 level and the audio by at most 1e-5.
"""

from __future__ import annotations

import shutil

import pytest
import torch

DRIVER = "tests/parallel/pipeline_driver.py"
PIPELINES = (
    "distilled", "ti2vid_two_stages", "ti2vid_two_stages_hq", "ti2vid_one_stage",
    "keyframe_interpolation", "a2vid_two_stage", "ic_lora", "retake",
)  # fmt: skip
EXACT = {"ti2vid_one_stage", "retake"}  # guided stages only: every pass whole on one rank
PROMPT, SEED = "a red kite", 5  # the driver's request


@pytest.fixture(scope="module")
def outputs(smoke_bundle, tmp_path_factory, python, torchrun):  # noqa: ANN001, ANN201
    """(one process, 2 ranks): folders with NAME.pt and NAME.mp4 of every pipeline."""
    single, ranks = tmp_path_factory.mktemp("one_process"), tmp_path_factory.mktemp("two_ranks")
    done = python(DRIVER, smoke_bundle.root, single, *PIPELINES, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    shutil.copytree(single / "inputs", ranks / "inputs")
    done = torchrun(2, DRIVER, smoke_bundle.root, ranks, *PIPELINES, timeout=400)
    assert done.returncode == 0, done.stderr[-4000:]
    return single, ranks


@pytest.mark.parametrize("name", PIPELINES)
def test_two_ranks_give_the_single_process_output(outputs, name) -> None:  # noqa: ANN001
    single, ranks = (torch.load(folder / f"{name}.pt") for folder in outputs)
    assert ranks["ranks_agree"]  # both ranks returned the same frames and audio
    assert (outputs[1] / f"{name}.mp4").is_file()  # written once, by rank 0 (the driver checks rank 1 wrote nothing)
    frames, want = ranks["frames"], single["frames"]
    assert frames.shape == want.shape and frames.dtype == torch.uint8
    if name in EXACT:
        assert torch.equal(frames, want) and torch.equal(ranks["waveform"], single["waveform"])
        return
    moved = (frames.int() - want.int()).abs()
    assert moved.max() <= 1 and (moved > 0).float().mean() <= 1e-3, (moved.max(), (moved > 0).sum())
    torch.testing.assert_close(ranks["waveform"], single["waveform"], rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    "module,files",
    [
        ("distilled", lambda b: ["--checkpoint-path", b.distilled_checkpoint]),
        ("ti2vid_two_stages", lambda b: ["--checkpoint-path", b.checkpoint, "--distilled-lora", b.distilled_lora,
                                         "0.8", "--num-inference-steps", 2]),
    ],
)  # fmt: skip
def test_torchrun_command_line_gives_the_api_frames(
    outputs, smoke_bundle, torchrun, tmp_path, module, files  # noqa: ANN001
) -> None:
    """``torchrun -m ltx_pipelines.<name>``'s path (cli.run_cli under torchrun); the frames it writes are kept."""
    output, kept = tmp_path / "out.mp4", tmp_path / "frames.pt"
    done = torchrun(
        2, "tests/parallel/cli_frames.py", module, kept, *files(smoke_bundle), "--gemma-root", smoke_bundle.gemma_root,
        "--spatial-upsampler-path", smoke_bundle.spatial_upsampler, "--prompt", PROMPT, "--seed", SEED,
        "--height", 64, "--width", 64, "--num-frames", 9, "--frame-rate", 24, "--output-path", output,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames.pt", "out.mp4"]  # one mp4, no stray temporary file
    got, api = torch.load(kept), torch.load(outputs[1] / f"{module}.pt")
    assert torch.equal(got["frames"], api["frames"]) and torch.equal(got["waveform"], api["waveform"])  # = API, 2 ranks
    log = done.stderr
    assert "Running on 2 ranks (gloo)" in log
    assert "Work split over 2 ranks (gloo): ranks 0-1: cond, tokens split 2 ways" in log
    assert "Ulysses over ranks 0-1: each rank computes 4 of 8 video tokens" in log
    if module == "ti2vid_two_stages":
        assert "rank 0: cond + perturbed (STG reuses cond's first 29 blocks); rank 1: uncond + isolated" in log
    assert log.count("Loaded text encoder") == 1  # rank 0 encodes, the others never load Gemma
    assert log.count("Loaded transformer") == 1  # both ranks load it; only rank 0 logs progress
