"""Tests for ltx_pipelines.utils.args: the reference's argparse helpers, giving the namespace its scripts read."""

from __future__ import annotations

import json

import pytest
import torch
from ltx_core.components.guiders import MultiModalGuiderParams
from ltx_core.quantization import QuantizationPolicy
from safetensors.torch import save_file

from ltx_pipelines.engine.conditioning import ImageConditioningInput
from ltx_pipelines.utils import args

FILES = ["--gemma-root", "/g", "--prompt", "a fox", "--output-path", "/out/o.mp4"]


def test_image_conditioning_input_is_ours() -> None:
    assert args.ImageConditioningInput is ImageConditioningInput
    assert args.ImageConditioningInput("a.png", 0, 1.0).crf is None  # the model's, as in the reference 1.2.0


def test_two_stage_builder_gives_the_reference_namespace() -> None:
    parser = args.default_2_stage_arg_parser()
    ns = parser.parse_args([
        "--checkpoint-path", "/c.safetensors", *FILES, "--distilled-lora", "/d.safetensors",
        "--spatial-upsampler-path", "/u.safetensors", "--lora", "/l.safetensors", "0.5", "--image", "/i.png", "0", "1",
        "--quantization", "fp8-cast",
    ])  # fmt: skip
    assert (ns.height, ns.width, ns.num_inference_steps) == (1024, 1536, 30)  # LTX-2.3 defaults, as the reference's
    assert [(lora.path, lora.strength) for lora in ns.lora] == [("/l.safetensors", 0.5)]  # args.lora, not args.loras
    assert [(lora.path, lora.strength) for lora in ns.distilled_lora] == [("/d.safetensors", 1.0)]
    assert ns.images == [ImageConditioningInput("/i.png", 0, 1.0, None)]  # CRF: the model's, resolved when it runs
    assert isinstance(ns.quantization, QuantizationPolicy)
    assert (ns.video_stg_blocks, ns.audio_stg_blocks) == ([28], [28])  # lists, ready for MultiModalGuiderParams
    assert ns.video_cfg_guidance_scale == 3.0 and ns.audio_cfg_guidance_scale == 7.0


def test_hq_and_distilled_builders() -> None:
    hq = args.hq_2_stage_arg_parser().parse_args([
        "--checkpoint-path", "/c", *FILES, "--distilled-lora", "/d", "--spatial-upsampler-path", "/u",
        "--distilled-lora-strength-stage-1", "0.3",
    ])  # fmt: skip
    assert (hq.height, hq.width, hq.num_inference_steps, hq.video_stg_guidance_scale) == (1088, 1920, 15, 0.0)
    assert (hq.distilled_lora_strength_stage_1, hq.distilled_lora_strength_stage_2) == (0.3, 0.5)
    distilled = args.default_2_stage_distilled_arg_parser(args.PipelineParams(seed=3)).parse_args(
        ["--distilled-checkpoint-path", "/dc", *FILES, "--spatial-upsampler-path", "/u"]
    )
    assert (distilled.distilled_checkpoint_path, distilled.seed, distilled.height) == ("/dc", 3, 1024)
    one = args.default_1_stage_arg_parser(args.PipelineParams()).parse_args(["--checkpoint-path", "/c", *FILES])
    assert (one.height, one.num_inference_steps, one.video_stg_blocks) == (512, 40, [29])
    basic = args.basic_arg_parser().parse_args(["--checkpoint-path", "/c", *FILES, "--num-inference-steps", "7"])
    assert basic.num_inference_steps == 7 and basic.lora == []


def test_actions_on_a_script_s_own_parser() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--image", dest="images", action=args.ImageAction, nargs="+")  # default None, as scripts do
    parser.add_argument("--lora", action=args.LoraAction, nargs="+")
    parser.add_argument("--video-conditioning", action=args.VideoConditioningAction, nargs=2)
    parser.add_argument("--conditioning-attention-mask", action=args.VideoMaskConditioningAction, nargs="+")
    parser.add_argument("--quantization", action=args.QuantizationAction, nargs="+")
    ns = parser.parse_args([
        "--image", "/a.png", "3", "0.5", "20", "--image", "/b.png", "0", "1", "--lora", "/l",
        "--video-conditioning", "/v.mp4", "0.9", "--video-conditioning", "/w.mp4", "1",
        "--conditioning-attention-mask", "/m.mp4", "0.5", "--quantization", "fp8-scaled-mm", "/amax.json",
    ])  # fmt: skip
    assert ns.images == [ImageConditioningInput("/a.png", 3, 0.5, 20), ImageConditioningInput("/b.png", 0, 1.0, None)]
    assert ns.lora[0].strength == args.DEFAULT_LORA_STRENGTH
    assert ns.video_conditioning == [("/v.mp4", 0.9), ("/w.mp4", 1.0)]
    assert ns.conditioning_attention_mask == ("/m.mp4", 0.5)
    assert isinstance(ns.quantization, QuantizationPolicy)
    with pytest.raises(SystemExit):
        parser.parse_args(["--quantization", "fp4"])


def test_detect_params_and_checkpoint_path(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    checkpoint = tmp_path / "ltx-2.3.safetensors"
    save_file({"x": torch.zeros(1)}, str(checkpoint), metadata={"model_version": "2.3.0", "config": json.dumps({})})
    assert args.detect_params(str(checkpoint)) is args.LTX_2_3_PARAMS
    assert args.detect_params(str(tmp_path / "missing.safetensors")).num_inference_steps == 40
    assert isinstance(args.LTX_2_3_PARAMS.video_guider_params, MultiModalGuiderParams)
    monkeypatch.setattr("sys.argv", ["x", "--prompt", "p", "--distilled-checkpoint-path", str(checkpoint)])
    assert args.detect_checkpoint_path(distilled=True) == str(checkpoint)
