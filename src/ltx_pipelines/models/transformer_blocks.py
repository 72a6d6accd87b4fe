"""The transformer seen as three phases: prepare the inputs, run a range of blocks, finish the outputs.

Everything that changes *how* blocks run plugs in here as an engine with the same three methods:
eager (this module), CUDA-graph replay (``cuda_graphs``), weights streamed from host memory or disk
(``ltx_pipelines.memory.streaming``), tokens sharded across ranks (``ltx_pipelines.parallel``). The
pass scheduler (``transformer_passes``) decides which passes run through which blocks in what order.
"""

from __future__ import annotations

from dataclasses import fields, replace

import torch
from ltx_core.guidance.perturbations import BatchedPerturbationConfig
from ltx_core.model.transformer import Modality, X0Model
from ltx_core.model.transformer.transformer_args import TransformerArgs
from ltx_core.utils import to_denoised

Args = TransformerArgs | None


def args_tensors(args: Args) -> list[torch.Tensor]:
    """The tensors of a TransformerArgs, in a fixed order (tuples flattened)."""
    if args is None:
        return []
    out: list[torch.Tensor] = []
    for f in fields(args):
        value = getattr(args, f.name)
        if isinstance(value, torch.Tensor):
            out.append(value)
        elif isinstance(value, tuple):
            out.extend(v for v in value if isinstance(v, torch.Tensor))
    return out


def with_tensors(args: Args, tensors: list[torch.Tensor]) -> Args:
    """A copy of `args` whose tensors are taken, in order, from `tensors`."""
    if args is None:
        return None
    it = iter(tensors)
    changes = {}
    for f in fields(args):
        value = getattr(args, f.name)
        if isinstance(value, torch.Tensor):
            changes[f.name] = next(it)
        elif isinstance(value, tuple):
            changes[f.name] = tuple(next(it) if isinstance(v, torch.Tensor) else v for v in value)
    return replace(args, **changes)


def stack_args(args: list[Args]) -> Args:
    """Concatenate transformer states along the batch (every tensor field is batch-first)."""
    if args[0] is None:
        return None
    columns = zip(*(args_tensors(a) for a in args), strict=True)
    return with_tensors(args[0], [torch.cat(column, dim=0) for column in columns])


def pick_args(args: Args, index: int) -> Args:
    """One sample of a batched transformer state."""
    if args is None:
        return None
    return with_tensors(args, [t[index : index + 1] for t in args_tensors(args)])


def denoised_outputs(
    model: torch.nn.Module, video: Modality, audio: Modality | None, v_out: TransformerArgs, a_out: Args
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Output projection of the last block's states, turned into clean (x0) estimates."""
    vx = model._process_output(model.scale_shift_table, model.norm_out, model.proj_out, v_out.x, v_out.embedded_timestep)
    video_x0 = to_denoised(video.latent, vx, video.timesteps)
    if audio is None or a_out is None:
        return video_x0, None
    ax = model._process_output(
        model.audio_scale_shift_table, model.audio_norm_out, model.audio_proj_out, a_out.x, a_out.embedded_timestep
    )
    return video_x0, to_denoised(audio.latent, ax, audio.timesteps)


def compact_timesteps(modality: Modality | None) -> Modality | None:
    """The same modality with one timestep per sample when all its tokens share it.

    ltx-core embeds the timestep of every token and modulates every token with its own copy; when
    nothing is conditioned all copies are equal, and one row per sample broadcasts to the same
    values (ltx-core flattens the timesteps and views them as ``[B, -1, dim]``, so ``[B, 1, 1]``
    works as well as ``[B, T, 1]``), saving the per-token AdaLN matmul and the state it leaves:
    9 coefficients and an embedding of the model's width for every token.
    """
    if modality is None or modality.timesteps.ndim < 2 or modality.timesteps.shape[1] <= 1:
        return modality
    first = modality.timesteps[:, :1]
    if not bool((modality.timesteps == first).all()):
        return modality
    return replace(modality, timesteps=first.contiguous())


class EagerBlocks:
    """The resident transformer, block by block, as ltx-core's own forward runs it."""

    def __init__(self, transformer: X0Model, compact: bool = False):
        self.transformer = transformer
        self.velocity_model = transformer.velocity_model
        self.compact = compact  # one timestep row per sample where tokens share it (memory pre-flight's last resort)

    @property
    def num_blocks(self) -> int:
        return len(self.velocity_model.transformer_blocks)

    def prepare(self, video: Modality, audio: Modality | None) -> tuple[TransformerArgs, Args]:
        """Patchify projection, timestep and positional embeddings of each modality."""
        if self.compact:
            video, audio = compact_timesteps(video), compact_timesteps(audio)
        model = self.velocity_model
        v_args = model.video_args_preprocessor.prepare(video, audio)
        a_args = model.audio_args_preprocessor.prepare(audio, video) if audio is not None else None
        return v_args, a_args

    def blocks(
        self,
        video: TransformerArgs,
        audio: Args,
        perturbations: BatchedPerturbationConfig,
        start: int = 0,
        stop: int | None = None,
    ) -> tuple[TransformerArgs, Args]:
        """Blocks ``start:stop`` applied in order."""
        for block in list(self.velocity_model.transformer_blocks)[start:stop]:
            video, audio = block(video=video, audio=audio, perturbations=perturbations)
        return video, audio

    def finish(
        self, video: Modality, audio: Modality | None, v_out: TransformerArgs, a_out: Args
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        return denoised_outputs(self.velocity_model, video, audio, v_out, a_out)


__all__ = ["EagerBlocks", "args_tensors", "compact_timesteps", "denoised_outputs", "pick_args", "stack_args", "with_tensors"]
