"""Code written for the reference package (ltx-pipelines 1.0.0) runs on ours: names, arguments, results.

(The parity test, ``tests/parity``, compares outputs and signatures with the installed reference;
these tests need no download.) The smoke weights are random: the videos are noise.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import two_stage_files
from ltx_core.components.guiders import MultiModalGuiderParams
from ltx_core.loader import LTXV_LORA_COMFY_RENAMING_MAP, LoraPathStrengthAndSDOps

from ltx_pipelines.a2vid_two_stage import A2VidPipelineTwoStage
from ltx_pipelines.distilled import DistilledPipeline
from ltx_pipelines.ic_lora import ICLoraPipeline
from ltx_pipelines.keyframe_interpolation import KeyframeInterpolationPipeline
from ltx_pipelines.retake import RetakePipeline, build_parser
from ltx_pipelines.ti2vid_one_stage import TI2VidOneStagePipeline
from ltx_pipelines.ti2vid_two_stages import TI2VidTwoStagesPipeline
from ltx_pipelines.ti2vid_two_stages_hq import TI2VidTwoStagesHQPipeline
from ltx_pipelines.utils.args import ImageConditioningInput
from ltx_pipelines.utils.errors import InputError
from ltx_pipelines.utils.media_io import encode_video, probe_media

pytestmark = pytest.mark.usefixtures("one_thread")

CHEAP = MultiModalGuiderParams(cfg_scale=3.0, stg_scale=0.0, rescale_scale=0.0, modality_scale=1.0, stg_blocks=[])


class Stop(Exception):
    """Raised by a stand-in stage: the test has seen what it needed."""


def stopper(calls: list, label: object = None):  # noqa: ANN201
    """A stand-in that records ``label`` (or the ``seed`` it was given) and stops the run."""

    def stand_in(*args: object, **kwargs: object) -> None:
        calls.append(kwargs["seed"] if label is None else label)
        raise Stop

    return stand_in


def test_distilled_the_reference_way(smoke_bundle, tmp_path: Path, make_image) -> None:  # noqa: ANN001
    """The reference's README flow: positional files, keyword call, unpack, encode_video."""
    pipeline = DistilledPipeline(
        str(smoke_bundle.distilled_checkpoint), str(smoke_bundle.gemma_root), str(smoke_bundle.spatial_upsampler), []
    )
    video, audio = pipeline(
        prompt="a lighthouse", seed=3, height=128, width=128, num_frames=9, frame_rate=24.0,
        images=[ImageConditioningInput(str(make_image()), 0, 1.0, 33)], tiling_config=None,
    )  # fmt: skip
    out = tmp_path / "ref.mp4"
    encode_video(video=video, fps=24, audio=audio, output_path=str(out), video_chunks_number=1)
    info = probe_media(out)
    assert (info.num_frames, info.width, info.height, info.has_audio) == (9, 128, 128, True)
    named = DistilledPipeline(
        distilled_checkpoint_path=smoke_bundle.distilled_checkpoint, gemma_root=smoke_bundle.gemma_root,
        spatial_upsampler_path=smoke_bundle.spatial_upsampler, loras=[],
    )  # fmt: skip
    assert named.checkpoint.path == pipeline.checkpoint.path


def _pipelines(bundle) -> dict[str, tuple[object, dict]]:  # noqa: ANN001
    """Each pipeline with a minimal request, keyed by what besides the prompt drives its video (None: nothing)."""
    files = two_stage_files(bundle, 1.0)
    guided = {"height": 128, "width": 128, "num_frames": 9, "num_inference_steps": 1}
    ic = LoraPathStrengthAndSDOps(str(bundle.ic_lora), 1.0, LTXV_LORA_COMFY_RENAMING_MAP)
    return {
        "one_stage": (TI2VidOneStagePipeline(bundle.checkpoint, bundle.gemma_root, []), guided),
        "two_stages": (TI2VidTwoStagesPipeline(**files), guided),
        "hq": (TI2VidTwoStagesHQPipeline(**files), guided),
        "distilled": (DistilledPipeline(bundle.distilled_checkpoint, bundle.gemma_root, bundle.spatial_upsampler), {}),
        "keyframes": (KeyframeInterpolationPipeline(**files), guided),
        "ic_lora": (ICLoraPipeline(bundle.distilled_checkpoint, bundle.spatial_upsampler, bundle.gemma_root, [ic]), {}),
        "a2vid": (A2VidPipelineTwoStage(**files), guided),
        "retake": (RetakePipeline(bundle.checkpoint, bundle.gemma_root, []), {}),
    }


@pytest.mark.parametrize("prompt", ["", "   "])
def test_blank_prompt_refused_before_any_load_unless_something_else_drives_the_video(
    smoke_bundle, make_image, prompt: str, no_model_builds  # noqa: ANN001
) -> None:
    image = [(str(make_image()), 0, 1.0)]
    for name, (pipeline, request) in _pipelines(smoke_bundle).items():
        if name in ("ic_lora", "a2vid", "retake"):
            continue  # always conditioned: below
        with pytest.raises(InputError, match="--prompt is empty"):
            pipeline(prompt=prompt, **request)
        pipeline.validate(prompt=prompt, images=image, **request)  # images make an empty prompt meaningful
        assert pipeline.ledger.files_loaded == []


def test_blank_prompt_accepted_with_a_reference_video_soundtrack_or_source(
    smoke_bundle, tmp_path: Path, no_model_builds  # noqa: ANN001
) -> None:
    from test_retake import write_clip

    clip = write_clip(tmp_path / "clip.mp4")
    pipelines = _pipelines(smoke_bundle)
    ic_lora, _ = pipelines["ic_lora"]
    ic_lora.validate(prompt="", video_conditioning=[(str(clip), 1.0)], height=128, width=128, num_frames=9)
    a2vid, request = pipelines["a2vid"]
    a2vid.validate(prompt=" ", audio_path=str(clip), **{**request, "num_frames": 9})
    retake, _ = pipelines["retake"]
    retake.validate(video_path=str(clip), prompt="", start_time=0.1, end_time=0.3)


def test_retake_distilled_argument_picks_the_schedule(
    smoke_bundle, tmp_path: Path, monkeypatch  # noqa: ANN001
) -> None:
    from test_retake import write_clip

    pipeline = RetakePipeline(smoke_bundle.checkpoint, smoke_bundle.gemma_root, [])
    clip = write_clip(tmp_path / "clip.mp4")
    used: list[str] = []
    for stage in ("distilled_stage", "guided_stage"):
        monkeypatch.setattr(pipeline, stage, stopper(used, stage))
    for distilled in (True, False, None):  # None: the checkpoint's own metadata (a full model here)
        with pytest.raises(Stop):
            pipeline(str(clip), "a kite", 0.1, 0.3, 5, distilled=distilled, video_guider_params=CHEAP)
    assert used == ["distilled_stage", "guided_stage", "guided_stage"]


def test_retake_cli_takes_the_reference_flags(smoke_bundle) -> None:  # noqa: ANN001
    args = build_parser().parse_args([
        "--video-path", "in.mp4", "--prompt", "p", "--start-time", "0.1", "--end-time", "0.3", "--output-path",
        "o.mp4", "--checkpoint-path", "c", "--gemma-root", "g", "--loras", str(smoke_bundle.ic_lora),
        str(smoke_bundle.distilled_lora), "--quantization", "fp8-cast",
    ])  # fmt: skip
    assert args.seed == 42  # the reference's retake default
    assert [(Path(lora.path).name, lora.strength) for lora in args.loras] == [
        (smoke_bundle.ic_lora.name, 1.0), (smoke_bundle.distilled_lora.name, 1.0),
    ]  # fmt: skip
    assert args.quantization == "fp8-cast"


def test_retake_seed_minus_one_is_random(smoke_bundle, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    from test_retake import write_clip

    pipeline = RetakePipeline(smoke_bundle.checkpoint, smoke_bundle.gemma_root, [])
    seeds: list[int] = []
    monkeypatch.setattr(pipeline, "retake_latents", stopper(seeds))
    clip = write_clip(tmp_path / "clip.mp4")
    for _ in range(2):
        with pytest.raises(Stop):
            pipeline(str(clip), "a kite", 0.1, 0.3, seed=-1)
    assert all(0 <= seed < 2**31 for seed in seeds) and seeds[0] != seeds[1]


def test_ic_lora_attention_strength_and_pixel_mask(smoke_bundle) -> None:  # noqa: ANN001
    from ltx_pipelines.ic_lora import ReferenceAttention, latent_attention_mask

    assert ReferenceAttention().weight((2, 2, 2)) is None  # full attention: no wrapper at all
    assert ReferenceAttention(0.5).weight((2, 2, 2)) == 0.5
    assert ReferenceAttention(0.5, 0.4).weight((2, 2, 2)) == pytest.approx(0.2)  # our scalar form, times strength
    # 9 pixel frames -> 2 latent frames: frame 0 alone, then frames 1..8 averaged; 4x4 -> 2x2 by area.
    mask = torch.zeros(1, 1, 9, 4, 4)
    mask[:, :, 0, :2, :2] = 1.0  # top-left quarter of frame 0
    mask[:, :, 1:5] = 1.0  # half of the later frames, everywhere
    tokens = latent_attention_mask(mask, 2, 2, 2)
    assert tokens.tolist() == [[1.0, 0.0, 0.0, 0.0, 0.5, 0.5, 0.5, 0.5]]
    assert torch.equal(ReferenceAttention(0.5, mask).weight((2, 2, 2)), tokens * 0.5)
    ReferenceAttention(1.0, torch.zeros(1, 1, 4, 4, 4)).check(9)  # 2 latent frames: frame 0, then the rest
    with pytest.raises(InputError, match="minus 1 must be a multiple of 2"):
        ReferenceAttention(1.0, torch.zeros(1, 1, 4, 4, 4)).check(17)
    with pytest.raises(InputError, match="between 0 and 1"):
        ReferenceAttention(1.5).check(9)
