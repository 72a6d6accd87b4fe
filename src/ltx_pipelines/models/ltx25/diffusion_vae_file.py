"""Reading LTX-2.5's diffusion-decoder VAE file (``CausalDiffusionVAE``) into our modules.

The published file differs from the modules in three ways that are settled while loading, so nothing of it
costs time or memory at decode: each attention's fused ``qkv`` projection is split into Q, K and V (separate
tensors can each be freed as soon as used); the static per-channel gates beside each stage-5 block
(``gate_msa``, ``gate_mlp``, ``gate_ctx``) are multiplied into the linear layer they scale (attention output,
MLP down projection, context projection; in float32, rounded to the file's dtype as the reference does); and
the ``coarse_*`` tensors (a preview head the decode never runs) are dropped. The same file's encoder is the
convolutional one, with its settings nested under ``config.vae.encoder``: :func:`flat_encoder_config` gives
ltx-core's encoder configurator the flat form it reads.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import torch
from safetensors import safe_open

from ltx_pipelines.models.ltx25.diffusion_decoder import DiffusionDecoderConfig, DiffusionVideoDecoder

logger = logging.getLogger(__name__)

CONV_DECODER_CLASS = "CausalVideoAutoencoder"
_DECODER_PREFIXES = ("vae.decoder.", "decoder.")
_STATISTICS = ("std-of-means", "mean-of-means")
#: gate suffix -> the parameters (suffixes, after the block's name) it scales.
GATE_TARGETS = {
    "gate_msa": ("attn.proj.weight", "attn.proj.bias"),
    "gate_mlp": ("mlp.w_down.weight", "mlp.w_down.bias"),
    "gate_ctx": ("context_proj.weight", "context_proj.bias"),
}
_RENAMES = (
    ("t_embedder.mlp.0.", "t_embedder.linear_1."),
    ("t_embedder.mlp.2.", "t_embedder.linear_2."),
    ("t_embedder.timestep_embedder.linear_1.", "t_embedder.linear_1."),
    ("t_embedder.timestep_embedder.linear_2.", "t_embedder.linear_2."),
    (".attn.qkv.to_", ".attn.to_"),  # an already split file (the reference's module names)
)


def is_diffusion_vae(vae_config: dict) -> bool:
    """The file's ``config.vae`` describes a diffusion decoder (the reference's rule: any other class name)."""
    return str(vae_config.get("_class_name", CONV_DECODER_CLASS)) != CONV_DECODER_CLASS


def decoder_key(file_key: str) -> str | None:
    """Our module's name for a file tensor of the decoder (None: not the decoder's, or not used)."""
    if file_key.startswith(("vae.per_channel_statistics.", "per_channel_statistics.")):
        leaf = file_key.rsplit(".", 1)[1]
        return f"per_channel_statistics.{leaf}" if leaf in _STATISTICS else None
    for prefix in _DECODER_PREFIXES:
        if file_key.startswith(prefix):
            key = file_key.removeprefix(prefix)
            break
    else:
        return None
    if key.startswith("coarse_"):
        return None
    for old, new in _RENAMES:
        key = key.replace(old, new)
    return key


def decoder_state_dict(tensors: Iterable[tuple[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """File tensors -> our decoder's state dict: QKV split, gates folded, ``coarse_*`` and encoder dropped."""
    state: dict[str, torch.Tensor] = {}
    gates: dict[str, torch.Tensor] = {}
    for file_key, value in tensors:
        key = decoder_key(file_key)
        if key is None:
            continue
        block, _, leaf = key.rpartition(".")
        if leaf in GATE_TARGETS:
            gates[key] = value
        elif key.endswith((".attn.qkv.weight", ".attn.qkv.bias")):
            state.update(split_qkv(key, value))
        else:
            state[key] = value
    for gate_key, gate in gates.items():
        block, _, leaf = gate_key.rpartition(".")
        for target in GATE_TARGETS[leaf]:
            name = f"{block}.{target}"
            if name in state:
                state[name] = fold_gate(state[name], gate)
            elif target.endswith("weight"):
                raise ValueError(f"diffusion VAE file: gate {gate_key} has no {name} to fold into")
    return state


def split_qkv(key: str, value: torch.Tensor) -> dict[str, torch.Tensor]:
    """``...attn.qkv.{weight,bias}`` (Q, K, V stacked on the first axis) -> ``...attn.to_{q,k,v}.*``."""
    if value.shape[0] % 3:
        raise ValueError(f"diffusion VAE file: fused {key} has {value.shape[0]} rows, not a multiple of 3")
    base, leaf = key.removesuffix(".weight").removesuffix(".bias").removesuffix(".qkv"), key.rsplit(".", 1)[1]
    q, k, v = value.chunk(3, dim=0)
    return {f"{base}.to_{name}.{leaf}": part.clone() for name, part in zip("qkv", (q, k, v), strict=True)}


def fold_gate(value: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """``diag(gate) @ W`` (or ``gate * b``) in float32, back in the file's dtype."""
    g = gate.float()
    folded = g[:, None] * value.float() if value.ndim == 2 else g * value.float()
    return folded.to(value.dtype)


def read_vae_config(path: str | Path) -> dict:
    """``config.vae`` of a safetensors file (empty when absent)."""
    import json

    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata() or {}
    try:
        config = json.loads(metadata.get("config", "{}"))
    except json.JSONDecodeError:
        return {}
    return config.get("vae", {}) if isinstance(config, dict) else {}


def load_diffusion_decoder(path: str | Path, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                           config: DiffusionDecoderConfig | None = None,
                           stage5_w_edges: str = "replicate") -> DiffusionVideoDecoder:  # fmt: skip
    """Build the decoder from the file's config and load its weights (folded as above) on ``device`` in ``dtype``."""
    config = config or DiffusionDecoderConfig.from_vae_config(read_vae_config(path))
    with torch.device("meta"):
        decoder = DiffusionVideoDecoder(config, stage5_w_edges)
    with safe_open(str(path), framework="pt", device="cpu") as f:
        state = decoder_state_dict((key, f.get_tensor(key)) for key in f.keys() if decoder_key(key) is not None)  # noqa: SIM118
    expected = decoder.state_dict()
    missing = sorted(set(expected) - set(state))
    if missing:
        raise ValueError(f"{path}: the diffusion decoder's file lacks {len(missing)} tensors, e.g. {missing[:4]}")
    unexpected = sorted(set(state) - set(expected))
    if unexpected:
        logger.warning("%s: %d decoder tensors not used (e.g. %s)", Path(path).name, len(unexpected), unexpected[:4])
    for name, value in state.items():
        if name in expected and tuple(value.shape) != tuple(expected[name].shape):
            raise ValueError(f"{path}: {name} is {tuple(value.shape)}, the config says {tuple(expected[name].shape)}")
    state = {name: value.to(device=device, dtype=dtype) for name, value in state.items() if name in expected}
    decoder.load_state_dict(state, assign=True)
    _rebuild_buffers(decoder, device)  # the non-persistent RoPE frequencies were built on meta
    return decoder.eval().requires_grad_(False)


def _rebuild_buffers(decoder: DiffusionVideoDecoder, device: torch.device | str) -> None:
    from ltx_pipelines.models.ltx25.diffusion_decoder import NeighborhoodAttention, rope_frequencies

    for module in decoder.modules():
        if isinstance(module, NeighborhoodAttention):
            for name, width in zip(("inv_t", "inv_h", "inv_w"), module.split, strict=True):
                setattr(module, name, rope_frequencies(width).to(device))


def flat_encoder_config(vae_config: dict) -> dict:
    """A diffusion VAE file's nested ``encoder`` settings in the flat form ltx-core 1.0.0's encoder reads."""
    if "encoder" not in vae_config:
        return vae_config
    enc = vae_config["encoder"]
    flat = {k: v for k, v in vae_config.items() if k not in ("encoder", "decoder")}
    flat.update({
        "dims": enc.get("dims", vae_config.get("dims", 3)),
        "in_channels": enc.get("in_channels", 3),
        "latent_channels": enc.get("out_channels", vae_config.get("latent_channels", 128)),
        "encoder_blocks": enc.get("blocks", enc.get("encoder_blocks", [])),
        "patch_size": enc.get("patch_size", 4),
        "norm_layer": enc.get("norm_layer", "pixel_norm"),
        "latent_log_var": enc.get("latent_log_var", "uniform"),
        "spatial_padding_mode": enc.get("spatial_padding_mode", vae_config.get("encoder_spatial_padding_mode", "zeros")),
    })  # fmt: skip
    return flat


class FlatVideoEncoderConfigurator:
    """ltx-core's video-encoder configurator for a file whose encoder settings are nested (the diffusion VAE file)."""

    @classmethod
    def from_config(cls, config: dict) -> torch.nn.Module:
        from ltx_core.model.video_vae import VideoEncoderConfigurator

        return VideoEncoderConfigurator.from_config({**config, "vae": flat_encoder_config(config.get("vae", {}))})


__all__ = ["FlatVideoEncoderConfigurator", "decoder_key", "decoder_state_dict", "flat_encoder_config", "fold_gate",
           "is_diffusion_vae", "load_diffusion_decoder", "read_vae_config", "split_qkv"]  # fmt: skip
