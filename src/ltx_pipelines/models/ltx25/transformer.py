"""The LTX-2.5 (22B) transformer, built from ltx-core 1.0.0's model with what 2.5 changes.

The reference for 2.5 is LTX-2 release 1.2.0. Against ltx-core 1.0.0 its transformer differs in:

* ``ff_bias`` / ``audio_ff_bias`` (config): feed-forward linears without biases (2.5 turns the video ones off);
* ``use_keyframes_abs_pos_embedding``: a learned ``[1, inner_dim]`` vector added, right after the patchify
  projection, to the video tokens a per-token keyframes mask marks: the target's first latent frame (the causal
  VAE encodes it from one pixel frame) and generated keyframe slots, never appended conditioning tokens;
* the audio<->video cross-attention AdaLN: its scale/shift come from each modality's own per-token timesteps
  (1.0.0: the other modality's sigma); the gate still comes from the other modality's sigma;
* ``use_prompt_adaln_single`` false: the text cross-attention K/V are modulated by the block's static table only;
* ``rope_type`` defaults to split when the config omits it; video and audio head counts must be equal.

Everything but the biases lives in ``prepare`` (what :class:`Ltx25ArgsPreprocessor` hands the blocks), so ltx-core's
block forward -- and anything that restates it, like the fused block -- runs 2.5 unchanged: the block already reads
per-token AdaLN rows, and a zero prompt timestep leaves the static K/V table as the whole modulation.
LTX-2 and 2.3 checkpoints keep ltx-core 1.0.0's model exactly (:class:`TransformerConfigurator` dispatches).

Split transformer files name their tensors ``model.diffusion_model.<module>`` like the single-file checkpoints, so
ltx-core's ``LTXV_MODEL_COMFY_RENAMING_MAP`` loads them; the keyframe embedding is
``model.diffusion_model.keyframes_abs_pos_embedding``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from functools import cache
from pathlib import Path

import torch
from ltx_core.model.model_protocol import ModelConfigurator
from ltx_core.model.transformer import LTXModelConfigurator, Modality
from ltx_core.model.transformer.attention import AttentionFunction
from ltx_core.model.transformer.model import LTXModel, LTXModelType
from ltx_core.model.transformer.rope import LTXRopeType
from ltx_core.model.transformer.text_projection import create_caption_projection
from ltx_core.model.transformer.transformer_args import MultiModalTransformerArgsPreprocessor, TransformerArgs
from ltx_core.utils import check_config_value

from ltx_pipelines.models.versions import parse_version

KEYFRAMES_EMBEDDING = "keyframes_abs_pos_embedding"
#: Config values that only checkpoints of the 2.5 generation set (the defaults keep older models unchanged).
LTX25_CONFIG_MARKERS: dict[str, bool] = {
    "ff_bias": False,
    "audio_ff_bias": False,
    "use_keyframes_abs_pos_embedding": True,
    "use_prompt_adaln_single": False,
}
LTX25_SINCE_VERSION = (2, 5)
#: The transformer's fixed config values, its 22B sizes and 2.5 switches, as data: the golden and benchmark scripts that
#: run in the reference's environment (where this package cannot be imported) read the same file.
CONFIG_FILE = Path(__file__).with_name("transformer_config.json")


@cache
def required_config_values() -> dict[str, object]:
    """Values the reference's configurator insists on: a config with others describes a different architecture."""
    return json.loads(CONFIG_FILE.read_text())["fixed_values"]


# -- which generation a checkpoint is ---------------------------------------------------------------


def is_ltx_2_5_transformer(config: dict, model_version: str | None = None) -> bool:
    """Whether a checkpoint's transformer is the 2.5 generation, from its ``config`` (and ``model_version``).

    ``config`` is the header's decoded ``config`` (with its ``transformer`` section), what ltx-core 1.0.0's
    builders pass to ``from_config``. The version decides when given; otherwise any config value that only
    2.5-era checkpoints set does (ltx-core 1.0.0 would ignore it and build the wrong model).
    """
    if (parse_version(model_version or "") or (0, 0)) >= LTX25_SINCE_VERSION:
        return True
    transformer = config.get("transformer", {})
    return any(key in transformer and transformer[key] == value for key, value in LTX25_CONFIG_MARKERS.items())


# -- the keyframes mask -------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyframedModality(Modality):
    """ltx-core 1.0.0's ``Modality`` plus the per-token mask of tokens that get the keyframe embedding.

    ``keyframes_mask``: ``[B, T, 1]`` like the timesteps, non-zero on tokens whose latent encodes a single pixel
    frame in the generated stream (see :func:`first_frame_keyframes_mask`, :func:`extend_keyframes_mask`).
    """

    keyframes_mask: torch.Tensor | None = None


def with_keyframes_mask(modality: Modality, keyframes_mask: torch.Tensor | None) -> KeyframedModality:
    """The same modality carrying ``keyframes_mask``."""
    values = {f.name: getattr(modality, f.name) for f in fields(Modality)}
    return KeyframedModality(**values, keyframes_mask=keyframes_mask)


def first_frame_keyframes_mask(denoise_mask: torch.Tensor, tokens_per_frame: int) -> torch.Tensor:
    """The mask of a fresh video state: its first latent frame marked, every other token not.

    ``denoise_mask``: the patchified target's ``[B, T, 1]`` mask (for the layout only); ``tokens_per_frame``:
    tokens of one latent frame (height x width / patch area). Tokens run frame-major, so they are a prefix.
    The reference marks it in every video state, conditioned or not.
    """
    mask = torch.zeros_like(denoise_mask)
    mask[:, :tokens_per_frame] = 1.0
    return mask


def extend_keyframes_mask(mask: torch.Tensor, num_new_tokens: int, marked: bool) -> torch.Tensor:
    """The mask after ``num_new_tokens`` tokens are appended: marked only for generated keyframe slots.

    Given content (image or keyframe guidance, IC-LoRA references) is appended unmarked.
    """
    fill = torch.ones if marked else torch.zeros
    new = fill((mask.shape[0], num_new_tokens, mask.shape[2]), device=mask.device, dtype=mask.dtype)
    return torch.cat([mask, new], dim=1)


def mark_keyframes(x: torch.Tensor, keyframes_mask: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
    """Projected tokens ``x`` ``[B, T, D]`` plus ``embedding`` ``[1, D]`` where the mask is positive."""
    return x + (keyframes_mask > 0).to(dtype=x.dtype) * embedding.to(dtype=x.dtype)


# -- preparing the blocks' inputs -------------------------------------------------------------------


class Ltx25ArgsPreprocessor:
    """ltx-core 1.0.0's audio+video preprocessor, then the changes LTX-2.5 makes to what it prepares."""

    def __init__(
        self,
        inner: MultiModalTransformerArgsPreprocessor,
        keyframes_embedding: Callable[[], torch.Tensor | None] | None,
        zero_prompt_timestep: bool,
    ):
        self.inner = inner
        # Looked up on every call: loading with assign=True replaces the parameter object.
        self.keyframes_embedding = keyframes_embedding
        self.zero_prompt_timestep = zero_prompt_timestep

    def prepare(self, modality: Modality, cross_modality: Modality | None = None) -> TransformerArgs:
        args = self.inner.prepare(modality, cross_modality)
        changes: dict[str, torch.Tensor] = {}
        embedding = self.keyframes_embedding() if self.keyframes_embedding is not None else None
        if embedding is not None:
            changes["x"] = mark_keyframes(args.x, _keyframes_mask(modality), embedding)
        if self.zero_prompt_timestep:
            changes["prompt_timestep"] = args.x.new_zeros(args.x.shape[0], 1, 2 * args.x.shape[-1])
        if cross_modality is not None:
            changes["cross_scale_shift_timestep"] = self._own_cross_scale_shift(modality, args.x.shape[0])
        return replace(args, **changes)

    def _own_cross_scale_shift(self, modality: Modality, batch: int) -> torch.Tensor:
        """The audio<->video AdaLN scale/shift embedding of this modality's own per-token timesteps."""
        scaled = modality.timesteps * self.inner.simple_preprocessor.timestep_scale_multiplier
        values, _ = self.inner.cross_scale_shift_adaln(scaled.flatten(), hidden_dtype=modality.latent.dtype)
        return values.view(batch, -1, values.shape[-1])


def _keyframes_mask(modality: Modality) -> torch.Tensor:
    """The video modality's keyframes mask; a 2.5 model without one would silently lose its first-frame marker."""
    mask = getattr(modality, "keyframes_mask", None)
    if mask is None:
        raise ValueError(
            "This LTX-2.5 transformer adds its keyframe embedding to the first latent frame of every video: "
            "give the video Modality a keyframes_mask (KeyframedModality / with_keyframes_mask, "
            "first_frame_keyframes_mask)."
        )
    return mask


# -- the model --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ltx25Options:
    """The architecture switches LTX-2.5 adds to ltx-core 1.0.0's transformer."""

    ff_bias: bool = True
    audio_ff_bias: bool = True
    keyframes_embedding: bool = False
    prompt_adaln: bool = True

    @classmethod
    def from_config(cls, transformer: dict) -> Ltx25Options:
        return cls(
            ff_bias=transformer.get("ff_bias", True),
            audio_ff_bias=transformer.get("audio_ff_bias", True),
            keyframes_embedding=transformer.get("use_keyframes_abs_pos_embedding", False),
            prompt_adaln=transformer.get("use_prompt_adaln_single", True),
        )


def _drop_feed_forward_bias(feed_forward: torch.nn.Module) -> None:
    """ltx-core's FeedForward (Linear, GELU, Linear) with both linears bias-free."""
    for linear in (feed_forward.net[0].proj, feed_forward.net[2]):
        linear.register_parameter("bias", None)


class LTX25Model(LTXModel):
    """ltx-core 1.0.0's audio+video ``LTXModel`` with LTX-2.5's switches; forward, blocks and outputs are its own."""

    def __init__(self, *, options: Ltx25Options, **kwargs: object):
        self.options = options  # read by the _init_* hooks LTXModel.__init__ calls
        super().__init__(model_type=LTXModelType.AudioVideo, **kwargs)

    def _init_video(self, *args: object, **kwargs: object) -> None:
        super()._init_video(*args, **kwargs)
        if not self.options.prompt_adaln:
            self.prompt_adaln_single = None
        embedding = torch.nn.Parameter(torch.zeros(1, self.inner_dim)) if self.options.keyframes_embedding else None
        self.register_parameter(KEYFRAMES_EMBEDDING, embedding)

    def _init_audio(self, *args: object, **kwargs: object) -> None:
        super()._init_audio(*args, **kwargs)
        if not self.options.prompt_adaln:
            self.audio_prompt_adaln_single = None

    def _init_preprocessors(self, cross_pe_max_pos: int | None = None) -> None:
        super()._init_preprocessors(cross_pe_max_pos)
        zero_prompt = self.cross_attention_adaln and not self.options.prompt_adaln
        self.video_args_preprocessor = Ltx25ArgsPreprocessor(
            self.video_args_preprocessor, self.keyframes_embedding, zero_prompt
        )
        self.audio_args_preprocessor = Ltx25ArgsPreprocessor(self.audio_args_preprocessor, None, zero_prompt)

    def _init_transformer_blocks(self, **kwargs: object) -> None:
        super()._init_transformer_blocks(**kwargs)
        for block in self.transformer_blocks:
            if not self.options.ff_bias:
                _drop_feed_forward_bias(block.ff)
            if not self.options.audio_ff_bias:
                _drop_feed_forward_bias(block.audio_ff)

    def keyframes_embedding(self) -> torch.Tensor | None:
        """The learned keyframe embedding ``[1, inner_dim]``, or None when the config has none."""
        return getattr(self, KEYFRAMES_EMBEDDING, None)


# -- configurators ----------------------------------------------------------------------------------


def check_transformer_config(transformer: dict) -> None:
    """Raise on a config the 2.5 reference would refuse (another architecture, or unequal head counts)."""
    for key, expected in required_config_values().items():
        check_config_value(transformer, key, expected)
    check_config_value(transformer, "num_attention_heads", transformer.get("audio_num_attention_heads", float("nan")))


def _caption_projections(transformer: dict) -> tuple[torch.nn.Module | None, torch.nn.Module | None]:
    """Caption projections inside the transformer: none when the text encoder projects (2.3 and 2.5)."""
    if transformer.get("caption_proj_before_connector", False):
        return None, None
    return create_caption_projection(transformer), create_caption_projection(transformer, audio=True)


def model_arguments(transformer: dict) -> dict[str, object]:
    """``LTXModel`` arguments from a config's ``transformer`` section, with the 2.5 reference's defaults."""
    get = transformer.get
    caption_projection, audio_caption_projection = _caption_projections(transformer)
    return {
        "num_attention_heads": get("num_attention_heads", 32),
        "attention_head_dim": get("attention_head_dim", 128),
        "in_channels": get("in_channels", 128),
        "out_channels": get("out_channels", 128),
        "num_layers": get("num_layers", 48),
        "cross_attention_dim": get("cross_attention_dim", 4096),
        "norm_eps": get("norm_eps", 1e-06),
        "attention_type": AttentionFunction(get("attention_type", "default")),
        "positional_embedding_theta": get("positional_embedding_theta", 10000.0),
        "positional_embedding_max_pos": get("positional_embedding_max_pos", [20, 2048, 2048]),
        "timestep_scale_multiplier": get("timestep_scale_multiplier", 1000),
        "use_middle_indices_grid": get("use_middle_indices_grid", True),
        "audio_num_attention_heads": get("audio_num_attention_heads", 32),
        "audio_attention_head_dim": get("audio_attention_head_dim", 64),
        "audio_in_channels": get("audio_in_channels", 128),
        "audio_out_channels": get("audio_out_channels", 128),
        "audio_cross_attention_dim": get("audio_cross_attention_dim", 2048),
        "audio_positional_embedding_max_pos": get("audio_positional_embedding_max_pos", [20]),
        "av_ca_timestep_scale_multiplier": get("av_ca_timestep_scale_multiplier", 1),
        "rope_type": LTXRopeType(get("rope_type", "split")),  # ltx-core 1.0.0 defaults to interleaved
        "double_precision_rope": get("frequencies_precision", False) == "float64",
        "apply_gated_attention": get("apply_gated_attention", False),
        "caption_projection": caption_projection,
        "audio_caption_projection": audio_caption_projection,
        "cross_attention_adaln": get("cross_attention_adaln", False),
    }


class LTX25ModelConfigurator(ModelConfigurator[LTX25Model]):
    """Builds :class:`LTX25Model` from a checkpoint config (ltx-core 1.0.0's ``from_config`` protocol)."""

    @classmethod
    def from_config(cls, config: dict) -> LTX25Model:
        transformer = config.get("transformer", {})
        check_transformer_config(transformer)
        return LTX25Model(options=Ltx25Options.from_config(transformer), **model_arguments(transformer))


def configurator_for(config: dict, model_version: str | None = None) -> type[ModelConfigurator[LTXModel]]:
    """The configurator for a checkpoint: 2.5 -> :class:`LTX25ModelConfigurator`, else ltx-core's own."""
    return LTX25ModelConfigurator if is_ltx_2_5_transformer(config, model_version) else LTXModelConfigurator


class TransformerConfigurator(ModelConfigurator[LTXModel]):
    """Any LTX audio+video transformer from its config alone; pass it to ``SingleGPUModelBuilder``.

    A loader that can read the header's ``model_version`` should prefer :func:`configurator_for`, which also
    recognises a 2.5 checkpoint whose config happens to keep every default.
    """

    @classmethod
    def from_config(cls, config: dict) -> LTXModel:
        return configurator_for(config).from_config(config)


__all__ = [
    "KEYFRAMES_EMBEDDING",
    "LTX25_CONFIG_MARKERS",
    "KeyframedModality",
    "LTX25Model",
    "LTX25ModelConfigurator",
    "Ltx25ArgsPreprocessor",
    "Ltx25Options",
    "TransformerConfigurator",
    "check_transformer_config",
    "configurator_for",
    "extend_keyframes_mask",
    "first_frame_keyframes_mask",
    "is_ltx_2_5_transformer",
    "mark_keyframes",
    "model_arguments",
    "required_config_values",
    "with_keyframes_mask",
]
