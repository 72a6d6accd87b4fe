"""All eight pipelines on an LTX-2.3 checkpoint (the smoke model's 2.3 layout), with 2.3's defaults.

The requests are the parity test's (``parity.harness.cases``: 64x64, 9 frames, the reference's argument names)
without their step counts and guidance, so each pipeline picks the defaults of the checkpoint it runs: LTX-2.3's
30 steps and STG block 28 (``models/versions.py``) where they depend on the model, the fixed HQ and distilled
schedules where they do not (the reference's too). Random weights: mechanics only, never picture quality.

Sizes are already the smallest most pipelines take (``SMALLEST``), and the cost is the defaults' steps, not the
tokens: 30 steps of 30 guided blocks, some 10 s a pipeline on one CPU thread whatever the size.
"""

from __future__ import annotations

import importlib
import json

import pytest
from parity import harness

from ltx_pipelines.models.versions import generation_of
from ltx_pipelines.smoke_model import SmokeBundle
from ltx_pipelines.utils import constants as C

pytestmark = pytest.mark.usefixtures("one_thread")

#: Left out of each request, so that the pipeline chooses them.
DEFAULTED = ("num_inference_steps", "video_guider_params", "audio_guider_params")
#: Pipelines whose steps and STG block come from the checkpoint's generation.
BY_VERSION = ("ti2vid_one_stage", "ti2vid_two_stages", "keyframe_interpolation", "a2vid_two_stage", "retake")
LTX_2_3 = generation_of("2.3.0")
#: Smaller than the parity request where the pipeline allows: one frame at 32x32 (one latent token) for the
#: one-stage pipeline. The two-stage ones need 64x64 and 9 frames (the x2 upsampler normalises over the stage-1
#: latent, which must hold more than one value per channel), keyframe interpolation two latent frames for its two
#: keyframes, and retake its clip (a 32x32 one saves nothing measurable).
SMALLEST = {"ti2vid_one_stage": {"height": 32, "width": 32, "num_frames": 1}}


@pytest.fixture(scope="module")
def files(ltx23_bundle: SmokeBundle, tmp_path_factory: pytest.TempPathFactory) -> harness.ParityFiles:
    return harness.media_files(ltx23_bundle, tmp_path_factory.mktemp("ltx23-media"))


def run_with_defaults(name: str, files: harness.ParityFiles) -> dict[str, str]:
    """Run the parity request of ``name`` without steps or guidance; return the result's metadata."""
    request = harness.cases(files)[name]
    call = {key: value for key, value in request["call"].items() if key not in DEFAULTED} | SMALLEST.get(name, {})
    cls = getattr(importlib.import_module(f"ltx_pipelines.{name}"), harness.CLASSES[name])
    result = cls(**harness.decode_arguments(request["init"]), device="cpu")(**harness.decode_arguments(call))
    assert result.frames.shape[1:] == (call.get("height", harness.SIZE), call.get("width", harness.SIZE), 3)
    assert "num_frames" not in call or len(result.frames) == call["num_frames"]  # retake: its clip's 17
    # 2.3's vocoder extends the band to 48 kHz; audio-to-video returns the soundtrack it was given (44.1 kHz)
    assert result.audio is not None and result.audio.sampling_rate == (44100 if name == "a2vid_two_stage" else 48000)
    return result.metadata


def test_the_table_says_30_steps_and_stg_block_28_for_ltx_2_3() -> None:
    assert (LTX_2_3.num_inference_steps, LTX_2_3.stg_block) == (30, 28) == (C.LTX_2_3_NUM_INFERENCE_STEPS,
                                                                           C.LTX_2_3_STG_BLOCK)  # fmt: skip


@pytest.mark.parametrize("name", harness.PIPELINES)
def test_pipeline_runs_ltx_2_3_with_its_defaults(name: str, files: harness.ParityFiles) -> None:
    metadata = run_with_defaults(name, files)
    assert metadata["model_version"] == "2.3.0"
    if name in BY_VERSION:
        assert int(metadata["num_inference_steps"]) == LTX_2_3.num_inference_steps
        video, audio = json.loads(metadata["video_guidance"]), json.loads(metadata["audio_guidance"])
        assert video["stg_blocks"] == [LTX_2_3.stg_block]
        # audio-to-video runs no audio guidance by default (the soundtrack is given)
        assert audio["stg_blocks"] == ([] if name == "a2vid_two_stage" else [LTX_2_3.stg_block])
    elif name == "ti2vid_two_stages_hq":  # fixed for every version, as the reference's HQ pipeline
        assert int(metadata["num_inference_steps"]) == C.DEFAULT_HQ_NUM_INFERENCE_STEPS
        assert json.loads(metadata["video_guidance"])["stg_blocks"] == C.DEFAULT_HQ_VIDEO_GUIDER_PARAMS.stg_blocks
    else:  # distilled and IC-LoRA: the distilled schedule
        assert json.loads(metadata["sigmas"]) == C.DISTILLED_SIGMA_VALUES

