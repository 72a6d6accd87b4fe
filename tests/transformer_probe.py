"""A fixed transformer input for comparing builds of the same model (LoRAs, quantization).

Comparing at the transformer output is far cheaper than running a pipeline, and it sees
every block: one call of the X0 model on a small, seeded video+audio input.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import torch
from ltx_core.guidance.perturbations import BatchedPerturbationConfig
from ltx_core.model.transformer import Modality

from ltx_pipelines.engine.model_ledger import ModelLedger
from ltx_pipelines.engine.stages import VideoGeometry, audio_latent_tools, video_latent_tools


def fixed_inputs(ledger: ModelLedger, seed: int = 0, sigma: float = 0.7) -> tuple[Modality, Modality]:
    """Seeded random latents and text contexts at 64x64, 9 frames, shaped for `ledger`'s model."""
    geometry = VideoGeometry(height=64, width=64, num_frames=9, frame_rate=25.0)
    generator = torch.Generator().manual_seed(seed)
    width = int(ledger.config["transformer"]["caption_channels"])
    modalities = []
    fmt = ledger.latent_format
    for tools in (video_latent_tools(geometry, fmt), audio_latent_tools(geometry, fmt)):
        state = tools.create_initial_state(ledger.device, ledger.dtype)
        latent = torch.randn(state.latent.shape, generator=generator).to(ledger.device, ledger.dtype)
        context = torch.randn(1, 8, width, generator=generator).to(ledger.device, ledger.dtype)
        state = replace(state, latent=latent)
        modalities.append(
            Modality(
                latent=state.latent,
                sigma=torch.full((1,), sigma, device=ledger.device),
                timesteps=state.denoise_mask * sigma,
                positions=state.positions,
                context=context,
            )
        )
    return modalities[0], modalities[1]


@torch.inference_mode()
def transformer_outputs(ledger: ModelLedger, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(video, audio) X0 predictions of the ledger's transformer on the fixed input."""
    video, audio = fixed_inputs(ledger, seed)
    x0_video, x0_audio = ledger.get("transformer")(video, audio, BatchedPerturbationConfig.empty(1))
    return x0_video.float().cpu(), x0_audio.float().cpu()


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return float((actual.float() - expected.float()).norm() / expected.float().norm())


@contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one CPU thread: the smoke model is tiny, and on a busy machine intra-op
    threads wait on each other for milliseconds per op (a 0.1 s call became 10 s)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
