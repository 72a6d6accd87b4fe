"""The LTX-2.5 duration head: how long a prompt's shot should be, read off the prompt's connector outputs.

LTX-2.5 ships a small regressor (``model_patches/ltx-2.5-duration-head-bf16.safetensors``, a few MB) that lets a
pipeline pick the frame count itself. It sees exactly what the transformer gets as its text context -- the
positive prompt's video and audio connector outputs -- so it costs one tiny forward pass after prompt encoding.

Math (LTX-2 release 1.2.0 is the reference): each modality is projected to a shared width ``H`` and tagged with a
learned modality vector; the two token sets are concatenated and pooled by ``Q`` learned queries through one
``torch.nn.MultiheadAttention`` (packed q/k/v, batch first); an MLP with tanh-GELU maps the flattened pool to
log-seconds, and ``exp`` gives seconds. No attention mask: the connector has already replaced padding with its
registers, so every token is valid. :func:`frames_for_seconds` turns seconds into a frame count on the VAE's
``8k + 1`` grid, inside a seconds range.

File layout: tensors ``duration_head.<module>`` (the prefix is stripped on load, :data:`DURATION_HEAD_KEY_OPS`);
the widths come from the header's ``config``: ``transformer.cross_attention_dim`` (video, default 4096),
``transformer.audio_cross_attention_dim`` (audio, 2048) and the optional ``duration_head`` section
(``pooler_hidden_dim`` 256, ``num_queries`` 1, ``num_pooler_heads`` 4, ``mlp_hidden`` 256).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from ltx_core.loader import SDOps, SingleGPUModelBuilder
from ltx_core.model.model_protocol import ModelConfigurator
from ltx_core.types import VIDEO_SCALE_FACTORS
from torch import nn

from ltx_pipelines.models.checkpoints import SafetensorsHeader, read_header
from ltx_pipelines.utils.errors import InputError

logger = logging.getLogger(__name__)

DURATION_HEAD_PREFIX = "duration_head."
#: Keeps only the head's tensors of a file (its own, or a checkpoint that bundles it) and drops their prefix.
DURATION_HEAD_KEY_OPS = (
    SDOps("LTX25_DURATION_HEAD_KEYS")
    .with_matching(prefix=DURATION_HEAD_PREFIX)
    .with_replacement(DURATION_HEAD_PREFIX, "")
)
DEFAULT_MIN_SECONDS = 1.0
DEFAULT_MAX_SECONDS = 20.0
_WHAT = "duration head (--duration-head-path)"


@dataclass(frozen=True)
class DurationHeadConfig:
    """The head's widths; the text widths must equal the transformer's connector widths it reads."""

    video_dim: int = 4096
    audio_dim: int = 2048
    hidden_dim: int = 256
    num_queries: int = 1
    num_heads: int = 4
    mlp_hidden: int = 256

    @classmethod
    def from_config(cls, config: dict) -> DurationHeadConfig:
        """From a file's ``config`` header: connector widths in ``transformer``, the rest in ``duration_head``."""
        text = config.get("transformer") or {}
        own = config.get("duration_head") or {}
        return cls(
            video_dim=int(text.get("cross_attention_dim", cls.video_dim)),
            audio_dim=int(text.get("audio_cross_attention_dim", cls.audio_dim)),
            hidden_dim=int(own.get("pooler_hidden_dim", cls.hidden_dim)),
            num_queries=int(own.get("num_queries", cls.num_queries)),
            num_heads=int(own.get("num_pooler_heads", cls.num_heads)),
            mlp_hidden=int(own.get("mlp_hidden", cls.mlp_hidden)),
        )


class QueryPooler(nn.Module):
    """Learned queries cross-attending the prompt tokens: a fixed-size summary of a prompt of any length."""

    def __init__(self, hidden_dim: int, num_queries: int, num_heads: int) -> None:
        super().__init__()
        self.query_tokens = nn.Parameter(torch.zeros(num_queries, hidden_dim))
        # torch's own module, so the file's packed in_proj / out_proj tensors load as they are.
        self.cross_attn = nn.MultiheadAttention(hidden_dim, num_heads, batch_first=True)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        queries = self.query_tokens.unsqueeze(0).expand(tokens.shape[0], -1, -1)
        pooled, _ = self.cross_attn(queries, tokens, tokens, need_weights=False)
        return pooled


class DurationHead(nn.Module):
    """Prompt connector outputs -> predicted shot length in seconds (module names follow the file's keys)."""

    def __init__(self, config: DurationHeadConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or DurationHeadConfig()
        hidden = config.hidden_dim
        self.video_input_proj = nn.Linear(config.video_dim, hidden)
        self.video_modality_emb = nn.Parameter(torch.zeros(hidden))
        self.audio_input_proj = nn.Linear(config.audio_dim, hidden)
        self.audio_modality_emb = nn.Parameter(torch.zeros(hidden))
        self.attention_pooler = QueryPooler(hidden, config.num_queries, config.num_heads)
        self.mlp_hidden = nn.Linear(hidden * config.num_queries, config.mlp_hidden)
        self.mlp_out = nn.Linear(config.mlp_hidden, 1)

    def forward(self, video_context: torch.Tensor | None, audio_context: torch.Tensor | None) -> torch.Tensor:
        """Seconds per sample, shape ``[B]``, from ``[B, T_v, video_dim]`` and/or ``[B, T_a, audio_dim]`` contexts."""
        streams = []
        if video_context is not None:
            streams.append(self.video_input_proj(video_context) + self.video_modality_emb)
        if audio_context is not None:
            streams.append(self.audio_input_proj(audio_context) + self.audio_modality_emb)
        if not streams:
            raise ValueError("The duration head needs the video or the audio prompt context (got neither).")
        pooled = self.attention_pooler(torch.cat(streams, dim=1))
        hidden = nn.functional.gelu(self.mlp_hidden(pooled.flatten(1)), approximate="tanh")
        return self.mlp_out(hidden).squeeze(-1).exp()  # the head regresses log-seconds

    @torch.inference_mode()
    def predict_seconds(self, video_context: torch.Tensor | None, audio_context: torch.Tensor | None) -> float:
        """The predicted length of one prompt, in seconds (contexts are moved to the head's device and dtype)."""
        weight = self.mlp_out.weight
        contexts = [None if c is None else c.to(device=weight.device, dtype=weight.dtype)
                    for c in (video_context, audio_context)]  # fmt: skip
        seconds = self(*contexts)
        if seconds.shape != (1,):
            raise ValueError(f"The duration head predicts one prompt at a time; got a batch of {seconds.shape[0]}.")
        return float(seconds.item())

    def predict_frames(
        self,
        video_context: torch.Tensor | None,
        audio_context: torch.Tensor | None,
        frame_rate: float,
        min_seconds: float = DEFAULT_MIN_SECONDS,
        max_seconds: float = DEFAULT_MAX_SECONDS,
    ) -> int:
        """The frame count for one prompt: :meth:`predict_seconds` through :func:`frames_for_seconds`."""
        seconds = self.predict_seconds(video_context, audio_context)
        frames = frames_for_seconds(seconds, frame_rate, min_seconds, max_seconds)
        if min_seconds <= seconds <= max_seconds:
            logger.info("Predicted duration %.2f s: %d frames at %.2f fps.", seconds, frames, frame_rate)
        return frames


class DurationHeadConfigurator(ModelConfigurator[DurationHead]):
    """ltx-core's builder hook: the head sized from the file's ``config`` header."""

    @classmethod
    def from_config(cls, config: dict) -> DurationHead:
        return DurationHead(DurationHeadConfig.from_config(config))


def has_duration_head(path: str | Path) -> bool:
    """Whether a file holds duration-head tensors (2.5 files do; LTX-2 / 2.3 checkpoints never)."""
    return any(name.startswith(DURATION_HEAD_PREFIX) for name in read_header(path).tensors)


def check_duration_head_file(path: str | Path, what: str = _WHAT) -> DurationHeadConfig:
    """The head's config, after checking from the header alone that the file holds every tensor at its shape.

    ltx-core's builder loads non-strictly and leaves missing tensors on the meta device, so a wrong file would only
    fail at the first forward; this names the file and the problem before anything loads.
    """
    header = read_header(path, what)
    found = {n.removeprefix(DURATION_HEAD_PREFIX): s for n, (_, s) in header.tensors.items()
             if n.startswith(DURATION_HEAD_PREFIX)}  # fmt: skip
    if not found:
        raise InputError(
            f"The {what} {header.path} holds no duration-head weights ('{DURATION_HEAD_PREFIX}*'). "
            "Pass the LTX-2.5 duration head file (model_patches/ltx-2.5-duration-head-*.safetensors)."
        )
    config = _config_of(header, what)
    with torch.device("meta"):
        expected = {name: tuple(t.shape) for name, t in DurationHead(config).state_dict().items()}
    missing = sorted(set(expected) - set(found))
    if missing:
        raise InputError(f"The {what} {header.path} lacks duration-head tensors: {', '.join(missing)}.")
    for name, shape in expected.items():
        if tuple(found[name]) != shape:
            raise InputError(
                f"The {what} {header.path} does not match its config: '{DURATION_HEAD_PREFIX}{name}' has shape "
                f"{list(found[name])}, the config {config} implies {list(shape)}."
            )
    return config


def _config_of(header: SafetensorsHeader, what: str) -> DurationHeadConfig:
    try:
        config = DurationHeadConfig.from_config(header.config())
    except (TypeError, ValueError) as e:
        raise InputError(f"The {what} {header.path} has an unreadable duration-head config ({e}).") from e
    if config.hidden_dim % config.num_heads:
        raise InputError(
            f"The {what} {header.path} has pooler_hidden_dim {config.hidden_dim}, "
            f"not divisible by num_pooler_heads {config.num_heads}."
        )
    return config


def load_duration_head(
    path: str | Path,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    what: str = _WHAT,
) -> DurationHead:
    """The head of a file (its own, or a checkpoint bundling ``duration_head.*``), checked first, in eval mode."""
    check_duration_head_file(path, what)
    builder = SingleGPUModelBuilder(
        model_class_configurator=DurationHeadConfigurator, model_path=str(path), model_sd_ops=DURATION_HEAD_KEY_OPS
    )
    return builder.build(device=torch.device(device), dtype=dtype).eval()


def frames_for_seconds(
    seconds: float,
    frame_rate: float,
    min_seconds: float = DEFAULT_MIN_SECONDS,
    max_seconds: float = DEFAULT_MAX_SECONDS,
) -> int:
    """A frame count for ``seconds`` at ``frame_rate``: kept within the range, on the VAE's ``8k + 1`` grid.

    The range keeps a stray prediction from asking for a degenerate or out-of-memory generation. Rule (as the
    reference): round to frames (Python ``round``, ties to even), clamp to ``[round(min*fps), round(max*fps)]``,
    snap down to ``8k + 1``; if that falls under the minimum, snap up instead, but never above the maximum (so a
    range narrower than one grid step can give an off-grid count, as the reference does).
    """
    if not math.isfinite(seconds):
        raise ValueError(f"The predicted duration is not a finite number of seconds ({seconds}).")
    stride = VIDEO_SCALE_FACTORS.time
    min_frames, max_frames = round(min_seconds * frame_rate), round(max_seconds * frame_rate)
    frames = max(min_frames, min(round(seconds * frame_rate), max_frames))
    if frames < 1:
        raise ValueError(
            f"{seconds:g} s at {frame_rate:g} fps within [{min_seconds:g}, {max_seconds:g}] s gives {frames} frames; "
            "raise the minimum duration."
        )
    snapped = (frames - 1) // stride * stride + 1
    if snapped < min_frames:
        snapped = min(-(-(min_frames - 1) // stride) * stride + 1, max_frames)
    if not min_seconds <= seconds <= max_seconds:
        logger.warning(
            "Predicted duration %.2f s is outside [%.2f, %.2f] s: using %d frames (%.2f s at %.2f fps).",
            seconds, min_seconds, max_seconds, snapped, snapped / frame_rate, frame_rate,
        )  # fmt: skip
    return snapped
