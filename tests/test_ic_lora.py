"""IC-LoRA on the smoke bundle: distilled model only, reference videos appended as clean tokens."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_module
from helpers import probe_mp4
from ltx_core.conditioning import ConditioningItemAttentionStrengthWrapper, VideoConditionByReferenceLatent

from ltx_pipelines.engine import prompt_enhancement
from ltx_pipelines.engine.model_ledger import comfy_lora
from ltx_pipelines.ic_lora import ICLoraPipeline, VideoConditioningInput
from ltx_pipelines.utils.errors import InputError
from ltx_pipelines.utils.media_io import write_video


def write_reference(path: Path, num_frames: int = 5, size: tuple[int, int] = (80, 96)) -> Path:
    """A short 'control' clip (edges-like stripes) at a size unlike the output's."""
    h, w = size
    stripes = (np.arange(w)[None, None, :] // 8 % 2 * 255 + np.zeros((num_frames, h, 1))).astype(np.uint8)
    write_video(path, torch.from_numpy(np.repeat(stripes[..., None], 3, axis=-1)), 24.0)
    return path


def make_pipeline(bundle, checkpoint: Path | None = None, loras: tuple = ()) -> ICLoraPipeline:  # noqa: ANN001
    return ICLoraPipeline(
        checkpoint_path=checkpoint or bundle.distilled_checkpoint,
        gemma_root=bundle.gemma_root,
        spatial_upsampler_path=bundle.spatial_upsampler,
        loras=loras or [comfy_lora(bundle.ic_lora, 1.0)],
    )


def test_refuses_the_full_model(smoke_bundle) -> None:  # noqa: ANN001
    with pytest.raises(InputError, match="not a distilled checkpoint"):
        make_pipeline(smoke_bundle, checkpoint=smoke_bundle.checkpoint)


def test_needs_an_ic_lora(smoke_bundle) -> None:  # noqa: ANN001
    with pytest.raises(InputError, match="needs an IC-LoRA"):
        ICLoraPipeline(smoke_bundle.distilled_checkpoint, smoke_bundle.spatial_upsampler, smoke_bundle.gemma_root, [])


def test_reads_reference_downscale_factor_from_the_lora(smoke_bundle) -> None:  # noqa: ANN001
    assert make_pipeline(smoke_bundle).reference_downscale_factor == 1


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [({"video_conditioning": []}, "at least one reference video"),
     ({"conditioning_attention_mask": 1.5}, "between 0 and 1"),
     ({"video_conditioning": [("missing.mp4", 1.0)]}, "does not exist"),
     ({"height": 96}, "multiple of 64")],
)  # fmt: skip
def test_checks_before_any_model_loads(
    smoke_bundle, tmp_path: Path, kwargs: dict, expected: str  # noqa: ANN001
) -> None:
    pipeline = make_pipeline(smoke_bundle)
    request = {"video_conditioning": [(write_reference(tmp_path / "ref.mp4"), 1.0)], "height": 128, "width": 128,
               "num_frames": 9, **kwargs}  # fmt: skip
    with pytest.raises(InputError, match=expected):
        pipeline("x", output_path=tmp_path / "o.mp4", **request)
    assert pipeline.ledger.files_loaded == []


def test_two_stages_with_reference_image_and_enhanced_prompt(
    smoke_bundle, tmp_path: Path, make_image, monkeypatch: pytest.MonkeyPatch  # noqa: ANN001
) -> None:
    monkeypatch.setattr(prompt_enhancement, "DEFAULT_ENHANCE_MAX_NEW_TOKENS", 8)
    pipeline = make_pipeline(smoke_bundle)
    calls: list[dict] = []
    original = pipeline.distilled_stage
    monkeypatch.setattr(pipeline, "distilled_stage", lambda **kw: calls.append(kw) or original(**kw))

    reference = write_reference(tmp_path / "pose.mp4")  # 5 frames: padded to 9 with its last frame
    out = tmp_path / "ic.mp4"
    result = pipeline(
        "a dancer", [VideoConditioningInput(str(reference), 0.9)], output_path=out, seed=2, height=128, width=128,
        num_frames=9, images=[(str(make_image()), 0, 1.0)], conditioning_attention_mask=0.5, enhance_prompt=True,
    )  # fmt: skip

    assert result.frames.shape == (9, 128, 128, 3)
    stage_1, stage_2 = calls
    assert stage_1["extra_loras"] == pipeline.loras and not stage_2.get("extra_loras")  # IC-LoRA in stage 1 only
    assert (stage_1["geometry"].height, stage_2["geometry"].height) == (64, 128)
    wrapped = stage_1["conditionings"][-1]
    assert isinstance(wrapped, ConditioningItemAttentionStrengthWrapper) and wrapped.attention_mask == 0.5
    assert isinstance(wrapped.conditioning, VideoConditionByReferenceLatent)
    assert wrapped.conditioning.strength == 0.9 and wrapped.conditioning.latent.shape[2:] == (2, 2, 2)
    assert len(stage_2["conditionings"]) == 1  # the image only, no reference tokens at full size

    tags = probe_mp4(out)["metadata"]
    assert tags["pipeline"] == "ic_lora" and tags["prompt"] == "a dancer" and tags["seed"] == "2"
    assert tags["enhanced_prompt"] == result.metadata["enhanced_prompt"] != "a dancer"
    assert tags["loras"] == f'["{smoke_bundle.ic_lora.name}:1.0"]'
    assert tags["video_conditioning"] == '[["pose.mp4", 0.9]]' and tags["conditioning_attention_mask"] == "0.5"
    assert tags["checkpoint"] == smoke_bundle.distilled_checkpoint.name and tags["skip_stage_2"] == "false"


def test_cli_skip_stage_2(smoke_bundle, tmp_path: Path) -> None:  # noqa: ANN001
    """--skip-stage-2 (in the reference's spelling of the other flags): the half-size stage-1 video is the output."""
    reference = write_reference(tmp_path / "depth.mp4", num_frames=20)  # longer than needed: trimmed
    out = tmp_path / "cli.mp4"
    proc = run_module(
        "ltx_pipelines.ic_lora", "--distilled-checkpoint-path", smoke_bundle.distilled_checkpoint,
        "--gemma-root", smoke_bundle.gemma_root, "--spatial-upsampler-path", smoke_bundle.spatial_upsampler,
        "--lora", smoke_bundle.ic_lora, "--video-conditioning", reference, "1.0", "--prompt", "a city street",
        "--output-path", out, "--height", "128", "--width", "192", "--num-frames", "9", "--skip-stage-2",
        "--seed", "3", "--num-inference-steps", "40",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "only the first 9 are used" in proc.stderr
    assert "--num-inference-steps 40 is not used" in proc.stderr
    info = probe_mp4(out)
    assert (info["frames"], info["width"], info["height"], info["has_audio"]) == (9, 96, 64, True)
    tags = info["metadata"]
    assert (tags["pipeline"], tags["skip_stage_2"], tags["stage_2_sigmas"]) == ("ic_lora", "true", "null")
    assert tags["seed"] == "3"
    assert tags["sigmas"].startswith("[1.0, ") and tags["reference_downscale_factor"] == "1"


def test_cli_refuses_full_model_in_one_line(smoke_bundle, tmp_path: Path) -> None:  # noqa: ANN001
    from ltx_pipelines.engine import cli
    from ltx_pipelines.ic_lora import main

    with pytest.raises(SystemExit) as exit_info:
        cli.run_cli(main, [
            "--checkpoint-path", str(smoke_bundle.checkpoint), "--gemma-root", str(smoke_bundle.gemma_root),
            "--spatial-upsampler-path", str(smoke_bundle.spatial_upsampler), "--lora", str(smoke_bundle.ic_lora),
            "--video-conditioning", str(write_reference(tmp_path / "r.mp4")), "1", "--prompt", "x",
            "--output-path", str(tmp_path / "o.mp4"),
        ])  # fmt: skip
    assert exit_info.value.code == 2
