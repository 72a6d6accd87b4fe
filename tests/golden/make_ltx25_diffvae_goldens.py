"""Golden fixtures for LTX-2.5's diffusion video decoder, computed by the reference implementation itself.

The reference is the upstream LTX-2 repository at release 1.2.0 (its ``DiffusionVideoDecoder``, the
``CausalDiffusionVAE`` file's decoder). Like ``make_ltx25_goldens.py`` (whose helpers it imports), this
script runs in the reference's own Python environment and imports only the reference, torch and
safetensors, never our package. ``tests/models/ltx25/test_diffusion_decoder.py`` checks ours against it.

Regenerate (float32 on CPU, deterministic, about a minute on one core)::

    bash scripts/reference_env.sh /path/to/LTX-2.git /work/refenv      # once: builds the env
    MKL_CBWR=AUTO,STRICT OMP_NUM_THREADS=1 \\
        /work/refenv/venv/bin/python tests/golden/make_ltx25_diffvae_goldens.py tests/golden/ltx25

What it writes into OUT_DIR:

* ``diffusion_vae.safetensors``: a tiny random diffusion decoder in the layout of the published file
  (``vae/ltx-2.5-video-vae-bf16.safetensors``): bf16 tensors under ``decoder.`` (bare
  ``per_channel_statistics.*``), fused ``attn.qkv`` projections, static ``gate_msa`` / ``gate_mlp`` /
  ``gate_ctx`` gates beside each stage-5 block, unused ``coarse_*`` tensors and the ``t_embedder.mlp.*``
  names, with header metadata ``config`` (a ``vae`` section, ``_class_name`` ``CausalDiffusionVAE``, the
  decoder's settings nested under ``vae.decoder``) and ``model_version``. The reference loads it the way
  its pipelines do (``video_decoder_sd_ops_for_checkpoint`` folds the gates, splits QKV, drops
  ``coarse_*``; ``DiffVAEMode.CHUNKED_EAGER``, which on a CPU without natten runs its eager
  neighbourhood attention).
* ``diffusion_vae_golden.safetensors``: per case the latent and, of the decoded video (``[B, 3, F, H, W]``
  in [-1, 1], float32), a strided sample (every 7th row and column of every frame) and three sums over
  the whole video (sum, sum of |x|, sum of x^2).
* ``diffusion_vae.json``: the upstream commit, ``pip freeze``, the config, the cases (latent shape, seed,
  tiling, config overrides) and sha256 digests.

Cases: ``whole`` (v-prediction, the config's 2 Euler steps), ``tiled`` (the same latent and seed through
the reference's tiled decode: 2x2x2 tiles with the minimum overlaps), ``whole_combined`` (as ``whole``, with the
reference's combined stage-5 blocks, which keep NATTEN's shifted windows at the W edges where the default
chunked blocks pad with edge copies), ``x0_one_step`` (the same weights
with ``model_output_type`` x0 and one step, on a latent smaller than the decoder's minimum, which the
reference edge-pads and crops back).
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path

import torch
from ltx_core.loader import SingleGPUModelBuilder
from ltx_core.loader.module_ops import ModuleOps
from ltx_core.model.video_vae.model_configurator import (
    VideoDecoderConfigurator,
    video_decoder_sd_ops_for_checkpoint,
)
from ltx_core.model.video_vae.transformer import (
    DiffVAEBlockKind,
    DiffVAEConfig,
    DiffVAEMode,
    NAttentionKind,
    apply_diffvae_config,
    build_diffvae_mode_op,
)
from ltx_core.tiling import DimensionSizeConfig, TileSizeConfig
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_ltx25_goldens import (
    output_folder,
    provenance,
    save_deterministic,
    sha256_of,
)

SEED = 2026
MODEL_VERSION = "2.5.0"
LATENT_CHANNELS = 8
#: Small but every architectural knob differs from a default: non-cubic kernels, a stage-5 width that is not
#: the context width, a custom upsample ladder, a small timestep embedding.
DECODER_CONFIG = {
    "in_channels": LATENT_CHANNELS,
    "out_channels": 3,
    "patch_size": 4,
    "head_dim": 16,
    "t_emb_dim": 64,
    "stage_channels": [64, 32, 16, 16, 16],
    "stage_depths": [1, 1, 1, 2, 2],
    "stage_kernels": [[3, 3, 3], [3, 5, 5], [3, 5, 5], [3, 5, 3], [3, 3, 3]],  # the last is not used (stage5_kernel)
    "upsamples": [[[1, 2, 2], 2], [[2, 1, 1], 2], [[2, 2, 2], 1], [[2, 2, 2], 1]],
    "stage5_kernel": [3, 5, 7],
    "stage5_channels": 32,
    "default_num_inference_steps": 2,
}
VAE_CONFIG = {"_class_name": "CausalDiffusionVAE", "latent_channels": LATENT_CHANNELS, "decoder": DECODER_CONFIG}
X0_OVERRIDES = {"model_output_type": "x0", "decoder": {"default_num_inference_steps": 1}}
#: Tiles of 16 frames / 96 px with the smallest overlaps the reference accepts for this geometry (8 frames, 32 px).
TILING = {"frames": [16, 8], "height": [96, 32], "width": [96, 32]}
#: ``chunked``: the reference pipelines' default decode (``--diffvae-optimization chunked_eager``; stage 5's
#: attention in W slabs whose volume-edge halos are copies of the edge column). ``combined``: stage 5 over the
#: whole tile with NATTEN's shifted border windows (what ``combined_compile`` computes), here with the eager kernel.
CASES = {
    "whole": {"latent": [1, LATENT_CHANNELS, 3, 4, 5], "seed": SEED + 1, "tiling": None, "overrides": {},
              "mode": "chunked"},
    "tiled": {"latent": [1, LATENT_CHANNELS, 3, 4, 5], "seed": SEED + 1, "tiling": TILING, "overrides": {},
              "mode": "chunked"},
    "whole_combined": {"latent": [1, LATENT_CHANNELS, 3, 4, 5], "seed": SEED + 1, "tiling": None, "overrides": {},
                       "mode": "combined"},
    "x0_one_step": {"latent": [1, LATENT_CHANNELS, 2, 2, 3], "seed": SEED + 2, "tiling": None,
                    "overrides": X0_OVERRIDES, "mode": "chunked"},
}  # fmt: skip
SAMPLE_STRIDE = 7
NUM_DIFF_BLOCKS = DECODER_CONFIG["stage_depths"][-1]


def vae_config(overrides: dict) -> dict:
    decoder = {**DECODER_CONFIG, **overrides.get("decoder", {})}
    top = {k: v for k, v in overrides.items() if k != "decoder"}
    return {**VAE_CONFIG, **top, "decoder": decoder}


def random_weights(generator: torch.Generator) -> dict[str, torch.Tensor]:
    """The reference module's parameters, randomised at scales that keep every stage's activations O(1)."""
    module = VideoDecoderConfigurator.from_metadata({"config": {"vae": VAE_CONFIG}})
    out: dict[str, torch.Tensor] = {}
    for name, tensor in module.state_dict().items():
        shape = tensor.shape
        if name.startswith("per_channel_statistics.std"):
            value = 0.5 + torch.rand(shape, generator=generator)
        elif name.startswith("per_channel_statistics.mean"):
            value = 0.2 * torch.randn(shape, generator=generator)
        elif "norm" in name and name.endswith("weight"):
            value = 1.0 + 0.2 * torch.randn(shape, generator=generator)
        elif name.endswith("scale_shift_table"):
            value = 0.2 * torch.randn(shape, generator=generator)
        elif name.endswith("bias"):
            value = 0.1 * torch.randn(shape, generator=generator)
        else:
            value = torch.randn(shape, generator=generator) / shape[-1] ** 0.5
        out[name] = value
    return out


def file_tensors(weights: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
    """The published file's layout: fused QKV, ``t_embedder.mlp.*``, static gates, ``coarse_*``; bf16."""
    out: dict[str, torch.Tensor] = {}
    for name, value in weights.items():
        if ".qkv.to_k." in name or ".qkv.to_v." in name:
            continue
        if ".qkv.to_q." in name:
            leaf = name.rsplit(".", 1)[1]
            base = name.removesuffix(f".to_q.{leaf}")
            value = torch.cat([weights[f"{base}.to_{p}.{leaf}"] for p in "qkv"])
            name = f"{base}.{leaf}"
        name = name.replace("t_embedder.timestep_embedder.linear_1.", "t_embedder.mlp.0.")
        name = name.replace("t_embedder.timestep_embedder.linear_2.", "t_embedder.mlp.2.")
        out[name if name.startswith("per_channel_statistics.") else f"decoder.{name}"] = value
    width = DECODER_CONFIG["stage5_channels"]
    for block in range(NUM_DIFF_BLOCKS):
        for gate in ("gate_msa", "gate_mlp", "gate_ctx"):
            out[f"decoder.diff_blocks.{block}.{gate}"] = 0.5 + torch.rand(width, generator=generator)
    out["decoder.coarse_head.weight"] = torch.randn(12, width, generator=generator)
    out["decoder.coarse_head.bias"] = torch.randn(12, generator=generator)
    return {name: value.to(torch.bfloat16).contiguous() for name, value in out.items()}


def write_vae(tensors: dict[str, torch.Tensor], path: Path, config: dict, deterministic: bool) -> None:
    metadata = {"config": json.dumps({"vae": config}), "model_version": MODEL_VERSION}
    if deterministic:
        save_deterministic(tensors, path, metadata)
    else:
        save_file(tensors, str(path), metadata=metadata)


COMBINED_EAGER = DiffVAEConfig(
    block=DiffVAEBlockKind.COMBINED,
    w_chunks=1,
    natten_backend=None,
    attention=NAttentionKind.EAGER_SDPA,
    compile_blocks=False,
    compile_det_stages=False,
)


def load_reference(path: Path, mode: str = "chunked") -> torch.nn.Module:
    """As the reference pipelines' ``VideoDecoder`` block builds it (default ``--diffvae-optimization``), or with
    the combined blocks (``combined_compile``'s computation, which needs natten there) on the eager kernel."""
    if mode == "chunked":
        op = build_diffvae_mode_op(DiffVAEMode.CHUNKED_EAGER)
    else:
        op = ModuleOps(name="combined_eager", matcher=lambda m: hasattr(m, "diff_blocks"),
                       mutator=lambda m: apply_diffvae_config(m, COMBINED_EAGER))  # fmt: skip
    builder = SingleGPUModelBuilder(
        model_path=str(path),
        model_class_configurator=VideoDecoderConfigurator,
        model_sd_ops=video_decoder_sd_ops_for_checkpoint(str(path), diffusion_vae=True),
        module_ops=(op,),
    )
    return builder.build(device=torch.device("cpu"), dtype=torch.float32).eval()


def tile_config(tiling: dict) -> TileSizeConfig:
    return TileSizeConfig(**{axis: DimensionSizeConfig(tile_size=s, overlap=o) for axis, (s, o) in tiling.items()})


def decode(decoder: torch.nn.Module, latent: torch.Tensor, case: dict) -> torch.Tensor:
    generator = torch.Generator().manual_seed(case["seed"])
    with torch.no_grad():
        if case["tiling"] is None:
            return decoder(latent, generator=generator)
        chunks = list(decoder.tiled_decode(latent, tile_config(case["tiling"]), generator=generator))
    return torch.cat(chunks, dim=2)


def summary(name: str, latent: torch.Tensor, video: torch.Tensor) -> dict[str, torch.Tensor]:
    x = video.double()
    sums = torch.tensor([float(x.sum()), float(x.abs().sum()), float((x * x).sum())], dtype=torch.float64)
    sample = video[:, :, :, ::SAMPLE_STRIDE, ::SAMPLE_STRIDE].contiguous()
    prefix = f"golden.{name}."
    return {prefix + "latent": latent, prefix + "sample": sample, prefix + "sums": sums}


def main() -> None:
    out_dir = output_folder(__doc__.splitlines()[0])
    torch.manual_seed(SEED)
    generator = torch.Generator().manual_seed(SEED)
    tensors = file_tensors(random_weights(generator), generator)
    vae_path = out_dir / "diffusion_vae.safetensors"
    write_vae(tensors, vae_path, VAE_CONFIG, deterministic=True)

    golden: dict[str, torch.Tensor] = {}
    digests: dict[str, str] = {}
    videos: dict[str, torch.Tensor] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name, case in CASES.items():
            path = vae_path
            if case["overrides"]:
                path = Path(scratch) / f"{name}.safetensors"
                write_vae(tensors, path, vae_config(case["overrides"]), deterministic=False)
            decoder = load_reference(path, case["mode"])
            latent = torch.randn(case["latent"], generator=torch.Generator().manual_seed(case["seed"] + 1000))
            videos[name] = decode(decoder, latent, case)
            part = summary(name, latent, videos[name])
            digests[name] = sha256_of(part)
            golden.update(part)
            print(f"{name}: video {tuple(videos[name].shape)}, |x| max {float(videos[name].abs().max()):.3f}")
    seam = float((videos["tiled"] - videos["whole"]).abs().max() / videos["whole"].abs().max())
    print(f"reference tiled vs whole: max relative difference {seam:.3e}")
    golden_path = out_dir / "diffusion_vae_golden.safetensors"
    save_deterministic(golden, golden_path, {"generator": "tests/golden/make_ltx25_diffvae_goldens.py"})

    manifest = {
        **provenance(
            "tiny random LTX-2.5 diffusion video decoder, latents and the reference's decoded videos (float32, CPU)",
            "tests/golden/make_ltx25_diffvae_goldens.py",
        ),
        "seed": SEED,
        "model_version": MODEL_VERSION,
        "config": {"vae": VAE_CONFIG},
        "sample_stride": SAMPLE_STRIDE,
        "reference_tiled_vs_whole": seam,
        "cases": {name: {**case, "sha256": digests[name]} for name, case in CASES.items()},
        "files": {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (vae_path, golden_path)},
    }
    (out_dir / "diffusion_vae.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {vae_path.stat().st_size + golden_path.stat().st_size} bytes into {out_dir}")


if __name__ == "__main__":
    main()
