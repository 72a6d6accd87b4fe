"""LoRAs on the smoke transformer: strength, stacking, and refusing LoRAs that do not fit.

Most checks compare one transformer call on a fixed input (tests/transformer_probe.py) between
builds of the smoke model, which sees every block at a fraction of a pipeline's cost.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from conftest import run_module
from helpers import lora_delta, probe_mp4
from safetensors import safe_open
from safetensors.torch import save_file
from transformer_probe import relative_error, single_thread, transformer_outputs

from ltx_pipelines.engine import pipeline_base
from ltx_pipelines.engine.model_ledger import ModelLedger, comfy_lora
from ltx_pipelines.smoke_model import SmokeBundle
from ltx_pipelines.utils.errors import InputError

PROBE = "transformer_blocks.3.attn1.to_q"  # a module both smoke LoRAs adapt


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    with single_thread():
        yield


def _ledger(bundle: SmokeBundle, *loras: tuple[Path, float]) -> ModelLedger:
    return ModelLedger(bundle.checkpoint, loras=[comfy_lora(path, strength) for path, strength in loras], device="cpu")


def _weights(bundle: SmokeBundle, *loras: tuple[Path, float]) -> dict[str, torch.Tensor]:
    model = _ledger(bundle, *loras).get("transformer").velocity_model
    return {k: v.float().clone() for k, v in model.state_dict().items() if k.startswith("transformer_blocks.")}


@pytest.fixture(scope="module")
def base_outputs(smoke_bundle: SmokeBundle) -> tuple[torch.Tensor, torch.Tensor]:
    return transformer_outputs(_ledger(smoke_bundle))


def test_strength_zero_gives_the_base_output_exactly(smoke_bundle: SmokeBundle, base_outputs) -> None:
    video, audio = transformer_outputs(_ledger(smoke_bundle, (smoke_bundle.distilled_lora, 0.0)))
    assert torch.equal(video, base_outputs[0])
    assert torch.equal(audio, base_outputs[1])


def test_strength_changes_the_output_in_proportion(smoke_bundle: SmokeBundle, base_outputs) -> None:
    small = transformer_outputs(_ledger(smoke_bundle, (smoke_bundle.distilled_lora, 0.5)))
    large = transformer_outputs(_ledger(smoke_bundle, (smoke_bundle.distilled_lora, 2.0)))
    for i in (0, 1):  # video, audio
        change_small = relative_error(small[i], base_outputs[i])
        change_large = relative_error(large[i], base_outputs[i])
        assert change_small > 1e-3
        assert change_large > 2 * change_small  # 4x the strength moves the output clearly further


def test_two_loras_stack(smoke_bundle: SmokeBundle) -> None:
    a = (smoke_bundle.distilled_lora, 1.0)
    b = (smoke_bundle.ic_lora, 1.0)
    only_a = transformer_outputs(_ledger(smoke_bundle, a))
    only_b = transformer_outputs(_ledger(smoke_bundle, b))
    both = transformer_outputs(_ledger(smoke_bundle, a, b))
    for i in (0, 1):
        assert relative_error(both[i], only_a[i]) > 1e-3
        assert relative_error(both[i], only_b[i]) > 1e-3


def test_lora_deltas_superpose_at_the_weight_level(smoke_bundle: SmokeBundle) -> None:
    a = (smoke_bundle.distilled_lora, 0.3)
    b = (smoke_bundle.ic_lora, -0.2)
    base, with_a, with_b, with_both = (
        _weights(smoke_bundle), _weights(smoke_bundle, a), _weights(smoke_bundle, b), _weights(smoke_bundle, a, b)
    )  # fmt: skip
    touched = 0
    for key, w in base.items():
        delta_a, delta_b, delta_both = with_a[key] - w, with_b[key] - w, with_both[key] - w
        torch.testing.assert_close(delta_both, delta_a + delta_b, atol=1e-5, rtol=1e-4)
        touched += int(delta_a.abs().max() > 0)
    assert touched >= 6 * 30  # six adapted linears (q, k, v, out, ff in/out) per video block at least
    # ...and each delta is strength * B @ A from the file (fused at bf16 precision).
    expected = lora_delta(a[0], PROBE, a[1])
    actual = with_a[f"{PROBE}.weight"] - base[f"{PROBE}.weight"]
    assert relative_error(actual, expected) < 2e-2


def test_two_loras_through_the_one_stage_pipeline(smoke_bundle: SmokeBundle, tmp_path: Path) -> None:
    from ltx_pipelines.ti2vid_one_stage import TI2VidOneStagePipeline

    loras = [comfy_lora(smoke_bundle.distilled_lora, 0.6), comfy_lora(smoke_bundle.ic_lora, 0.4)]
    pipeline = TI2VidOneStagePipeline(smoke_bundle.checkpoint, smoke_bundle.gemma_root, loras=loras, device="cpu")
    out = tmp_path / "loras.mp4"
    pipeline("a red ball", output_path=out, height=64, width=64, num_frames=9, num_inference_steps=2)
    info = probe_mp4(out)
    assert info["frames"] == 9
    assert smoke_bundle.distilled_lora.name in info["metadata"]["loras"]
    assert smoke_bundle.ic_lora.name in info["metadata"]["loras"]


# -- LoRAs that do not fit are refused before any model is built -------------------------------------


def _lora_file(bundle: SmokeBundle, path: Path, transform) -> Path:  # noqa: ANN001
    """A copy of the distilled smoke LoRA with its tensors changed by `transform(key, tensor)`."""
    with safe_open(str(bundle.distilled_lora), framework="pt") as f:
        tensors = dict(transform(k, f.get_tensor(k)) for k in f.keys())
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))
    return path


@pytest.fixture
def no_model_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if the pipeline gets as far as creating its model ledger."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a model ledger was created before the LoRA was checked")

    monkeypatch.setattr(pipeline_base, "ModelLedger", refuse)


def _construct(bundle: SmokeBundle, lora: Path) -> None:
    from ltx_pipelines.ti2vid_one_stage import TI2VidOneStagePipeline

    TI2VidOneStagePipeline(bundle.checkpoint, bundle.gemma_root, loras=[comfy_lora(lora, 1.0)], device="cpu")


def test_lora_matching_no_module_is_refused(smoke_bundle: SmokeBundle, tmp_path: Path, no_model_loads) -> None:
    bad = _lora_file(
        smoke_bundle, tmp_path / "other_model_lora.safetensors",
        lambda k, v: (k.replace("transformer_blocks.", "single_blocks."), v),
    )  # fmt: skip
    with pytest.raises(InputError) as error:
        _construct(smoke_bundle, bad)
    message = str(error.value)
    assert str(bad) in message
    assert "single_blocks." in message  # a sample key that matches nothing


@pytest.mark.parametrize("fault", ["rank", "shape"])
def test_lora_of_wrong_rank_or_shape_is_refused(
    smoke_bundle: SmokeBundle, tmp_path: Path, no_model_loads, fault: str
) -> None:
    def damage(key: str, value: torch.Tensor) -> tuple[str, torch.Tensor]:
        if fault == "rank" and key.endswith("lora_B.weight"):
            return key, torch.zeros(value.shape[0], value.shape[1] + 2, dtype=value.dtype)  # B rank 6, A rank 4
        if fault == "shape" and key.endswith("lora_A.weight"):
            return key, torch.zeros(value.shape[0], value.shape[1] + 16, dtype=value.dtype)  # wrong in_features
        return key, value

    bad = _lora_file(smoke_bundle, tmp_path / f"wrong_{fault}.safetensors", damage)
    with pytest.raises(InputError) as error:
        _construct(smoke_bundle, bad)
    message = str(error.value)
    assert str(bad) in message
    assert "does not fit" in message and "transformer_blocks." in message


def test_cli_refuses_an_unmatched_lora_with_one_clear_line(
    smoke_bundle: SmokeBundle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    bad = _lora_file(
        smoke_bundle, tmp_path / "stranger.safetensors", lambda k, v: (k.replace("transformer_blocks.", "blocks."), v)
    )
    out = tmp_path / "never.mp4"
    result = run_module(
        "ltx_pipelines.ti2vid_one_stage",
        "--checkpoint-path", smoke_bundle.checkpoint, "--gemma-root", smoke_bundle.gemma_root,
        "--prompt", "x", "--output-path", out, "--lora", bad, "0.5", "--device", "cpu",
        "--height", "64", "--width", "64", "--num-frames", "9", "--num-inference-steps", "1",
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "error:" in result.stderr and str(bad) in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()
