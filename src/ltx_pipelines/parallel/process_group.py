"""One process group per generation run: detect torchrun, check the set-up, pick the backend.

``torchrun --nproc-per-node N -m ltx_pipelines.<name> ...`` starts N copies of the pipeline with
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and a rendezvous address in the environment.
:func:`init_from_env` turns that into one process group: NCCL with each rank on the GPU of its
local rank, or gloo on the CPU. Before the group starts, every rank publishes what device it
found through the rendezvous store and every rank runs the same checks on the same data, so a bad
set-up (mixed devices, a rank without a GPU, NCCL missing) fails on all ranks with the same
:class:`InputError`, before any model loads. The attention-head constraint is checked when a
pipeline is built (:func:`check_world_size`), from the checkpoint's config.

:class:`ParallelContext` is what the rest of the package sees: rank, world size, backend, device.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from dataclasses import dataclass, field
from datetime import timedelta

import torch
import torch.distributed as dist

from ltx_pipelines.utils.errors import InputError

logger = logging.getLogger(__name__)

#: How long a collective may wait for the other ranks. Long enough for rank 0 to load and run the
#: text encoder while the others wait for its embeddings; a failed rank ends the others much
#: sooner (torchrun stops them when one exits). Override with LTX_COLLECTIVE_TIMEOUT_S.
DEFAULT_COLLECTIVE_TIMEOUT_S = 1800

#: NVLink multicast (NVLS) can take the GPUs of a shared host out of service: kept off whenever
#: we start NCCL.
NCCL_SAFE_ENV = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}


@dataclass
class ParallelContext:
    """This process's place in the group: what every parallel piece of the package needs."""

    rank: int
    world_size: int
    backend: str
    device: torch.device
    local_rank: int = 0
    owns_group: bool = False  # True when we initialised the group (and so destroy it)
    _subgroups: dict[tuple[int, ...], object] = field(default_factory=dict, repr=False)

    @property
    def is_writer(self) -> bool:
        """Only rank 0 writes files."""
        return self.rank == 0

    def subgroup(self, ranks: tuple[int, ...]) -> object | None:
        """The process group of ``ranks`` (None for all ranks), created once.

        Creating a group is collective over all ranks: every rank must ask for the same groups in the
        same order, which holds because every rank computes the same work plan.
        """
        if len(ranks) == self.world_size:
            return None
        if ranks not in self._subgroups:
            self._subgroups[ranks] = dist.new_group(list(ranks))
        return self._subgroups[ranks]


@dataclass(frozen=True)
class TorchrunEnv:
    """What torchrun tells each process it starts."""

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int

    @classmethod
    def detect(cls) -> "TorchrunEnv | None":
        """The launch environment, or None when not started by torchrun (or with a single process)."""
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size <= 1:
            return None
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world_size)))
        return cls(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")), local_world)


def collective_timeout() -> timedelta:
    seconds = float(os.environ.get("LTX_COLLECTIVE_TIMEOUT_S", DEFAULT_COLLECTIVE_TIMEOUT_S))
    return timedelta(seconds=seconds)


# --------------------------------------------------------------------------- devices


def rank_device(env: TorchrunEnv, device_flag: str | None) -> dict:
    """This rank's device (or the reason it has none), as published to the other ranks."""
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    info = {"rank": env.rank, "host": socket.gethostname(), "gpus": gpus, "nccl": dist.is_nccl_available()}
    wanted = torch.device(device_flag) if device_flag else None
    if wanted is not None and wanted.type not in ("cpu", "cuda"):
        return {**info, "device": None, "problem": f"--device {device_flag}: several processes run on cuda "
                f"(NCCL) or cpu (gloo) only."}  # fmt: skip
    if wanted is not None and wanted.type == "cuda" and wanted.index is not None:
        return {**info, "device": None, "problem": f"--device {device_flag}: under torchrun each rank uses the "
                "GPU of its local rank; pass --device cuda (or leave --device out)."}  # fmt: skip
    if wanted is not None and wanted.type == "cpu":
        return {**info, "device": "cpu"}
    if env.local_rank < gpus:
        return {**info, "device": f"cuda:{env.local_rank}"}
    if wanted is not None and gpus == 0:
        return {**info, "device": None, "problem": f"--device {device_flag}, but no GPU is usable on host "
                f"{info['host']} (no CUDA device, or a PyTorch build without CUDA)."}  # fmt: skip
    if wanted is not None or gpus > 0:  # asked for a GPU, or the node has some but not one for this rank
        return {**info, "device": None, "no_gpu": True}
    return {**info, "device": "cpu"}


def check_devices(ranks: list[dict]) -> None:
    """Raise InputError for a set-up the group cannot run on; the same verdict on every rank."""
    for info in ranks:
        if info.get("problem"):
            raise InputError(f"rank {info['rank']}: {info['problem']}")
    no_gpu = [info for info in ranks if info.get("no_gpu")]
    on_gpu = [info for info in ranks if (info["device"] or "").startswith("cuda")]
    if no_gpu:
        worst = no_gpu[0]
        raise InputError(
            f"rank {worst['rank']} (host {worst['host']}) has no GPU of its own: its node has {worst['gpus']} GPU(s) "
            f"for its local ranks. Start at most as many processes per node as it has GPUs "
            f"(torchrun --nproc-per-node), or run every rank on the CPU with --device cpu."
        )
    if on_gpu and len(on_gpu) != len(ranks):
        cpu = [info["rank"] for info in ranks if info["device"] == "cpu"]
        raise InputError(
            f"mixed devices: ranks {', '.join(map(str, cpu))} run on the CPU while ranks "
            f"{', '.join(str(i['rank']) for i in on_gpu)} run on GPUs. Every rank must use the same kind of device "
            "(the same --device on every node)."
        )
    if on_gpu and not all(info["nccl"] for info in on_gpu):
        missing = [info["rank"] for info in on_gpu if not info["nccl"]]
        raise InputError(
            f"NCCL is missing on rank(s) {', '.join(map(str, missing))}: GPU ranks talk through NCCL. Install a "
            "CUDA build of PyTorch (it ships NCCL), or run on the CPU with --device cpu (gloo)."
        )


def _exchange(store: dist.Store, env: TorchrunEnv, info: dict) -> list[dict]:
    """Every rank's device info, read through the rendezvous store (no process group needed yet)."""
    setup = dist.PrefixStore("ltx_pipelines/setup", store)
    setup.set(f"device/{env.rank}", json.dumps(info))
    return [json.loads(setup.get(f"device/{r}")) for r in range(env.world_size)]


# --------------------------------------------------------------------------- group lifetime

_active: ParallelContext | None = None


def init_from_env(device_flag: str | None = None) -> ParallelContext | None:
    """Under torchrun, start the one process group of this run; None without torchrun.

    Raises InputError (on every rank alike) when the ranks' devices do not make a valid group.
    """
    global _active
    env = TorchrunEnv.detect()
    if env is None:
        return None
    if not dist.is_available():
        raise InputError("this PyTorch build has no torch.distributed: it cannot run under torchrun.")
    timeout = collective_timeout()
    store, rank, world_size = next(dist.rendezvous("env://", timeout=timeout))
    store.set_timeout(timeout)
    ranks = _exchange(store, env, rank_device(env, device_flag))
    check_devices(ranks)
    device = torch.device(ranks[rank]["device"])
    backend = "nccl" if device.type == "cuda" else "gloo"
    if backend == "nccl":
        os.environ.update(NCCL_SAFE_ENV)  # before NCCL starts: no NVLink multicast
        torch.cuda.set_device(device)
    dist.init_process_group(
        backend, store=dist.PrefixStore("default_pg", store), rank=rank, world_size=world_size, timeout=timeout,
        device_id=device if backend == "nccl" else None,
    )  # fmt: skip
    _active = ParallelContext(rank, world_size, backend, device, env.local_rank, owns_group=True)
    logger.info("Process group: %d ranks, backend %s, rank %d on %s", world_size, backend, rank, device)
    return _active


def destroy() -> None:
    """End the group this module started (after a successful run; a failed run just exits)."""
    global _active
    if _active is not None and _active.owns_group and dist.is_initialized():
        dist.destroy_process_group()
    _active = None


def current_context() -> ParallelContext | None:
    """This process's context when it runs inside a process group of several ranks, else None.

    The group is ours (started by :func:`init_from_env`) or the caller's (``dist.init_process_group``
    before constructing a pipeline): the Python classes take the same route either way.
    """
    if _active is not None:
        return _active
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() <= 1:
        return None
    backend = str(dist.get_backend())
    if "nccl" in backend and torch.cuda.is_available():
        device = torch.device("cuda", torch.cuda.current_device())
    else:
        device = torch.device("cpu")
    local_rank = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
    return ParallelContext(dist.get_rank(), dist.get_world_size(), backend, device, local_rank)


def pipeline_device(ctx: ParallelContext, requested: torch.device | str | None) -> torch.device:
    """The device a pipeline runs on inside the group: the rank's own (a bare "cuda" means it)."""
    if requested is None:
        return ctx.device
    requested = torch.device(requested)
    if requested.type != ctx.device.type:
        raise InputError(
            f"the process group ({ctx.backend}) runs on {ctx.device.type}, but the pipeline was asked to run on "
            f"{requested}: use the group's device (NCCL for GPUs, gloo for the CPU)."
        )
    return ctx.device if requested.index is None else requested


def join_group(config: dict, device: torch.device | str | None) -> tuple[ParallelContext | None, object]:
    """(context, device) for a pipeline being built: unchanged outside a group of several ranks.

    Inside one, checks the rank count against the checkpoint's attention heads (before any model
    loads) and gives the rank's own device.
    """
    ctx = current_context()
    if ctx is None:
        return None, device
    check_world_size(ctx.world_size, config)
    device = pipeline_device(ctx, device)
    if ctx.rank == 0:
        logger.info("Running on %d ranks (%s); rank 0 on %s", ctx.world_size, ctx.backend, device)
    return ctx, device


# --------------------------------------------------------------------------- model constraints


def attention_heads(config: dict) -> tuple[int, int]:
    """(video, audio) attention heads of the transformer in a checkpoint's config."""
    transformer = config.get("transformer", {})
    return int(transformer.get("num_attention_heads", 32)), int(transformer.get("audio_num_attention_heads", 32))


def valid_world_sizes(config: dict) -> list[int]:
    """Numbers of ranks that divide the heads of both video and audio attention."""
    video, audio = attention_heads(config)
    return [n for n in range(1, min(video, audio) + 1) if video % n == 0 and audio % n == 0]


def check_world_size(world_size: int, config: dict) -> None:
    """Sequence parallelism splits attention heads across ranks: N must divide them (InputError otherwise)."""
    video, audio = attention_heads(config)
    if video % world_size or audio % world_size:
        valid = ", ".join(map(str, valid_world_sizes(config)))
        raise InputError(
            f"{world_size} ranks cannot share this transformer's attention heads ({video} video, {audio} audio): "
            f"the number of ranks must divide both. Valid --nproc-per-node values: {valid}."
        )


__all__ = [
    "DEFAULT_COLLECTIVE_TIMEOUT_S",
    "NCCL_SAFE_ENV",
    "ParallelContext",
    "TorchrunEnv",
    "attention_heads",
    "check_devices",
    "check_world_size",
    "current_context",
    "destroy",
    "init_from_env",
    "join_group",
    "pipeline_device",
    "rank_device",
    "valid_world_sizes",
]
