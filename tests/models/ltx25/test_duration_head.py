"""Our LTX-2.5 duration head against the reference's own numbers (``tests/golden/ltx25/duration_head*``).

The fixture holds tiny random heads in the published file's layout, connector contexts, and the seconds and frame
counts the reference (LTX-2 1.2.0) computed from them, plus the reference's seconds -> frames rule on edge cases;
``tests/golden/make_ltx25_duration_goldens.py`` says how it is made. The heads load as the pipelines load them
(ltx-core's ``SingleGPUModelBuilder`` through :func:`load_duration_head`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ltx_pipelines.models.ltx25.duration_head import (
    DURATION_HEAD_PREFIX,
    DurationHead,
    DurationHeadConfig,
    DurationHeadConfigurator,
    check_duration_head_file,
    frames_for_seconds,
    has_duration_head,
    load_duration_head,
)
from ltx_pipelines.utils.errors import InputError

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "ltx25"
MANIFEST = json.loads((GOLDEN / "duration_head.json").read_text())
HEADS = list(MANIFEST["heads"])
TOLERANCE = 1e-5
LOGGER = "ltx_pipelines.models.ltx25.duration_head"


def golden_tensors(name: str) -> dict[str, torch.Tensor]:
    with safe_open(str(GOLDEN / MANIFEST["heads"][name]["file"]), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open is not iterable


def case_inputs(tensors: dict[str, torch.Tensor], case: str) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    return tensors.get(f"golden.{case}.video_context"), tensors.get(f"golden.{case}.audio_context")


@pytest.fixture(scope="module", params=HEADS)
def head_case(request: pytest.FixtureRequest) -> tuple[dict, DurationHead, dict[str, torch.Tensor]]:
    entry = MANIFEST["heads"][request.param]
    return entry, load_duration_head(GOLDEN / entry["file"]), golden_tensors(request.param)


def test_fixture_is_small() -> None:
    for entry in MANIFEST["heads"].values():
        assert (GOLDEN / entry["file"]).stat().st_size < 100_000


def test_seconds_match_the_reference(head_case: tuple) -> None:
    entry, head, tensors = head_case
    assert head.config == DurationHeadConfig.from_config(entry["config"])
    assert not head.training
    worst = 0.0
    for case, expected in entry["cases"].items():
        reference = tensors[f"golden.{case}.seconds"]
        assert reference.tolist() == pytest.approx(expected["seconds"], rel=1e-7)
        video, audio = case_inputs(tensors, case)
        if expected["shape"]["batch"] == 1:
            ours = torch.tensor([head.predict_seconds(video, audio)])
        else:
            with torch.no_grad():
                ours = head(video, audio)
        assert ours.dtype == torch.float32 and ours.shape == reference.shape
        worst = max(worst, float(((ours - reference).abs() / reference.abs()).max()))
    assert worst <= TOLERANCE


def test_frames_match_the_reference(head_case: tuple) -> None:
    entry, head, tensors = head_case
    for case, expected in entry["cases"].items():
        video, audio = case_inputs(tensors, case)
        reference_seconds = float(tensors[f"golden.{case}.seconds"][0])
        for row in expected.get("frames", []):
            rate, low, high = row["frame_rate"], row["min_seconds"], row["max_seconds"]
            assert frames_for_seconds(reference_seconds, rate, low, high) == row["frames"], (case, row)
            assert head.predict_frames(video, audio, rate, low, high) == row["frames"], (case, row)


@pytest.mark.parametrize("row", MANIFEST["frame_rule"], ids=[row["case"] for row in MANIFEST["frame_rule"]])
def test_frames_for_seconds_edges(row: dict, caplog: pytest.LogCaptureFixture) -> None:
    args = (row["seconds"], row["frame_rate"], row["min_seconds"], row["max_seconds"])
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        if "error" in row:
            with pytest.raises(ValueError, match="frames"):
                frames_for_seconds(*args)
        else:
            assert frames_for_seconds(*args) == row["frames"]
    warned = any(r.levelno == logging.WARNING and r.name == LOGGER for r in caplog.records)
    assert warned == row["warns"]


def test_frames_for_seconds_defaults_and_non_finite() -> None:
    assert frames_for_seconds(5.0, 24.0) == 113
    assert frames_for_seconds(100.0, 24.0) == 473  # default range [1, 20] s
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="not a finite"):
            frames_for_seconds(bad, 24.0)


def test_file_layout_is_the_modules_state_dict() -> None:
    """The file's ``duration_head.*`` tensors are exactly our module's state dict (strict load, no extras)."""
    entry = MANIFEST["heads"][HEADS[0]]
    tensors = golden_tensors(HEADS[0])
    state = {k.removeprefix(DURATION_HEAD_PREFIX): v for k, v in tensors.items() if k.startswith(DURATION_HEAD_PREFIX)}
    head = DurationHeadConfigurator.from_config(entry["config"])
    head.load_state_dict(state, strict=True)


def test_default_config_matches_the_released_head() -> None:
    assert DurationHeadConfig.from_config({}) == DurationHeadConfig(4096, 2048, 256, 1, 4, 256)
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in DurationHeadConfigurator.from_config({}).state_dict().items()}
    assert shapes == {
        "video_input_proj.weight": (256, 4096), "video_input_proj.bias": (256,), "video_modality_emb": (256,),
        "audio_input_proj.weight": (256, 2048), "audio_input_proj.bias": (256,), "audio_modality_emb": (256,),
        "attention_pooler.query_tokens": (1, 256),
        "attention_pooler.cross_attn.in_proj_weight": (768, 256), "attention_pooler.cross_attn.in_proj_bias": (768,),
        "attention_pooler.cross_attn.out_proj.weight": (256, 256), "attention_pooler.cross_attn.out_proj.bias": (256,),
        "mlp_hidden.weight": (256, 256), "mlp_hidden.bias": (256,), "mlp_out.weight": (1, 256), "mlp_out.bias": (1,),
    }  # fmt: skip


def test_batches_and_empty_inputs_are_refused(head_case: tuple) -> None:
    _, head, tensors = head_case
    video, audio = case_inputs(tensors, "batch2")
    with pytest.raises(ValueError, match="one prompt at a time"):
        head.predict_seconds(video, audio)
    with pytest.raises(ValueError, match="neither"):
        head.predict_seconds(None, None)


def test_bfloat16_head_stays_close() -> None:
    head = load_duration_head(GOLDEN / MANIFEST["heads"][HEADS[0]]["file"], dtype=torch.bfloat16)
    assert head.mlp_out.weight.dtype == torch.bfloat16
    tensors = golden_tensors(HEADS[0])
    video, audio = case_inputs(tensors, "av_7_5")
    assert head.predict_seconds(video, audio) == pytest.approx(float(tensors["golden.av_7_5.seconds"]), rel=0.05)


def test_file_without_head_is_an_input_error() -> None:
    other = GOLDEN / "transformer.safetensors"
    assert not has_duration_head(other)
    assert has_duration_head(GOLDEN / MANIFEST["heads"][HEADS[0]]["file"])
    with pytest.raises(InputError, match="holds no duration-head weights") as error:
        load_duration_head(other)
    assert str(other) in str(error.value)
    with pytest.raises(InputError, match="does not exist"):
        load_duration_head(GOLDEN / "missing.safetensors")


def test_incomplete_or_misshapen_file_is_an_input_error(tmp_path: Path) -> None:
    entry = MANIFEST["heads"][HEADS[0]]
    weights = {k: v for k, v in golden_tensors(HEADS[0]).items() if k.startswith(DURATION_HEAD_PREFIX)}
    metadata = {"config": json.dumps(entry["config"])}
    partial = tmp_path / "partial.safetensors"
    save_file({k: v for k, v in weights.items() if "mlp_out" not in k}, str(partial), metadata=metadata)
    with pytest.raises(InputError, match="lacks duration-head tensors: mlp_out.bias, mlp_out.weight") as error:
        check_duration_head_file(partial)
    assert str(partial) in str(error.value)
    wrong = tmp_path / "wrong_config.safetensors"
    config = {**entry["config"], "transformer": {"cross_attention_dim": 64, "audio_cross_attention_dim": 16}}
    save_file(weights, str(wrong), metadata={"config": json.dumps(config)})
    with pytest.raises(InputError, match="video_input_proj.weight' has shape"):
        load_duration_head(wrong)
