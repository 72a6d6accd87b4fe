"""Our LTX-2.5 diffusion video decoder against the reference's own numbers (``tests/golden/ltx25/diffusion_vae*``).

The fixture is a tiny random decoder in the published file's layout (fused QKV, static gates, ``coarse_*``
tensors, bf16) and what the reference (LTX-2 1.2.0) decoded from fixed latents with fixed seeds, whole and tiled;
``tests/golden/make_ltx25_diffvae_goldens.py`` says how it is made. Ours loads the file as the pipelines do.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from ltx_pipelines.models.ltx25.diffusion_decoder import DiffusionDecoderConfig
from ltx_pipelines.models.ltx25.diffusion_tiling import HANDOUT_FRAMES, TileSizes
from ltx_pipelines.models.ltx25.diffusion_vae_file import decoder_state_dict, load_diffusion_decoder
from ltx_pipelines.models.ltx25.neighborhood_attention import (
    neighborhood_attention,
    reference_neighborhood_attention,
)

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "ltx25"
MANIFEST = json.loads((GOLDEN / "diffusion_vae.json").read_text())
VAE_FILE = GOLDEN / "diffusion_vae.safetensors"
TOLERANCE = 1e-5


def golden(case: str) -> dict[str, torch.Tensor]:
    prefix = f"golden.{case}."
    with safe_open(str(GOLDEN / "diffusion_vae_golden.safetensors"), framework="pt") as f:
        return {k[len(prefix) :]: f.get_tensor(k) for k in f.keys() if k.startswith(prefix)}  # noqa: SIM118


def vae_file_for(case: dict, tmp_path: Path) -> Path:
    """The fixture's weights under the case's config (the x0 case changes only the metadata)."""
    if not case["overrides"]:
        return VAE_FILE
    vae = json.loads(json.dumps(MANIFEST["config"]["vae"]))
    overrides = case["overrides"]
    vae["decoder"].update(overrides.get("decoder", {}))
    vae.update({k: v for k, v in overrides.items() if k != "decoder"})
    path = tmp_path / "vae.safetensors"
    save_file(load_file(str(VAE_FILE)), str(path), metadata={"config": json.dumps({"vae": vae})})
    return path


def decode(case_name: str, tmp_path: Path, slab: int | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    case = MANIFEST["cases"][case_name]
    edges = "shift" if case["mode"] == "combined" else "replicate"
    decoder = load_diffusion_decoder(vae_file_for(case, tmp_path), stage5_w_edges=edges)
    expected = golden(case_name)
    generator = torch.Generator().manual_seed(case["seed"])
    with torch.no_grad():
        if case["tiling"] is None and slab is None:
            video = decoder(expected["latent"], generator=generator)
        elif case["tiling"] is None:
            video = torch.cat(list(decoder.tiled_decode(expected["latent"], TileSizes(attention_slab=slab),
                                                        generator=generator)), dim=2)  # fmt: skip
        else:
            sizes = TileSizes(**{axis: tuple(v) for axis, v in case["tiling"].items()}, attention_slab=slab)
            chunks = list(decoder.tiled_decode(expected["latent"], sizes, generator=generator))
            # streamed: each temporal group's frames as they are done, a few at a time
            assert len(chunks) >= 2 and all(c.shape[2] <= HANDOUT_FRAMES for c in chunks)
            video = torch.cat(chunks, dim=2)
    return video, expected


SLAB_CASES = [next(n for n, c in MANIFEST["cases"].items() if c["tiling"] is None),
              next(n for n, c in MANIFEST["cases"].items() if c["tiling"] is not None)]  # fmt: skip


@pytest.mark.parametrize(("case", "slabs"), [(c, False) for c in MANIFEST["cases"]] + [(c, True) for c in SLAB_CASES])
def test_matches_reference(case: str, slabs: bool, tmp_path: Path) -> None:
    """``slabs``: attention one frame of queries at a time (with its temporal neighbours), the memory plan's path
    for large volumes, and the noise kept in host memory."""
    video, expected = decode(case, tmp_path, slab=1 if slabs else None)
    stride = MANIFEST["sample_stride"]
    sample = video[:, :, :, ::stride, ::stride]
    assert sample.shape == expected["sample"].shape
    error = float((sample.double() - expected["sample"].double()).abs().max() / expected["sample"].abs().max())
    assert error <= TOLERANCE, f"{case}: relative error {error:.2e}"
    x = video.double()
    total, absolute, squares = expected["sums"].tolist()
    assert abs(float(x.sum()) - total) <= TOLERANCE * absolute
    assert float(x.abs().sum()) == pytest.approx(absolute, rel=TOLERANCE)
    assert float((x * x).sum()) == pytest.approx(squares, rel=TOLERANCE)


def test_folding_splits_qkv_folds_gates_and_drops_coarse() -> None:
    tensors = load_file(str(VAE_FILE))
    state = decoder_state_dict(tensors.items())
    assert not any("coarse" in k or "gate_" in k or ".qkv." in k for k in state)
    fused = tensors["decoder.det_stages.0.0.attn.qkv.weight"]
    assert torch.equal(state["det_stages.0.0.attn.to_k.weight"], fused.chunk(3)[1])
    gate = tensors["decoder.diff_blocks.1.gate_mlp"].float()
    raw = tensors["decoder.diff_blocks.1.mlp.w_down.weight"].float()
    assert torch.equal(state["diff_blocks.1.mlp.w_down.weight"], (gate[:, None] * raw).to(torch.bfloat16))
    assert "t_embedder.linear_1.weight" in state


def test_config_reads_the_nested_decoder_settings() -> None:
    config = DiffusionDecoderConfig.from_vae_config(MANIFEST["config"]["vae"])
    assert config.stage5_width == 32 and config.stage5_kernel == (3, 5, 7) and config.num_steps == 2
    assert config.scale == (8, 32, 32)
    defaults = DiffusionDecoderConfig.from_vae_config({"_class_name": "CausalDiffusionVAE"})
    assert defaults.stage_channels == (1024, 512, 256, 256, 128) and defaults.stage5_depth == 8


@pytest.mark.parametrize(("shape", "kernel"), [((1, 5, 9, 11, 2, 8), (3, 5, 7)), ((2, 7, 6, 13, 1, 4), (3, 3, 5))])
def test_blocked_attention_equals_dense_masked_attention(shape: tuple, kernel: tuple) -> None:
    q, k, v = (torch.randn(shape, generator=torch.Generator().manual_seed(i)) for i in range(3))
    ours = neighborhood_attention(q, k, v, kernel)
    assert torch.allclose(ours, reference_neighborhood_attention(q, k, v, kernel), atol=1e-6)


def test_a_failed_compile_falls_back_to_eager_with_a_warning(monkeypatch, caplog) -> None:  # noqa: ANN001
    """``compile_blocks`` under a compiler that fails on first use: same frames as eager, one warning per block."""
    from ltx_pipelines.models.ltx25.diffusion_decoder import DiffusionVideoDecoder

    config = DiffusionDecoderConfig(
        latent_channels=8, head_dim=8, t_emb_dim=16, stage_channels=(32, 16, 16, 16, 16), stage_depths=(1, 1, 1, 1, 1),
        upsamples=(((1, 2, 2), 2), ((2, 1, 1), 1), ((2, 2, 2), 1), ((2, 2, 2), 1)), stage5_channels=16,
    )  # fmt: skip
    torch.manual_seed(0)
    decoder = DiffusionVideoDecoder(config).eval()
    latent = torch.randn(1, 8, 2, 3, 3)
    with torch.no_grad():
        eager = decoder(latent, generator=torch.Generator().manual_seed(1))

    def failing_compile(fn, **kwargs):  # noqa: ANN001, ANN003, ANN202
        def run(*args, **kw):  # noqa: ANN002, ANN003, ANN202
            raise RuntimeError("no compiler here")

        return run

    monkeypatch.setattr(torch, "compile", failing_compile)
    decoder.compile_blocks()
    with torch.no_grad(), caplog.at_level("WARNING"):
        compiled = decoder(latent, generator=torch.Generator().manual_seed(1))
    assert torch.equal(compiled, eager)
    warnings = [r for r in caplog.records if "torch.compile failed" in r.getMessage()]
    assert len(warnings) == len(decoder.diff_blocks) + sum(len(s) for s in decoder.det_stages)


@pytest.mark.parametrize("scale", [1.0, 0.125])
def test_rope_in_place_complex_equals_the_compiled_real_form(scale: float, monkeypatch: pytest.MonkeyPatch) -> None:
    """The eager Q/K norm + RoPE (complex pairs rotated in place) and the form a compiled block traces (real
    arithmetic) agree, and neither changes its input."""
    from ltx_pipelines.models.ltx25.diffusion_decoder import NeighborhoodAttention

    attention = NeighborhoodAttention(64, (3, 7, 7), 32)
    torch.nn.init.normal_(attention.q_norm.weight, 1.0, 0.1, generator=torch.Generator().manual_seed(1))
    x = torch.randn(1, 3, 5, 6, 2, 32, generator=torch.Generator().manual_seed(0))
    before = x.clone()
    eager = attention._norm_rope(x, attention.q_norm, scale)
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    traced = attention._norm_rope(x, attention.q_norm, scale)
    assert torch.equal(x, before)
    assert float((eager - traced).abs().max()) <= 1e-6 * float(traced.abs().max())
    assert not torch.allclose(eager, attention.q_norm(x) * scale)  # it rotated something
