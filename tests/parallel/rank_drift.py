"""Where do 1 and N ranks part? Record every stage of one generation, compare two records; and the one-process
arithmetic of N ranks' token shares (``text_attention_in_chunks``), which the tests use as an exact reference.

    python tests/parallel/rank_drift.py run BUNDLE OUT.pt [--query-chunks N | --perturb EPS] [--two-stage]
    torchrun --standalone --nproc-per-node 2 tests/parallel/rank_drift.py run BUNDLE OUT.pt
    python tests/parallel/rank_drift.py compare A.pt B.pt

``run`` generates the issue's request (256x384, 17 frames, seed 7; ``--size HxWxF`` for another) with
the distilled pipeline (``--two-stage``: the two-stage one, 4 steps, distilled LoRA 0.8) and records,
in float32: each distilled step's input latents and transformer output (x0) of both modalities, each
stage's latents, the upsampler's output, the frames and the waveform. ``compare`` prints the largest
difference of each record, in order: where the paths part, and whether the drift grows.

``--query-chunks N``: one process, but the text cross-attentions of the distilled passes run on N
end-padded chunks of their queries, as N ranks' token shares run them (Ulysses). On the CPU that is
the one kernel of a sharded pass whose rounding depends on how many rows it gets (scaled-dot-product
attention on 9 vs 18 audio queries differs by ~6e-8); everything else a rank computes - padding,
RoPE, masks, noise, head-sharded attention, linear layers, the decode - gives one process's bits. So
this run gives N ranks' record bit for bit, and any other difference would be a bug.

``--perturb EPS`` adds EPS * randn (seed 1) to the first step's video x0: a rounding-sized change of
one process, to compare with N ranks' drift (measured: the same size at every later step, no growth).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F

from ltx_pipelines.engine import guidance, pipeline_base
from ltx_pipelines.smoke_model import SmokeBundle

REQUEST = dict(prompt="A beautiful sunset over the ocean", height=256, width=384, num_frames=17, seed=7)
TEXT_ATTENTIONS = ("attn2", "audio_attn2")


class QueryChunks:
    """An attention function run on ``parts`` end-padded chunks of the queries (one call each), as ranks do."""

    def __init__(self, attention: Callable, parts: int):
        self.attention = attention
        self.parts = parts

    def __call__(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        total = q.shape[1]
        chunk = -(-total // self.parts)
        padded = F.pad(q, (0, 0, 0, chunk * self.parts - total))
        return torch.cat([self.attention(c, k, v, heads, mask) for c in padded.split(chunk, 1)], 1)[:, :total]


@contextmanager
def text_attention_in_chunks(velocity_model: torch.nn.Module, parts: int) -> Iterator[None]:
    """Within the block, the text cross-attentions of ``velocity_model`` run on ``parts`` query chunks."""
    saved = []
    try:
        for block in velocity_model.transformer_blocks:
            for module in filter(None, (getattr(block, name, None) for name in TEXT_ATTENTIONS)):
                saved.append((module, module.attention_function))
                module.attention_function = QueryChunks(module.attention_function, parts)
        yield
    finally:
        for module, original in reversed(saved):
            module.attention_function = original


@contextmanager
def distilled_passes_in_chunks(parts: int) -> Iterator[None]:
    """Within the block (this process), every distilled pass - those Ulysses shards - uses ``parts`` query chunks."""
    real = guidance.ConditionalDenoiser.__call__
    if parts <= 1:
        yield
        return

    def call(denoiser, video, audio, sigmas, step):  # noqa: ANN001, ANN202
        with text_attention_in_chunks(denoiser.transformer.velocity_model, parts):
            return real(denoiser, video, audio, sigmas, step)

    guidance.ConditionalDenoiser.__call__ = call
    try:
        yield
    finally:
        guidance.ConditionalDenoiser.__call__ = real


class Recorder:
    """Wraps the pipeline's pieces (this process only) and keeps what they see, in call order."""

    def __init__(self, perturb: float):
        self.records: dict[str, torch.Tensor] = {}
        self.perturb = perturb
        self.stage = 0

    def keep(self, name: str, tensor: torch.Tensor | None) -> None:
        if tensor is not None:
            self.records[name] = tensor.detach().float().cpu().clone()

    def step(self, real: Callable) -> Callable:
        def call(denoiser, video, audio, sigmas, step):  # noqa: ANN001, ANN202
            self.stage += step == 0
            tag = f"s{self.stage}.step{step}"
            self.keep(f"{tag}.in_video", video.latent)
            self.keep(f"{tag}.in_audio", audio.latent if audio is not None else None)
            v, a = real(denoiser, video, audio, sigmas, step)
            if self.perturb and not any(".x0_" in name for name in self.records):
                v = v + self.perturb * torch.randn(v.shape, generator=torch.Generator().manual_seed(1)).to(v)
            self.keep(f"{tag}.x0_video", v)
            self.keep(f"{tag}.x0_audio", a)
            return v, a

        return call

    def install(self) -> None:
        """Distilled steps (stage ``s1`` is the first distilled stage), stage outputs and the upsampler."""
        real_stage, real_upsample = pipeline_base.denoise_stage, pipeline_base.upsample_video_latent

        def stage(**kwargs):  # noqa: ANN003, ANN202
            out = real_stage(**kwargs)
            self.keep(f"s{self.stage}.out_video", out.video)
            self.keep(f"s{self.stage}.out_audio", out.audio)
            return out

        def upsample(ledger, latent):  # noqa: ANN001, ANN202
            out = real_upsample(ledger, latent)
            self.keep("upsampled", out)
            return out

        guidance.ConditionalDenoiser.__call__ = self.step(guidance.ConditionalDenoiser.__call__)
        pipeline_base.denoise_stage, pipeline_base.upsample_video_latent = stage, upsample


def generate(bundle: SmokeBundle, two_stage: bool, request: dict):  # noqa: ANN201
    """One generation of ``request`` (frames kept, nothing written)."""
    if two_stage:
        from ltx_pipelines.engine.model_ledger import comfy_lora
        from ltx_pipelines.ti2vid_two_stages import TI2VidTwoStagesPipeline

        pipeline = TI2VidTwoStagesPipeline(
            checkpoint_path=bundle.checkpoint, distilled_lora=comfy_lora(bundle.distilled_lora, 0.8),
            spatial_upsampler_path=bundle.spatial_upsampler, gemma_root=bundle.gemma_root,
        )  # fmt: skip
        return pipeline(**request, num_inference_steps=4)
    from ltx_pipelines.distilled import DistilledPipeline

    return DistilledPipeline(bundle.distilled_checkpoint, bundle.gemma_root, bundle.spatial_upsampler)(**request)


def run(args: argparse.Namespace) -> None:
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    torch.set_num_threads(1)
    if distributed:
        dist.init_process_group("gloo")
    recorder = Recorder(args.perturb)
    request = dict(REQUEST)
    if args.size:
        request.update(zip(("height", "width", "num_frames"), map(int, args.size.split("x")), strict=True))
    with distilled_passes_in_chunks(args.query_chunks):
        recorder.install()  # inside: records what the chunked passes return
        result = generate(SmokeBundle.at(args.bundle), args.two_stage, request)
    recorder.keep("frames", result.frames)
    recorder.keep("waveform", result.audio.waveform)
    if not distributed or dist.get_rank() == 0:
        torch.save(recorder.records, args.out)
    if distributed:
        dist.destroy_process_group()


def compare(a_path: Path, b_path: Path) -> None:
    """Largest absolute difference per record, and relative to the record's largest value; frames: how many moved."""
    a, b = torch.load(a_path), torch.load(b_path)
    for name, x in a.items():
        if name not in b:
            print(f"{name:20s} missing in {b_path}")
            continue
        diff = (x - b[name]).abs()
        line = f"{name:20s} max abs {diff.max():.3e}  rel {diff.max() / x.abs().max().clamp_min(1e-30):.3e}"
        if name == "frames":
            line += f"  values moved {(diff > 0).float().mean():.4%}, by >4 levels {(diff > 4).float().mean():.4%}"
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("bundle", type=Path)
    r.add_argument("out", type=Path)
    r.add_argument("--two-stage", action="store_true")
    r.add_argument("--size", default="", help="HEIGHTxWIDTHxFRAMES (default 256x384x17)")
    r.add_argument("--query-chunks", type=int, default=1)
    r.add_argument("--perturb", type=float, default=0.0)
    c = sub.add_parser("compare")
    c.add_argument("a", type=Path)
    c.add_argument("b", type=Path)
    args = parser.parse_args()
    run(args) if args.command == "run" else compare(args.a, args.b)


if __name__ == "__main__":
    main()
