"""How each component's tensors are named in the files: monolithic checkpoints and split component files.

A monolithic checkpoint prefixes the video VAE's tensors with ``vae.``; LTX-2.5's split video VAE file
names them bare (``encoder.*``, ``decoder.*``, ``per_channel_statistics.*``). ltx-core 1.0.0's filters
know only the prefixed form, so these accept both. (The audio VAE and vocoder keep their prefixes in
both layouts, and the split transformer keeps ``model.diffusion_model.``: ltx-core's filters serve.)
"""

from __future__ import annotations

from ltx_core.loader import SDOps


def _video_vae_part(part: str) -> SDOps:
    """The encoder or decoder of the video VAE with its per-channel statistics, from either layout."""
    return (
        SDOps(f"VIDEO_VAE_{part.upper()}_KEYS")
        .with_matching(prefix=f"vae.{part}.")
        .with_matching(prefix="vae.per_channel_statistics.")
        .with_matching(prefix=f"{part}.")
        .with_matching(prefix="per_channel_statistics.")
        .with_replacement(f"vae.{part}.", "")
        .with_replacement("vae.per_channel_statistics.", "per_channel_statistics.")
        .with_kv_operation(_strip_once(f"{part}."), key_prefix=f"{part}.")
    )


def _strip_once(prefix: str):  # noqa: ANN202
    """A key operation removing ``prefix`` from the start of a key once (a replacement would remove every copy)."""
    from ltx_core.loader.sd_ops import KeyValueOperationResult

    def strip(key: str, value):  # noqa: ANN001, ANN202
        return [KeyValueOperationResult(key.removeprefix(prefix), value)]

    return strip


VIDEO_ENCODER_KEYS = _video_vae_part("encoder")
VIDEO_DECODER_KEYS = _video_vae_part("decoder")

__all__ = ["VIDEO_DECODER_KEYS", "VIDEO_ENCODER_KEYS"]
