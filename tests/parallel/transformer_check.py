"""Run under torchrun: the parallel pass executors against the single-process transformer, on each rank.

    torchrun --standalone --nproc-per-node N tests/parallel/transformer_check.py SMOKE_BUNDLE OUT.json

Every rank computes the single-process reference itself (the default executor, no collectives),
then each parallel executor; rank 0 writes, per case, whether every rank's result equals the
reference bit for bit and the largest difference. A Ulysses case is also compared with one process
running the same executor with its text cross-attentions on N query chunks, as the ranks' token
shares run them (``rank_drift.text_attention_in_chunks``): ``exact_chunked``. ``test_guidance_split``
and ``test_ulysses`` read the report.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import torch
import torch.distributed as dist
from ltx_core.components.noisers import GaussianNoiser
from ltx_core.guidance.perturbations import Perturbation, PerturbationConfig, PerturbationType

from ltx_pipelines.engine.guidance import ISOLATED_MODALITIES
from ltx_pipelines.engine.model_ledger import ModelLedger
from ltx_pipelines.engine.prompts import encode_prompts
from ltx_pipelines.engine.stages import VideoGeometry, audio_latent_tools, prepare_state, video_latent_tools
from ltx_pipelines.models.transformer_blocks import EagerBlocks
from ltx_pipelines.models.transformer_passes import GuidancePass, TransformerPasses
from ltx_pipelines.parallel.guidance_split import GuidanceSplit, model_heads
from ltx_pipelines.parallel.process_group import ParallelContext
from ltx_pipelines.parallel.ulysses import UlyssesBlocks
from ltx_pipelines.smoke_model import SmokeBundle
from rank_drift import text_attention_in_chunks

#: 32x96 pixels, 17 frames: 9 video tokens and 18 audio tokens (odd: the Ulysses padding is exercised).
GEOMETRY = VideoGeometry(32, 96, 17, 24.0)
STG_BLOCK = 29


def states(ledger: ModelLedger, masked: bool):  # noqa: ANN201
    generator = torch.Generator().manual_seed(0)
    fmt = ledger.latent_format
    noiser = GaussianNoiser(generator)
    video = prepare_state(video_latent_tools(GEOMETRY, fmt), [], noiser, 1.0, ledger.device, ledger.dtype)
    audio = prepare_state(audio_latent_tools(GEOMETRY, fmt), [], noiser, 1.0, ledger.device, ledger.dtype)
    if masked:  # a self-attention mask, as keyframe conditioning builds (values in [0, 1], some zeros)
        tokens = video.latent.shape[1]
        mask = torch.rand(1, tokens, tokens, generator=generator)
        video = replace(video, attention_mask=torch.where(mask < 0.2, 0.0, mask))
    return video, audio


def passes(ledger: ModelLedger) -> dict[str, GuidancePass]:
    positive, negative = encode_prompts(ledger, ["a red car", "blurry"])
    stg = PerturbationConfig([Perturbation(PerturbationType.SKIP_VIDEO_SELF_ATTN, [STG_BLOCK]),
                              Perturbation(PerturbationType.SKIP_AUDIO_SELF_ATTN, [STG_BLOCK])])  # fmt: skip
    return {
        "cond": GuidancePass("cond", positive, PerturbationConfig.empty()),
        "uncond": GuidancePass("uncond", negative, PerturbationConfig.empty()),
        "perturbed": GuidancePass("perturbed", positive, stg),
        "isolated": GuidancePass("isolated", positive, ISOLATED_MODALITIES),
    }


def compare(got: dict, want: dict) -> dict:
    assert got.keys() == want.keys(), (sorted(got), sorted(want))
    exact, worst, scale = True, 0.0, 0.0
    for name in want:
        for g, w in zip(got[name], want[name], strict=True):
            exact &= torch.equal(g, w)
            worst = max(worst, (g.float() - w.float()).abs().max().item())
            scale = max(scale, w.float().abs().max().item())
    return {"exact": exact, "max_abs": worst, "max_ref": scale}


def main() -> None:
    bundle, out = SmokeBundle.at(Path(sys.argv[1])), Path(sys.argv[2])
    dist.init_process_group("gloo")
    torch.set_num_threads(1)
    ctx = ParallelContext(dist.get_rank(), dist.get_world_size(), "gloo", torch.device("cpu"))
    everyone = tuple(range(ctx.world_size))
    ledger = ModelLedger(bundle.checkpoint, bundle.gemma_root)
    transformer = ledger.get("transformer")
    named = passes(ledger)
    sigma = torch.tensor(0.8)
    subsets = {
        "4 passes": ["cond", "uncond", "perturbed", "isolated"],
        "3 passes": ["cond", "uncond", "perturbed"],
        "2 passes": ["cond", "uncond"],
        "1 pass": ["cond"],
    }
    ulysses = {
        "pass-major": dict(),
        "block-major": dict(block_major=True),
        "batched": dict(batch_passes=True),
        "no STG prefix": dict(share_stg_prefix=False),
    }
    report: dict[str, dict] = {}
    with torch.inference_mode():
        for masked in (False, True) if ctx.world_size <= 2 else (False,):  # (4 ranks: the plans, not the masks)
            video, audio = states(ledger, masked)
            tag = " (masked)" if masked else ""
            for label, names in subsets.items():
                chosen = [named[n] for n in names]
                want = TransformerPasses(transformer)(video, audio, sigma, chosen)
                got = GuidanceSplit(TransformerPasses(transformer), ctx)(video, audio, sigma, chosen)
                report[f"split/{label}{tag}"] = compare(got, want)
            chosen = list(named.values())
            want = TransformerPasses(transformer)(video, audio, sigma, chosen)
            if any(h % ctx.world_size for h in model_heads(transformer)):
                continue  # Ulysses over all ranks needs the heads to divide (the split above still uses sub-groups)
            for label, options in ulysses.items():
                engine = UlyssesBlocks(EagerBlocks(transformer), ctx, everyone)
                executor = TransformerPasses(transformer, engine=engine, **options)
                reference = want if options.get("share_stg_prefix", True) else TransformerPasses(
                    transformer, share_stg_prefix=False)(video, audio, sigma, chosen)  # fmt: skip
                got = executor(video, audio, sigma, chosen)
                case = report[f"ulysses/{label}{tag}"] = compare(got, reference)
                with text_attention_in_chunks(transformer.velocity_model, ctx.world_size):
                    chunked = TransformerPasses(transformer, engine=EagerBlocks(transformer), **options)
                    case["exact_chunked"] = compare(got, chunked(video, audio, sigma, chosen))["exact"]
    reports: list[dict] = [None] * ctx.world_size  # type: ignore[list-item]
    dist.all_gather_object(reports, report)
    if ctx.rank == 0:
        merged = {
            case: {
                "exact": all(r[case]["exact"] for r in reports),
                "max_abs": max(r[case]["max_abs"] for r in reports),
                "max_ref": max(r[case]["max_ref"] for r in reports),
                **({"exact_chunked": all(r[case].get("exact_chunked") for r in reports)}
                   if "exact_chunked" in report[case] else {}),
            }
            for case in report
        }
        tokens = {"video": video.latent.shape[1], "audio": audio.latent.shape[1]}
        out.write_text(json.dumps({"world_size": ctx.world_size, "tokens": tokens, "cases": merged}, indent=1))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
