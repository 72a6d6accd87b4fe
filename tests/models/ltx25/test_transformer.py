"""Our LTX-2.5 transformer against the reference's own numbers (``tests/golden/ltx25``, float32, CPU).

The fixture is a tiny random 2.5 transformer in the split-file layout plus, per case, inputs and the
reference's (LTX-2 1.2.0) velocity and x0 outputs; ``tests/golden/make_ltx25_goldens.py`` says how it is made.
Here the model is built as the loader builds it (ltx-core's ``SingleGPUModelBuilder`` on the file) and run through
our eager engine (prepare / blocks / finish), the model's forward, ``X0Model`` and the fused block restatement.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from ltx_core.guidance.perturbations import (
    BatchedPerturbationConfig,
    Perturbation,
    PerturbationConfig,
    PerturbationType,
)
from ltx_core.loader.single_gpu_model_builder import SingleGPUModelBuilder
from ltx_core.model.transformer import LTXV_MODEL_COMFY_RENAMING_MAP, LTXModel, LTXModelConfigurator, X0Model
from ltx_core.model.transformer.transformer_args import MultiModalTransformerArgsPreprocessor
from safetensors import safe_open

from ltx_pipelines.acceleration.compiled_blocks import CompiledBlocks
from ltx_pipelines.models.ltx25.transformer import (
    LTX25_CONFIG_MARKERS,
    KeyframedModality,
    LTX25Model,
    LTX25ModelConfigurator,
    TransformerConfigurator,
    configurator_for,
    extend_keyframes_mask,
    first_frame_keyframes_mask,
    is_ltx_2_5_transformer,
)
from ltx_pipelines.models.transformer_blocks import EagerBlocks
from ltx_pipelines.models.versions import parse_version

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "ltx25"
FILE = GOLDEN / "transformer.safetensors"
PREFIX = "model.diffusion_model."
TOLERANCE = 1e-5
MANIFEST = json.loads((GOLDEN / "manifest.json").read_text())
CASES = list(MANIFEST["cases"])
OUTPUTS = ("video_velocity", "audio_velocity", "video_x0", "audio_x0")


def relative_error(ours: torch.Tensor, reference: torch.Tensor) -> float:
    return float((ours.detach() - reference).norm() / reference.norm())


@pytest.fixture(scope="module")
def golden() -> dict[str, torch.Tensor]:
    with safe_open(str(FILE), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open is not iterable


@pytest.fixture(scope="module")
def config() -> dict:
    with safe_open(str(FILE), framework="pt") as f:
        return json.loads(f.metadata()["config"])


@pytest.fixture(scope="module")
def models(golden: dict[str, torch.Tensor], config: dict) -> dict[str, LTXModel]:
    """The model as the loader builds it from the file, and the no-prompt-AdaLN variant on the same weights."""
    builder = SingleGPUModelBuilder(
        model_class_configurator=TransformerConfigurator,
        model_path=str(FILE),
        model_sd_ops=LTXV_MODEL_COMFY_RENAMING_MAP,
    )
    main = builder.build(device=torch.device("cpu"), dtype=torch.float32).eval()
    overrides = MANIFEST["cases"]["i2v_no_prompt_adaln"]["config_overrides"]
    with torch.device("meta"):
        variant = LTX25ModelConfigurator.from_config({"transformer": {**config["transformer"], **overrides}})
    weights = {k.removeprefix(PREFIX): v for k, v in golden.items() if k.startswith(PREFIX)}
    variant.load_state_dict(weights, strict=False, assign=True)
    return {"main": main, "no_prompt_adaln": variant.eval()}


def model_for(models: dict[str, LTXModel], case: str) -> LTXModel:
    return models["no_prompt_adaln" if case == "i2v_no_prompt_adaln" else "main"]


def modality(golden: dict[str, torch.Tensor], case: str, name: str) -> KeyframedModality:
    """One modality's inputs of a case, as the engine would hand them to the transformer."""
    get = golden.get
    key = f"golden.{case}.{name}."
    return KeyframedModality(
        latent=golden[key + "latent"],
        sigma=golden[key + "sigma"],
        timesteps=golden[key + "timesteps"],
        positions=golden[key + "positions"],
        context=golden[key + "context"],
        attention_mask=get(key + "attention_mask"),
        keyframes_mask=get(key + "keyframes_mask"),
    )


def perturbations(case: str, batch: int) -> BatchedPerturbationConfig:
    """The fixture's perturbations in ltx-core 1.0.0's form (sample 1 cut in the ``perturbed`` case)."""
    if case != "perturbed":
        return BatchedPerturbationConfig.empty(batch)
    cut = PerturbationConfig(
        [
            Perturbation(PerturbationType.SKIP_VIDEO_SELF_ATTN, [1]),
            Perturbation(PerturbationType.SKIP_AUDIO_SELF_ATTN, [0]),
            Perturbation(PerturbationType.SKIP_A2V_CROSS_ATTN, None),
            Perturbation(PerturbationType.SKIP_V2A_CROSS_ATTN, None),
        ]
    )
    return BatchedPerturbationConfig([PerturbationConfig.empty(), cut])


def inputs(golden: dict[str, torch.Tensor], case: str) -> tuple[KeyframedModality, KeyframedModality, object]:
    video, audio = modality(golden, case, "video"), modality(golden, case, "audio")
    return video, audio, perturbations(case, video.latent.shape[0])


def reference(golden: dict[str, torch.Tensor], case: str, output: str) -> torch.Tensor:
    return golden[f"golden.{case}.out.{output}"]


def assert_matches(golden: dict[str, torch.Tensor], case: str, ours: dict[str, torch.Tensor]) -> None:
    errors = {name: relative_error(value, reference(golden, case, name)) for name, value in ours.items()}
    assert max(errors.values()) <= TOLERANCE, errors


def run_engine(engine: EagerBlocks, video: KeyframedModality, audio: KeyframedModality, cuts: object) -> tuple:
    with torch.no_grad():
        v_args, a_args = engine.prepare(video, audio)
        v_out, a_out = engine.blocks(v_args, a_args, cuts)
        return engine.finish(video, audio, v_out, a_out)


# -- the reference's numbers ------------------------------------------------------------------------


@pytest.mark.parametrize("compact", [False, True])
@pytest.mark.parametrize("case", CASES)
def test_eager_blocks_match_reference(golden: dict, models: dict, case: str, compact: bool) -> None:
    video, audio, cuts = inputs(golden, case)
    engine = EagerBlocks(X0Model(model_for(models, case)), compact=compact)
    video_x0, audio_x0 = run_engine(engine, video, audio, cuts)
    assert_matches(golden, case, {"video_x0": video_x0, "audio_x0": audio_x0})


@pytest.mark.parametrize("case", CASES)
def test_forward_and_x0_model_match_reference(golden: dict, models: dict, case: str) -> None:
    model = model_for(models, case)
    video, audio, cuts = inputs(golden, case)
    with torch.no_grad():
        video_velocity, audio_velocity = model(video, audio, cuts)
        video_x0, audio_x0 = X0Model(model)(video, audio, cuts)
    ours = {"video_velocity": video_velocity, "audio_velocity": audio_velocity, "video_x0": video_x0,
            "audio_x0": audio_x0}  # fmt: skip
    assert_matches(golden, case, ours)


@pytest.mark.parametrize("case", CASES)
def test_fused_block_restatement_matches_reference(golden: dict, models: dict, case: str) -> None:
    """The compiled path's block function (run eagerly here) needs nothing of its own for 2.5."""
    video, audio, cuts = inputs(golden, case)
    engine = CompiledBlocks(X0Model(model_for(models, case)), compile=False)
    video_x0, audio_x0 = run_engine(engine, video, audio, cuts)
    assert_matches(golden, case, {"video_x0": video_x0, "audio_x0": audio_x0})


def test_compiled_blocks_match_reference(golden: dict, models: dict) -> None:
    """torch.compile of the fused block (aot_eager: graphs without code generation) on the fullest case."""
    video, audio, cuts = inputs(golden, "keyframes")
    engine = CompiledBlocks(X0Model(models["main"]), compile=True, backend="aot_eager")
    video_x0, audio_x0 = run_engine(engine, video, audio, cuts)
    assert engine.stats.fallback is None and engine.stats.graphs >= 1
    assert_matches(golden, "keyframes", {"video_x0": video_x0, "audio_x0": audio_x0})


# -- the fixture can tell: what 1.0.0 would compute differs --------------------------------------------


def test_keyframe_embedding_moves_the_output(golden: dict, models: dict) -> None:
    video, audio, cuts = inputs(golden, "t2v")
    unmarked = KeyframedModality(**{**vars(video), "keyframes_mask": torch.zeros_like(video.keyframes_mask)})
    velocity, _ = models["main"](unmarked, audio, cuts)
    assert relative_error(velocity, reference(golden, "t2v", "video_velocity")) > 1e-3


def test_a_missing_keyframes_mask_is_refused(golden: dict, models: dict) -> None:
    video, audio, cuts = inputs(golden, "t2v")
    with pytest.raises(ValueError, match="keyframes_mask"):
        models["main"](KeyframedModality(**{**vars(video), "keyframes_mask": None}), audio, cuts)


@pytest.mark.parametrize("case", ["i2v", "a2v", "keyframes"])
def test_other_modality_sigma_cross_adaln_would_differ(golden: dict, models: dict, case: str) -> None:
    """ltx-core 1.0.0's audio<->video scale/shift (from the other modality's sigma) misses the reference.

    (Where every token of both modalities shares one sigma, as in t2v, the two agree.)
    """
    model = models["main"]
    video, audio, cuts = inputs(golden, case)
    engine = EagerBlocks(X0Model(model))
    with torch.no_grad():
        v_args, a_args = engine.prepare(video, audio)
        old_video = model.video_args_preprocessor.inner.prepare(video, audio).cross_scale_shift_timestep
        old_audio = model.audio_args_preprocessor.inner.prepare(audio, video).cross_scale_shift_timestep
        v_args = replace(v_args, cross_scale_shift_timestep=old_video)
        a_args = replace(a_args, cross_scale_shift_timestep=old_audio)
        video_x0, audio_x0 = engine.finish(video, audio, *engine.blocks(v_args, a_args, cuts))
    errors = [relative_error(video_x0, reference(golden, case, "video_x0")),
              relative_error(audio_x0, reference(golden, case, "audio_x0"))]  # fmt: skip
    assert max(errors) > 1e-3, errors


# -- building and the keyframes mask ----------------------------------------------------------------


def test_fixture_is_the_one_the_manifest_describes() -> None:
    assert hashlib.sha256(FILE.read_bytes()).hexdigest() == MANIFEST["files"][FILE.name]
    assert MANIFEST["upstream"]["commit"].startswith("400fd31")


def test_file_keys_and_model_parameters_are_the_same(golden: dict, models: dict) -> None:
    """No weight of the file is ignored and no parameter is left unloaded (biases dropped, embedding present)."""
    model = models["main"]
    assert isinstance(model, LTX25Model)
    file_keys = {k.removeprefix(PREFIX) for k in golden if k.startswith(PREFIX)}
    assert set(model.state_dict()) == file_keys
    assert model.transformer_blocks[0].ff.net[2].bias is None
    assert model.transformer_blocks[0].audio_ff.net[2].bias is not None
    assert model.keyframes_abs_pos_embedding.shape == (1, model.inner_dim)
    assert not any(p.is_meta for p in model.parameters())


def test_keyframes_mask_helpers_reproduce_the_reference_masks(golden: dict) -> None:
    target = golden["golden.t2v.video.keyframes_mask"]
    per_frame = MANIFEST["shapes"]["video"][3] * MANIFEST["shapes"]["video"][4]
    fresh = first_frame_keyframes_mask(torch.ones_like(target), per_frame)
    assert torch.equal(fresh, target)
    # keyframes case: target, then a given keyframe (unmarked), then one generated slot (marked)
    extended = extend_keyframes_mask(extend_keyframes_mask(fresh, per_frame, marked=False), per_frame, marked=True)
    assert torch.equal(extended, golden["golden.keyframes.video.keyframes_mask"])


def test_older_configs_build_ltx_core_model_unchanged(config: dict) -> None:
    """An LTX-2.3-style config (no 2.5-only value) gets ltx-core 1.0.0's own model and preprocessors."""
    transformer = {k: v for k, v in config["transformer"].items() if k not in LTX25_CONFIG_MARKERS}
    old = {"transformer": transformer}
    assert not is_ltx_2_5_transformer(old)
    assert configurator_for(old) is LTXModelConfigurator
    with torch.device("meta"):
        model = TransformerConfigurator.from_config(old)
    assert type(model) is LTXModel
    assert type(model.video_args_preprocessor) is MultiModalTransformerArgsPreprocessor
    assert model.transformer_blocks[0].ff.net[2].bias is not None


def test_generation_detection() -> None:
    assert is_ltx_2_5_transformer({"transformer": {"ff_bias": False}})
    assert is_ltx_2_5_transformer({"transformer": {"use_keyframes_abs_pos_embedding": True}})
    assert is_ltx_2_5_transformer({}, model_version="2.5.0")
    assert not is_ltx_2_5_transformer({"transformer": {"ff_bias": True}}, model_version="2.3.rc1")
    assert parse_version("2.4-rc2") == (2, 4)
    assert parse_version("") is None


def test_unequal_head_counts_are_refused(config: dict) -> None:
    transformer = {**config["transformer"], "audio_num_attention_heads": 4}
    with pytest.raises(ValueError, match="num_attention_heads"), torch.device("meta"):
        LTX25ModelConfigurator.from_config({"transformer": transformer})
