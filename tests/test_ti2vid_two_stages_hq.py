"""HQ two-stage pipeline end to end on the smoke bundle (random weights: the video is noise)."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import run_module
from helpers import probe_mp4, two_stage_files
from ltx_core.components.schedulers import LTX2Scheduler

import ltx_pipelines.ti2vid_two_stages_hq as hq
from ltx_pipelines.engine.stages import VideoGeometry
from ltx_pipelines.ti2vid_two_stages_hq import TI2VidTwoStagesHQPipeline
from ltx_pipelines.utils.errors import InputError

SMALL = {"height": 128, "width": 128, "num_frames": 9, "num_inference_steps": 2}


@pytest.fixture(scope="module")
def pipeline(smoke_bundle) -> TI2VidTwoStagesHQPipeline:  # noqa: ANN001
    return TI2VidTwoStagesHQPipeline(**two_stage_files(smoke_bundle, 1.0), device="cpu")


def test_api_samples_with_res2s_and_hq_defaults(pipeline, monkeypatch) -> None:  # noqa: ANN001
    stages: list[int] = []
    real = hq.res2s_denoising_loop
    monkeypatch.setattr(
        hq, "res2s_denoising_loop", lambda sigmas, *a, **kw: stages.append(len(sigmas)) or real(sigmas, *a, **kw)
    )

    result = pipeline("a lighthouse at dusk, waves", seed=7, **SMALL)

    assert stages == [3, 4]  # the default loop in both stages: res_2s (2 steps, then the 3 distilled ones)
    assert tuple(result.frames.shape) == (9, 128, 128, 3)
    assert result.audio is not None and result.audio.waveform.numel() > 0
    tags = result.metadata
    assert tags["pipeline"] == "ti2vid_two_stages_hq"
    assert json.loads(tags["video_guidance"]) == {
        "cfg": 3.0, "stg": 0.0, "stg_blocks": [], "rescale": 0.45, "modality": 3.0, "skip_step": 0,
    }  # fmt: skip
    assert json.loads(tags["audio_guidance"])["rescale"] == 1.0
    assert json.loads(tags["stage_1_distilled_lora"]) == ["ltx-2-smoke-distilled-lora.safetensors:0.25"]
    assert json.loads(tags["distilled_lora"]) == ["ltx-2-smoke-distilled-lora.safetensors:0.5"]


def test_stage_1_schedule_is_shifted_for_its_token_count(pipeline) -> None:  # noqa: ANN001
    # 1088x1920, 121 frames: stage 1 at 544x960 has 16 x 17 x 30 latent tokens, twice LTX-2's default anchor.
    sigmas = pipeline.stage_1_sigmas(15, VideoGeometry(544, 960, 121, 24.0))
    latent = torch.empty(1, 128, 16, 17, 30)
    assert torch.equal(sigmas, LTX2Scheduler().execute(steps=15, latent=latent))
    assert not torch.allclose(sigmas, LTX2Scheduler().execute(steps=15))


def test_constructor_strengths_are_the_call_defaults(smoke_bundle) -> None:  # noqa: ANN001
    files = two_stage_files(smoke_bundle, 1.0)
    pipeline = TI2VidTwoStagesHQPipeline(
        **files, device="cpu", distilled_lora_strength_stage_1=0.0, distilled_lora_strength_stage_2=0.7
    )
    tags = pipeline("x", seed=1, **{**SMALL, "num_inference_steps": 1}).metadata
    assert json.loads(tags["stage_1_distilled_lora"]) == []  # strength 0: stage 1 runs the bare model
    assert json.loads(tags["distilled_lora"]) == ["ltx-2-smoke-distilled-lora.safetensors:0.7"]
    with pytest.raises(InputError, match="must not be negative"):
        TI2VidTwoStagesHQPipeline(**files, device="cpu", distilled_lora_strength_stage_2=-1.0)


def test_negative_lora_strength_is_refused_before_any_model(pipeline) -> None:  # noqa: ANN001
    with pytest.raises(InputError, match="must not be negative"):
        pipeline("x", distilled_lora_strength_stage_1=-0.5, **SMALL)


def test_help_lists_hq_flags_and_defaults(capsys) -> None:  # noqa: ANN001
    with pytest.raises(SystemExit):
        hq.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for expected in (
        "--distilled-lora-strength-stage-1 DISTILLED_LORA_STRENGTH_STAGE_1 Distilled LoRA strength in stage 1; "
        "0 runs stage 1 on the bare model. (default: 0.25)",
        "(default: 0.5)", "(default: 1088)", "(default: 1920)", "(default: 15)", "(default: res2s)",
        "video rescale; 0 disables. (default: 0.45)", "audio rescale; 0 disables. (default: 1.0)",
    ):  # fmt: skip
        assert expected in text, expected


def test_cli_writes_mp4(smoke_bundle, tmp_path) -> None:  # noqa: ANN001
    out = tmp_path / "hq.mp4"
    done = run_module(
        "ltx_pipelines.ti2vid_two_stages_hq",
        "--checkpoint-path", smoke_bundle.checkpoint, "--gemma-root", smoke_bundle.gemma_root,
        "--distilled-lora", smoke_bundle.distilled_lora, "--spatial-upsampler-path", smoke_bundle.spatial_upsampler,
        "--prompt", "rain on a window", "--output-path", out, "--height", 128, "--width", 128,
        "--num-frames", 9, "--num-inference-steps", 2, "--distilled-lora-strength-stage-1", 0,
        "--device", "cpu",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    info = probe_mp4(out)
    assert (info["frames"], info["width"], info["height"], info["has_audio"]) == (9, 128, 128, True)
    assert info["metadata"]["pipeline"] == "ti2vid_two_stages_hq"
    assert json.loads(info["metadata"]["stage_1_distilled_lora"]) == []  # strength 0: bare model in stage 1
    assert json.loads(info["metadata"]["video_guidance"])["stg_blocks"] == []
