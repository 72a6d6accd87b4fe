"""The LTX-2.3 layout of the smoke model: LTX-2's monolithic checkpoint with 2.3's transformer switches.

``python -m ltx_pipelines.smoke_model --model-version 2.3 DIR`` writes the same files as the LTX-2 bundle (one
checkpoint with the VAEs and vocoder, its distilled twin, upsampler, LoRAs, a Gemma-3 folder), but the checkpoint
is laid out the way ltx-core 1.0.0 builds an LTX-2.3 (22B) model from its ``config``:

* gated attention in every transformer block and text cross-attention AdaLN (``prompt_adaln_single``);
* the "V2" text path: the caption projection runs before the connectors, in the text encoder
  (``text_embedding_projection.{video,audio}_aggregate_embed`` with biases, per-token RMS norm), so the transformer
  has no ``caption_projection`` and the connectors run at the transformer's own widths (video and audio apart);
* gated attention in the connectors too (reported from shipped 2.3 headers: ``connector_apply_gated_attention``).

LTX-2.5 keeps all of this and adds its own switches (``smoke_model.ltx25``).
"""

from __future__ import annotations

from ltx_pipelines.models.versions import parse_version
from ltx_pipelines.smoke_model import AUDIO_INNER_DIM, SMOKE_SIZES, VIDEO_INNER_DIM, SmokeSizes, transformer_config

MODEL_VERSION = "2.3.0"
#: The four keys (with these values) that make ltx-core 1.0.0 pick FeatureExtractorV2 and leave the caption
#: projection out of the transformer; a partial set is refused there.
V2_TEXT_PATH = {
    "caption_proj_before_connector": True,
    "caption_projection_first_linear": False,
    "caption_proj_input_norm": False,
    "caption_projection_second_linear": False,
}


def is_ltx23_layout(model_version: str) -> bool:
    """Whether a monolithic bundle of this version gets 2.3's layout (2.3 and 2.4; 2.5 is written split)."""
    return (parse_version(model_version) or (2, 0)) >= (2, 3)


def ltx23_transformer_config(sizes: SmokeSizes = SMOKE_SIZES, gated_connectors: bool = True) -> dict:
    """The ``transformer`` section: LTX-2's, with the switches LTX-2.3 introduced (miniature sizes).

    ``gated_connectors=False`` is for the LTX-2.5 smoke writer, whose golden fixtures were made with ungated
    connectors; a real 2.3 file gates them.
    """
    heads = sizes.attention_heads
    return {
        **transformer_config(sizes),
        **V2_TEXT_PATH,
        "cross_attention_adaln": True,
        "apply_gated_attention": True,
        "connector_num_attention_heads": heads,
        "connector_attention_head_dim": VIDEO_INNER_DIM // heads,
        "audio_connector_num_attention_heads": heads,
        "audio_connector_attention_head_dim": AUDIO_INNER_DIM // heads,
        "audio_connector_num_layers": 1,
        **({"connector_apply_gated_attention": True} if gated_connectors else {}),
    }


__all__ = ["MODEL_VERSION", "V2_TEXT_PATH", "is_ltx23_layout", "ltx23_transformer_config"]
