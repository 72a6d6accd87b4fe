"""Prompt enhancement mechanics on the smoke bundle's tiny Gemma (its text is gibberish by design)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ltx_pipelines.engine import cli, prompt_enhancement
from ltx_pipelines.engine.model_ledger import ModelLedger
from ltx_pipelines.engine.prompt_enhancement import (
    I2V_SYSTEM_PROMPT,
    T2V_SYSTEM_PROMPT,
    enhance_prompt,
    maybe_enhance_prompt,
)

PROMPT = "a fox crosses a snowy road at dusk"


@pytest.fixture(scope="module")
def ledger(smoke_bundle) -> ModelLedger:  # noqa: ANN001
    return ModelLedger(smoke_bundle.checkpoint, smoke_bundle.gemma_root, memory_policy="keep")


@pytest.fixture
def generated_lengths(ledger: ModelLedger, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record how many tokens each Gemma generate() call added."""
    model = ledger.get("text_encoder").model
    lengths: list[int] = []
    original = model.generate

    def generate(**inputs: object):  # noqa: ANN202
        out = original(**inputs)
        lengths.append(out.shape[1] - inputs["input_ids"].shape[1])
        return out

    monkeypatch.setattr(model, "generate", generate)
    return lengths


def test_same_seed_same_rewrite_and_the_prompt_is_replaced(ledger: ModelLedger) -> None:
    first = enhance_prompt(ledger, PROMPT, seed=1, max_new_tokens=12)
    assert first and first != PROMPT
    assert enhance_prompt(ledger, PROMPT, seed=1, max_new_tokens=12) == first
    assert enhance_prompt(ledger, PROMPT, seed=2, max_new_tokens=12) != first
    assert first.isprintable()  # one clean line: safe for mp4 metadata and logs


def test_length_is_bounded_by_max_new_tokens(ledger: ModelLedger, generated_lengths: list[int]) -> None:
    short = enhance_prompt(ledger, PROMPT, seed=3, max_new_tokens=4)
    longer = enhance_prompt(ledger, PROMPT, seed=3, max_new_tokens=24)
    assert generated_lengths[0] <= 4 and generated_lengths[1] <= 24
    assert len(short) < len(longer)
    with pytest.raises(ValueError, match="at least 1"):
        enhance_prompt(ledger, PROMPT, max_new_tokens=0)


def test_our_system_prompts_are_used(
    ledger: ModelLedger, monkeypatch: pytest.MonkeyPatch, make_image  # noqa: ANN001
) -> None:
    encoder = ledger.get("text_encoder")
    seen: list[tuple[str, str | None]] = []
    for kind in ("t2v", "i2v"):
        original = getattr(encoder, f"enhance_{kind}")
        spy = lambda p, _k=kind, _f=original, **kw: seen.append((_k, kw["system_prompt"])) or _f(p, **kw)  # noqa: E731
        monkeypatch.setattr(encoder, f"enhance_{kind}", spy)
    enhance_prompt(ledger, PROMPT, seed=1, max_new_tokens=4)
    with_image = enhance_prompt(ledger, PROMPT, image_path=make_image(), seed=1, max_new_tokens=4)
    assert seen == [("t2v", T2V_SYSTEM_PROMPT), ("i2v", I2V_SYSTEM_PROMPT)]
    assert with_image and with_image != PROMPT


def test_image_rewrite_is_seeded(ledger: ModelLedger, make_image) -> None:  # noqa: ANN001
    image = make_image()
    first = enhance_prompt(ledger, PROMPT, image_path=image, seed=5, max_new_tokens=8)
    assert enhance_prompt(ledger, PROMPT, image_path=image, seed=5, max_new_tokens=8) == first


def test_disabled_enhancement_loads_nothing(smoke_bundle) -> None:  # noqa: ANN001
    fresh = ModelLedger(smoke_bundle.checkpoint, smoke_bundle.gemma_root)
    assert maybe_enhance_prompt(fresh, PROMPT, enabled=False) == (PROMPT, {})
    assert fresh.files_loaded == []


def test_earliest_conditioning_image_is_shown(
    ledger: ModelLedger, monkeypatch: pytest.MonkeyPatch, make_image  # noqa: ANN001
) -> None:
    from ltx_pipelines.engine.conditioning import ImageConditioningInput

    shown: list[Path | None] = []
    fake = lambda _ledger, _prompt, image_path, seed, max_new_tokens: shown.append(image_path) or "x"  # noqa: E731
    monkeypatch.setattr(prompt_enhancement, "enhance_prompt", fake)
    late, early = make_image("late.png"), make_image("early.png")
    images = [ImageConditioningInput(str(late), 8, 1.0), ImageConditioningInput(str(early), 0, 1.0)]
    assert maybe_enhance_prompt(ledger, PROMPT, True, images, seed=1) == ("x", {"enhanced_prompt": "x"})
    assert shown == [str(early)]


# --------------------------------------------------------------------------- wiring into the pipelines


class _Stop(Exception):
    """Raised instead of encoding: the wiring is what is under test, not generation."""


@pytest.mark.parametrize("module_name", ["ti2vid_one_stage", "ti2vid_two_stages", "distilled"])
def test_pipelines_encode_the_enhanced_prompt(
    smoke_bundle, monkeypatch: pytest.MonkeyPatch, module_name: str  # noqa: ANN001
) -> None:
    import importlib

    from ltx_pipelines.engine.model_ledger import comfy_lora

    module = importlib.import_module(f"ltx_pipelines.{module_name}")
    encoded: list[list[str]] = []

    def encode_prompts(_ledger: ModelLedger, prompts: list[str]) -> list:
        encoded.append(prompts)
        raise _Stop

    from ltx_pipelines.engine import pipeline_base  # pipelines encode through it

    monkeypatch.setattr(pipeline_base, "encode_prompts", encode_prompts)
    monkeypatch.setattr(prompt_enhancement, "DEFAULT_ENHANCE_MAX_NEW_TOKENS", 6)
    common = {"gemma_root": smoke_bundle.gemma_root}
    if module_name == "ti2vid_one_stage":
        pipeline = module.TI2VidOneStagePipeline(smoke_bundle.checkpoint, **common)
    elif module_name == "distilled":
        pipeline = module.DistilledPipeline(
            smoke_bundle.distilled_checkpoint, spatial_upsampler_path=smoke_bundle.spatial_upsampler, **common
        )
    else:
        pipeline = module.TI2VidTwoStagesPipeline(
            smoke_bundle.checkpoint, comfy_lora(smoke_bundle.distilled_lora, 0.8), smoke_bundle.spatial_upsampler,
            **common,
        )  # fmt: skip
    expected = enhance_prompt(pipeline.ledger, PROMPT, seed=4, max_new_tokens=6)
    with pytest.raises(_Stop):
        pipeline(PROMPT, seed=4, height=128, width=128, num_frames=9, enhance_prompt=True)
    assert encoded[0][0] == expected != PROMPT


def test_cli_flag() -> None:
    parser = cli.base_parser("x", height=64, width=64, size_multiple=32)
    required = ["--checkpoint-path", "c", "--gemma-root", "g", "--prompt", "p", "--output-path", "o.mp4"]
    assert parser.parse_args(required).enhance_prompt is False
    assert parser.parse_args([*required, "--enhance-prompt"]).enhance_prompt is True
