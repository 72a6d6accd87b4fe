"""Sequence parallelism (Ulysses): one pass's tokens sharded across a group of ranks.

Between attentions, everything a transformer block does is per token (norms, AdaLN modulation,
feed-forward, gates), so each rank runs the blocks on its share of the tokens. Attention needs all
tokens: around each self-attention and audio<->video cross-attention, an ``all_to_all`` turns the
token shards of q, k, v (all heads) into head shards (all tokens); attention runs on H/N heads
over the whole sequence; a second ``all_to_all`` turns its output back into token shards. The
text cross-attention (``attn2``, ``audio_attn2``) needs no communication: its keys and values are
the prompt, the same on every rank.

Token counts that do not divide N: **padded**, not uneven. Each rank holds ceil(T/N) tokens, the
last ranks hold the padding, and the collectives keep equal chunks. Attention drops the padding
after the first ``all_to_all`` and so sees exactly the T real tokens - no mask, the same attention
one rank computes. Padding rows pass through the per-token layers and are dropped when the result
is gathered. Any number of tokens works, even fewer than ranks.

Arithmetic: attention per head is the same computation on H/N heads; the per-token layers and the
text cross-attention run on fewer rows. Whether that changes rounding depends on the kernels. On the
CPU only the text cross-attention does (scaled-dot-product attention rounds 9 queries differently
from 18, by ~6e-8): one process running it on the same query chunks gives N ranks' result bit for bit,
and plain one process differs by ~1e-6 in x0, which does not grow over the steps
(``tests/parallel/test_ulysses.py``, ``tests/parallel/rank_drift.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from ltx_core.guidance.perturbations import BatchedPerturbationConfig
from ltx_core.model.transformer import Modality
from ltx_core.model.transformer.transformer_args import TransformerArgs

from ltx_pipelines.models.transformer_blocks import Args, EagerBlocks
from ltx_pipelines.parallel.collectives import all_gather, all_to_all
from ltx_pipelines.parallel.process_group import ParallelContext

logger = logging.getLogger(__name__)

#: Attention modules of a block that mix tokens of the sharded sequences: (query side, key side).
SHARDED_ATTENTIONS = {
    "attn1": ("video", "video"),
    "audio_attn1": ("audio", "audio"),
    "audio_to_video_attn": ("video", "audio"),
    "video_to_audio_attn": ("audio", "video"),
}

#: TransformerArgs fields that may hold one row per token (dim 1), else one per sample.
PER_TOKEN_FIELDS = ("timesteps", "embedded_timestep", "cross_scale_shift_timestep", "cross_gate_timestep")


@dataclass(frozen=True)
class TokenShards:
    """How ``total`` tokens are split into ``parts`` equal, end-padded chunks; this rank holds ``index``."""

    total: int
    parts: int
    index: int

    @property
    def chunk(self) -> int:
        return -(-self.total // self.parts)

    @property
    def padded(self) -> int:
        return self.chunk * self.parts

    def take(self, tensor: torch.Tensor, dim: int) -> torch.Tensor:
        """This rank's chunk of ``tensor`` along ``dim`` (zero rows past the end)."""
        if tensor.shape[dim] != self.total:
            raise ValueError(f"expected {self.total} tokens along dim {dim}, got shape {tuple(tensor.shape)}")
        start = min(self.index * self.chunk, self.total)
        stop = min(start + self.chunk, self.total)
        local = tensor.narrow(dim, start, stop - start)
        missing = self.chunk - (stop - start)
        if missing:
            shape = list(tensor.shape)
            shape[dim] = missing
            local = torch.cat([local, tensor.new_zeros(shape)], dim=dim)
        return local

    def gather(self, local: torch.Tensor, group: object | None) -> torch.Tensor:
        """Every rank's chunk (dim 1) back in order, padding dropped."""
        parts = all_gather(local, group, self.parts)  # [N, B, chunk, ...]
        whole = parts.transpose(0, 1).reshape(local.shape[0], self.padded, *local.shape[2:])
        return whole[:, : self.total].contiguous()


def _per_token(tensor: torch.Tensor | None, total: int) -> bool:
    return tensor is not None and tensor.ndim >= 2 and total > 1 and tensor.shape[1] == total


def _token_dim(tensor: torch.Tensor) -> int:
    """RoPE tables: (B, H, T, D/2) for split rope, (B, T, D) for interleaved."""
    return 2 if tensor.ndim == 4 else 1


def shard_args(args: Args, shards: TokenShards | None) -> Args:
    """This rank's tokens of a prepared transformer state (prompt, masks and per-sample values stay whole)."""
    if args is None or shards is None:
        return args
    changes: dict[str, object] = {"x": shards.take(args.x, 1)}
    for name in PER_TOKEN_FIELDS:
        value = getattr(args, name)
        if _per_token(value, shards.total):
            changes[name] = shards.take(value, 1)
    for name in ("positional_embeddings", "cross_positional_embeddings"):
        value = getattr(args, name)
        if value is not None:
            changes[name] = tuple(shards.take(t, _token_dim(t)) for t in value)
    return replace(args, **changes)


def shard_modality(modality: Modality | None, shards: TokenShards | None) -> Modality | None:
    """The latent and timesteps of this rank's tokens: what the output projection needs."""
    if modality is None or shards is None:
        return modality
    timesteps = modality.timesteps
    if _per_token(timesteps, shards.total):
        timesteps = shards.take(timesteps, 1)
    return replace(modality, latent=shards.take(modality.latent, 1), timesteps=timesteps)


class ShardedAttention:
    """An ``attention_function`` that runs on head shards of the whole sequence, between two all_to_alls."""

    def __init__(self, attention: object, queries: TokenShards, keys: TokenShards, group: object | None):
        self.attention = attention
        self.queries = queries
        self.keys = keys
        self.group = group

    def __call__(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        parts = self.queries.parts
        if heads % parts:
            raise RuntimeError(f"{heads} attention heads cannot be split across {parts} ranks")
        if self.queries == self.keys:
            q, k, v = self._to_heads(torch.stack([q, k, v]), self.queries)
        else:
            (q,) = self._to_heads(q[None], self.queries)
            k, v = self._to_heads(torch.stack([k, v]), self.keys)
        out = self.attention(q, k, v, heads // parts, mask)
        return self._to_tokens(out, self.queries)

    def _to_heads(self, x: torch.Tensor, shards: TokenShards) -> torch.Tensor:
        """[S, B, chunk, H*D] token shards -> [S, B, T, H/N*D] head shards of all (real) tokens."""
        stack, batch, chunk, width = x.shape
        parts = shards.parts
        send = x.view(stack, batch, chunk, parts, width // parts).permute(3, 0, 1, 2, 4).contiguous()
        received = all_to_all(torch.empty_like(send), send, self.group)  # [N (token chunk), S, B, chunk, w]
        whole = received.permute(1, 2, 0, 3, 4).reshape(stack, batch, parts * chunk, width // parts)
        return whole if shards.padded == shards.total else whole[:, :, : shards.total].contiguous()

    def _to_tokens(self, out: torch.Tensor, shards: TokenShards) -> torch.Tensor:
        """[B, T, H/N*D] head shard -> [B, chunk, H*D] token shard with every head."""
        batch, total, width = out.shape
        parts, chunk = shards.parts, shards.chunk
        if shards.padded > total:
            out = F.pad(out, (0, 0, 0, shards.padded - total))
        send = out.view(batch, parts, chunk, width).transpose(0, 1).contiguous()
        received = all_to_all(torch.empty_like(send), send, self.group)  # [N (head group), B, chunk, w]
        return received.permute(1, 2, 0, 3).reshape(batch, chunk, parts * width)


class UlyssesBlocks:
    """A block engine that shards the tokens of ``inner`` across ``ranks`` (see the module doc).

    ``inner`` is any engine of the ``transformer_blocks`` interface that runs the transformer's own
    block modules (eager, weights streamed); its ``velocity_model`` gives the attention modules.
    """

    def __init__(self, inner: EagerBlocks, ctx: ParallelContext, ranks: tuple[int, ...]):
        self.inner = inner
        self.ranks = ranks
        self.group = ctx.subgroup(ranks)
        self.index = ranks.index(ctx.rank)
        self.video: TokenShards | None = None
        self.audio: TokenShards | None = None
        self._logged: set[tuple[int, int | None]] = set()

    @property
    def num_blocks(self) -> int:
        return self.inner.num_blocks

    @property
    def velocity_model(self) -> torch.nn.Module:
        return self.inner.velocity_model

    def _shards(self, modality: Modality | None) -> TokenShards | None:
        if modality is None:
            return None
        return TokenShards(modality.latent.shape[1], len(self.ranks), self.index)

    def prepare(self, video: Modality, audio: Modality | None) -> tuple[TransformerArgs, Args]:
        """The inner engine's prepared state, cut to this rank's tokens (every pass of a step has the same sizes)."""
        v_args, a_args = self.inner.prepare(video, audio)
        self.video, self.audio = self._shards(video), self._shards(audio)
        self._announce()
        return shard_args(v_args, self.video), shard_args(a_args, self.audio)

    def blocks(
        self,
        video: TransformerArgs,
        audio: Args,
        perturbations: BatchedPerturbationConfig,
        start: int = 0,
        stop: int | None = None,
    ) -> tuple[TransformerArgs, Args]:
        """The inner engine's blocks, with the token-mixing attentions sharded by heads."""
        if self.video is None or video.x.shape[1] != self.video.chunk:
            raise RuntimeError("UlyssesBlocks.blocks: the state was not prepared by this engine for these sizes")
        with self._sharded_attention(start, stop):
            return self.inner.blocks(video, audio, perturbations, start, stop)

    def finish(
        self, video: Modality, audio: Modality | None, v_out: TransformerArgs, a_out: Args
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Output projection on this rank's tokens, then every rank's tokens gathered (whole result on all)."""
        video_x0, audio_x0 = self.inner.finish(
            shard_modality(video, self.video), shard_modality(audio, self.audio), v_out, a_out
        )
        video_x0 = self.video.gather(video_x0, self.group)
        audio_x0 = self.audio.gather(audio_x0, self.group) if audio_x0 is not None else None
        return video_x0, audio_x0

    @contextmanager
    def _sharded_attention(self, start: int, stop: int | None) -> Iterator[None]:
        """Swap the token-mixing attentions' ``attention_function`` for the sharded one, and back.

        A scoped run-time swap on our own model instance (ltx-core's Attention has no hook for it);
        restored in ``finally`` even when a block fails.
        """
        shards = {"video": self.video, "audio": self.audio}
        saved: list[tuple[torch.nn.Module, object]] = []
        try:
            for block in list(self.velocity_model.transformer_blocks)[start:stop]:
                for name, (query_side, key_side) in SHARDED_ATTENTIONS.items():
                    module = getattr(block, name, None)
                    if module is None or shards[query_side] is None or shards[key_side] is None:
                        continue
                    saved.append((module, module.attention_function))
                    module.attention_function = ShardedAttention(
                        module.attention_function, shards[query_side], shards[key_side], self.group
                    )
            yield
        finally:
            for module, original in reversed(saved):
                module.attention_function = original

    def _announce(self) -> None:
        sizes = (self.video.total, self.audio.total if self.audio else None)
        if sizes in self._logged:
            return
        self._logged.add(sizes)
        if self.index == 0:
            parts = [f"{self.video.chunk} of {self.video.total} video tokens"]
            if self.audio is not None:
                parts.append(f"{self.audio.chunk} of {self.audio.total} audio tokens")
            who = f"ranks {self.ranks[0]}-{self.ranks[-1]}"
            logger.info("Ulysses over %s: each rank computes %s (end-padded to equal shares)", who, " and ".join(parts))


__all__ = ["ShardedAttention", "TokenShards", "UlyssesBlocks", "shard_args", "shard_modality"]
