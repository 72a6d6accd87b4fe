"""The LTX-2.3 layout of the smoke model: LTX-2's monolithic checkpoint with 2.3's transformer switches.

``python -m ltx_pipelines.smoke_model --model-version 2.3 DIR`` writes the same files as the LTX-2 bundle (one
checkpoint with the VAEs and vocoder, its distilled twin, upsampler, LoRAs, a Gemma-3 folder), but the checkpoint
is laid out the way ltx-core 1.0.0 builds an LTX-2.3 (22B) model from its ``config``:

* gated attention in every transformer block and text cross-attention AdaLN (``prompt_adaln_single``);
* the "V2" text path: the caption projection runs before the connectors, in the text encoder
  (``text_embedding_projection.{video,audio}_aggregate_embed`` with biases, per-token RMS norm), so the transformer
  has no ``caption_projection`` and the connectors run at the transformer's own widths (video and audio apart);
* gated attention in the connectors too (reported from shipped 2.3 headers: ``connector_apply_gated_attention``);
* the vocoder with bandwidth extension: its ``vocoder`` config section nests a BigVGAN-v2 style ``vocoder`` (AMP
  blocks, snake-beta activations) and a ``bwe`` generator with its causal mel STFT, which ltx-core 1.0.0 recognises
  (the ``bwe`` key) and builds as ``VocoderWithBWE``: a 16 kHz waveform, then 48 kHz.

LTX-2.5 keeps all of this and adds its own switches (``smoke_model.ltx25``).
"""

from __future__ import annotations

import math

import torch

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


#: The vocoder's sample rate, and the band-extended one.
BWE_INPUT_RATE = 16000
BWE_OUTPUT_RATE = 48000
#: The BWE's causal STFT: hop (in 16 kHz samples), FFT size (= window) and mel bands. The generators' first conv
#: takes 2 x 64 mel channels (stereo), so 64 bands. A small FFT keeps the stored bases small.
BWE_HOP = 80
BWE_N_FFT = 256
BWE_MELS = 64
#: How much smaller the generators' last convs are drawn (see ``bwe_vocoder_values``).
BWE_QUIET = 256


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


def ltx23_vocoder_config() -> dict:
    """The ``vocoder`` section of a 2.3 checkpoint: a mel-to-wave vocoder and a bandwidth-extension generator.

    Miniature sizes, chosen here (a real file's generators are far wider and deeper):
    both generators start at 16 channels and halve them over three upsampling stages (2 channels at the end),
    one AMP block (kernel 3, dilations 1, 3, 5) per stage. The vocoder upsamples its 100 mel frames a second
    by 10 x 4 x 4 = 160 (16 kHz, the audio VAE's hop); the BWE generator takes a 64-band mel of that waveform
    every ``BWE_HOP`` samples and upsamples it by 6 x 5 x 8 = 240 (= 3 x ``BWE_HOP``: 48 kHz), its output a
    residual added to the 16 kHz waveform resampled x3. Some 37k weights, and 140k values of filters and
    STFT bases. No tanh and no bias at the end (clamped to [-1, 1] instead), as chosen for this miniature.
    """
    common = {
        "resblock": "AMP1",
        "stereo": True,
        "activation": "snakebeta",
        "resblock_kernel_sizes": [3],
        "resblock_dilation_sizes": [[1, 3, 5]],
        "upsample_initial_channel": 16,
        "use_tanh_at_final": False,
        "use_bias_at_final": False,
    }
    return {
        "vocoder": {
            **common,
            "upsample_rates": [10, 4, 4],
            "upsample_kernel_sizes": [20, 8, 8],
            "output_sampling_rate": BWE_INPUT_RATE,
        },
        "bwe": {
            **common,
            "upsample_rates": [6, 5, 8],
            "upsample_kernel_sizes": [12, 11, 16],
            "input_sampling_rate": BWE_INPUT_RATE,
            "output_sampling_rate": BWE_OUTPUT_RATE,
            "hop_length": BWE_HOP,
            "n_fft": BWE_N_FFT,
            "num_mels": BWE_MELS,
        },
    }


def bwe_vocoder_values(config: dict, drawn: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """What the 2.3 vocoder's tensors hold in place of some of their ``drawn`` random values (checkpoint keys).

    * The buffers that are not weights get the values they have in a real file: the anti-aliasing filters of the
      AMP blocks' activations (as ltx-core computes them), and the mel STFT's bases: a periodic Hann window times
      the DFT (cosine rows, then sine rows), its pseudo-inverse for the inverse basis, and a Slaney mel filterbank
      over 0 to 8 kHz.
    * The last conv of each generator is drawn ``1 / BWE_QUIET`` times smaller: random AMP generators have a large
      gain, and at full scale the waveform sits clipped at +-1 most of the time, where bfloat16 and float32 runs
      (the reference's vocoder and ours) part by whole units at each crossing. Quiet, it stays in range (some
      0.05 RMS) and they differ by rounding only.
    """
    from ltx_core.model.audio_vae import VocoderConfigurator

    with torch.device("cpu"):
        built = VocoderConfigurator.from_config(config)
    values = {f"vocoder.{k}": v for k, v in built.state_dict().items() if k.endswith(".filter")}
    bwe = config["vocoder"]["bwe"]
    n_fft, n_freqs = bwe["n_fft"], bwe["n_fft"] // 2 + 1
    angle = 2 * math.pi * torch.outer(torch.arange(n_freqs, dtype=torch.float64), torch.arange(n_fft))
    fourier = torch.cat([torch.cos(angle), -torch.sin(angle)])  # (2 * n_freqs, n_fft)
    window = torch.hann_window(n_fft, periodic=True, dtype=torch.float64)
    inverse = torch.linalg.pinv(fourier).T * window * n_fft / bwe["hop_length"]
    values["vocoder.mel_stft.stft_fn.forward_basis"] = (fourier * window).unsqueeze(1).float()
    values["vocoder.mel_stft.stft_fn.inverse_basis"] = inverse.unsqueeze(1).float()
    values["vocoder.mel_stft.mel_basis"] = _mel_filterbank(n_freqs, bwe["input_sampling_rate"], bwe["num_mels"])
    for generator in ("vocoder", "bwe_generator"):
        key = f"vocoder.{generator}.conv_post.weight"
        values[key] = drawn[key] / BWE_QUIET
    assert values.keys() <= drawn.keys()
    return {k: v.contiguous() for k, v in values.items()}


def _mel_filterbank(n_freqs: int, sample_rate: int, n_mels: int) -> torch.Tensor:
    import torchaudio.functional

    banks = torchaudio.functional.melscale_fbanks(n_freqs, 0.0, sample_rate / 2, n_mels, sample_rate,
                                                  norm="slaney", mel_scale="slaney")  # fmt: skip
    return banks.T.float()  # (n_mels, n_freqs)


__all__ = ["MODEL_VERSION", "V2_TEXT_PATH", "bwe_vocoder_values", "is_ltx23_layout", "ltx23_transformer_config",
           "ltx23_vocoder_config"]  # fmt: skip
