"""Set-up of the process group: what each rank finds, the checks every rank runs alike, the head constraint."""

from __future__ import annotations

import re

import pytest
import torch

from ltx_pipelines.models.checkpoints import inspect_ltx_checkpoint
from ltx_pipelines.parallel import process_group as pg
from ltx_pipelines.parallel.launch import device_flag
from ltx_pipelines.utils.errors import InputError


def rank(rank: int, device: str | None, *, host: str = "node-a", gpus: int = 2, nccl: bool = True, **extra) -> dict:
    return {"rank": rank, "host": host, "gpus": gpus, "nccl": nccl, "device": device, **extra}


def test_valid_set_ups_pass() -> None:
    pg.check_devices([rank(0, "cuda:0"), rank(1, "cuda:1")])
    pg.check_devices([rank(0, "cpu", gpus=0, nccl=False), rank(1, "cpu", gpus=0, nccl=False)])


@pytest.mark.parametrize(
    "ranks,fragment",
    [
        ([rank(0, "cuda:0"), rank(1, "cpu", host="node-b", gpus=0)], "mixed devices: ranks 1 run on the CPU"),
        ([rank(0, "cuda:0"), rank(2, None, no_gpu=True)], "rank 2 (host node-a) has no GPU of its own"),
        ([rank(0, "cuda:0", nccl=False), rank(1, "cuda:1", nccl=False)], "NCCL is missing on rank(s) 0, 1"),
        ([rank(0, None, problem="--device mps: nope")], "rank 0: --device mps: nope"),
    ],
)
def test_bad_set_ups_are_refused(ranks, fragment) -> None:  # noqa: ANN001
    with pytest.raises(InputError) as error:
        pg.check_devices(ranks)
    assert fragment in str(error.value)


def fake_node(monkeypatch, gpus: int) -> None:  # noqa: ANN001
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpus > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)


@pytest.mark.parametrize(
    "gpus,local_rank,flag,device,problem",
    [
        (2, 1, None, "cuda:1", None),
        (2, 1, "cuda", "cuda:1", None),
        (2, 1, "cpu", "cpu", None),
        (0, 1, None, "cpu", None),
        (2, 3, None, None, None),  # no_gpu: more local ranks than GPUs
        (0, 0, "cuda", None, "no GPU is usable"),
        (2, 0, "cuda:1", None, "pass --device cuda"),
        (2, 0, "mps", None, "cuda (NCCL) or cpu (gloo) only"),
    ],
)
def test_each_rank_finds_its_device(monkeypatch, gpus, local_rank, flag, device, problem) -> None:  # noqa: ANN001
    fake_node(monkeypatch, gpus)
    env = pg.TorchrunEnv(rank=local_rank, world_size=4, local_rank=local_rank, local_world_size=4)
    info = pg.rank_device(env, flag)
    assert info["device"] == device
    assert (problem or "") in info.get("problem", "")
    assert info.get("no_gpu", False) == (device is None and problem is None)


def test_ranks_must_divide_the_attention_heads(smoke_bundle) -> None:  # noqa: ANN001
    config = inspect_ltx_checkpoint(smoke_bundle.checkpoint).config
    assert pg.attention_heads(config) == (2, 2)
    assert pg.valid_world_sizes(config) == [1, 2]
    pg.check_world_size(2, config)
    with pytest.raises(InputError, match=r"Valid --nproc-per-node values: 1, 2\."):
        pg.check_world_size(4, config)
    big = {"transformer": {"num_attention_heads": 32, "audio_num_attention_heads": 32}}
    assert pg.valid_world_sizes(big) == [1, 2, 4, 8, 16, 32]
    with pytest.raises(InputError, match="3 ranks cannot share"):
        pg.check_world_size(3, big)


def test_without_torchrun_nothing_changes(monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert pg.TorchrunEnv.detect() is None
    assert pg.init_from_env() is None
    assert pg.current_context() is None
    assert pg.join_group({}, "cpu") == (None, "cpu")


def test_device_flag_is_read_from_the_command_line() -> None:
    assert device_flag(["--prompt", "x", "--device", "cpu"]) == "cpu"
    assert device_flag(["--device=cuda"]) == "cuda"
    assert device_flag(["--prompt", "x"]) is None


def test_pipeline_device_follows_the_group() -> None:
    ctx = pg.ParallelContext(rank=1, world_size=2, backend="nccl", device=torch.device("cuda", 1), local_rank=1)
    assert pg.pipeline_device(ctx, None) == torch.device("cuda", 1)
    assert pg.pipeline_device(ctx, "cuda") == torch.device("cuda", 1)
    with pytest.raises(InputError, match="runs on cuda"):
        pg.pipeline_device(ctx, "cpu")


def distilled_args(bundle, output) -> list:  # noqa: ANN001
    return [
        "-m", "ltx_pipelines.distilled", "--checkpoint-path", bundle.distilled_checkpoint,
        "--gemma-root", bundle.gemma_root, "--spatial-upsampler-path", bundle.spatial_upsampler,
        "--prompt", "a cat", "--output-path", output, "--height", 64, "--width", 64, "--num-frames", 9,
    ]  # fmt: skip


def error_lines(stderr: str) -> list[str]:
    """Each rank's ``error (rank R of N): ...`` message (two ranks' lines may share a line of stderr)."""
    return re.findall(r"error \(rank \d+ of \d+\): .*?(?=error \(rank |\n|$)", stderr)


def test_torchrun_refuses_ranks_that_do_not_divide_the_heads(torchrun, smoke_bundle, tmp_path) -> None:  # noqa: ANN001
    output = tmp_path / "out.mp4"
    done = torchrun(4, *distilled_args(smoke_bundle, output))
    assert done.returncode != 0
    errors = error_lines(done.stderr)
    # Every rank finds it before any model loads; the first to exit makes torchrun stop the others,
    # which on a busy machine may not have printed theirs yet: one line at least, each rank's once.
    assert errors, done.stderr
    assert all("4 ranks cannot share" in e and "Valid --nproc-per-node values: 1, 2." in e for e in errors)
    ranks = [e.split(")")[0] for e in errors]
    assert len(set(ranks)) == len(ranks) and set(ranks) <= {f"error (rank {r} of 4" for r in range(4)}
    assert "Loaded" not in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_torchrun_refuses_gpus_that_are_not_there(torchrun, smoke_bundle, tmp_path) -> None:  # noqa: ANN001
    done = torchrun(2, *distilled_args(smoke_bundle, tmp_path / "out.mp4"), "--device", "cuda")
    assert done.returncode != 0
    errors = error_lines(done.stderr)
    assert errors and all("--device cuda, but no GPU is usable" in e for e in errors), done.stderr  # see above
    assert list(tmp_path.iterdir()) == []
