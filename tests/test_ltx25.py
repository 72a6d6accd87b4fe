"""LTX-2.5's split files through the user's entry points: --model-dir, auto duration, streamed and FP8 weights,
the server's catalogue. (tests/golden compares every pipeline's output with the reference 1.2.0's.)

The smoke weights are random: the videos are noise.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from ltx_core.quantization import QuantizationPolicy

from ltx_pipelines.distilled import DistilledPipeline
from ltx_pipelines.engine.duration import AutoDuration
from ltx_pipelines.serve.catalog import Catalog
from ltx_pipelines.serve.settings import build_parser, settings_from_args
from ltx_pipelines.utils.errors import InputError
from ltx_pipelines.utils.media_io import probe_media

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {"prompt": "a red kite over the sea", "height": 128, "width": 128, "seed": 3}


def test_the_cli_finds_the_download_and_the_head_chooses_the_length(ltx25_bundle, tmp_path: Path, cli_env) -> None:
    out = tmp_path / "kite.mp4"
    run = subprocess.run(
        [sys.executable, "-m", "ltx_pipelines.distilled", "--model-dir", str(ltx25_bundle.root), "--prompt", "a kite",
         "--height", "128", "--width", "128", "--auto-duration", "0.3", "0.5", "--output-path", str(out)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    picked = "--model-dir: --transformer-path diffusion_models/ltx-2.5-smoke-distilled-transformer.safetensors"
    assert picked in run.stderr
    assert "LTX-2.5 (2.5.0): transformer ltx-2.5-smoke-distilled-transformer.safetensors" in run.stderr
    assert "SMOKE MODEL" in run.stderr
    info = probe_media(out)
    assert (info.num_frames, info.width, info.height, info.has_audio) == (9, 128, 128, True)  # 0.3-0.5 s at 24 fps


def test_auto_duration_needs_a_head_and_a_range_with_a_frame_count(ltx25_bundle, no_model_builds) -> None:
    b = ltx25_bundle
    files = {"transformer_path": b.distilled_transformer, "text_encoder_path": b.text_encoder,
             "video_vae_path": b.video_vae, "audio_vae_path": b.audio_vae,
             "spatial_upsampler_path": b.spatial_upsampler}  # fmt: skip
    headless = DistilledPipeline(**files, device="cpu")
    with pytest.raises(InputError, match="needs the model's duration head"):
        headless.validate(**TINY, num_frames=AutoDuration())
    headless.validate(**TINY, num_frames=None)  # no head: the default length
    with_head = DistilledPipeline(**files, duration_head_path=b.duration_head, device="cpu")
    with pytest.raises(InputError, match="holds no valid frame count"):
        with_head.validate(**TINY, num_frames=AutoDuration(0.1, 0.2))
    with pytest.raises(InputError, match="0 < MIN <= MAX"):
        with_head.validate(**TINY, num_frames=AutoDuration(2.0, 1.0))


def test_streamed_fp8_and_resident_weights_give_the_2_5_model(ltx25_bundle) -> None:
    """The keyframe embedding and the bias-free feed-forwards survive streaming and FP8 (same frames)."""
    frames = {}
    for name, options in {"resident": {}, "streamed": {"offload": "cpu"}}.items():
        pipeline = DistilledPipeline(model_dir=ltx25_bundle.root, device="cpu", dtype=torch.float32, **options)
        frames[name] = pipeline(**TINY, num_frames=9).frames
    assert torch.equal(frames["resident"], frames["streamed"])
    fp8 = DistilledPipeline(model_dir=ltx25_bundle.root, device="cpu", dtype=torch.float32,
                            quantization=QuantizationPolicy.fp8_cast())  # fmt: skip
    quantized = fp8(**TINY, num_frames=9).frames
    assert quantized.shape == frames["resident"].shape and not torch.equal(quantized, frames["resident"])


def test_the_server_offers_both_models_of_the_download(ltx25_bundle, tmp_path: Path) -> None:
    parser = build_parser()
    settings = settings_from_args(parser.parse_args(["--model-dir", str(ltx25_bundle.root), "--data-dir",
                                                     str(tmp_path)]), parser)  # fmt: skip
    files = settings.files
    assert (Path(files.transformer), Path(files.distilled_transformer)) == (ltx25_bundle.transformer,
                                                                           ltx25_bundle.distilled_transformer)
    catalog = Catalog(files, device="cpu")
    catalog.load_validators()
    assert {catalog.model_of(name) for name in catalog.validators} == {"LTX-2.5 (2.5.0)"}
    assert not catalog.available("ic_lora")  # its IC-LoRA is not picked by --model-dir: name it with --ic-lora
