"""Warm end-to-end time of the two-stage pipeline (TI2VidTwoStagesPipeline), with a breakdown per stage.

As ``distilled_e2e.py`` does, the pipeline is created on header-only files that carry the real
LTX-2 config, and its model ledger is filled with full-size random-weight components built on the
GPU: the 19B transformer, the video VAE, the x2 upsampler, the audio VAE decoder and the vocoder.
The distilled LoRA is a random one with the real key set (every attention projection and
feed-forward linear of every block, ComfyUI naming, rank 384 by default), written to a file and
read by the pipeline as a real one is. Prompts are pre-filled in the ledger's cache (a repeated
prompt never runs Gemma), so "text encoding" is the cache hit.

Configurations (``--runs``): ``WxHxSTEPS:VARIANT``, a variant being ``bf16`` or ``fp8``
(fp8-scaled-mm), plus ``-compiled`` (``--compile``) or ``-default`` (``--compile`` left unset: the
package's default, which on CUDA compiles the passes of at least ``COMPILE_MIN_VIDEO_TOKENS`` video
tokens and runs smaller ones plain), and/or ``-cacheT`` (``--step-cache T``). Without ``-compiled`` or
``-default`` a run is plain (``--no-compile``). ``WxH:distilled-VARIANT`` (no step count: 8 + 3 fixed
sigmas) runs the distilled pipeline (DistilledPipeline) on the same random model, e.g.
``768x512:distilled-fp8-default``. Each run generates once with 2 steps (the distilled pipeline: once
in full) to warm up (every shape, graph variant and kernel the measured run meets), then once with
the full step count, the run reported: total, per stage, peak memory, compile time spent (warm-up),
which path each stage's passes took (``s1 6144 compiled; s2 24576 compiled``: stage, video tokens,
path), and how far its frames are from the first run of the same pipeline and size.

bf16 runs use the resident model with the LoRA swapped in and out in memory (what the ``keep``
policy does; the swap is timed separately, it is part of the stage times); FP8 runs hold two FP8
models, one with the LoRA fused before quantization (what the ledger builds for quantized weights);
the distilled pipeline's FP8 model is the one without it. Each FP8 model is made when a run first
needs it, from the bf16 weights without a second bf16 copy (one linear at a time): the plain one beside
the bf16 model (~35 + 18 GiB), the LoRA-fused one beside it too while a later run needs bf16 (~71 GiB:
an H200's size), else in place of the bf16 model (2 x ~18 GiB). So on an 80 GB card the two-stage FP8
runs come after every bf16 run.
Runs go in the order given; each one's row is printed (and the JSON rewritten) when it ends.

    python benchmarks/two_stage_e2e.py --json /tmp/e2e.json                      # GPU, full size
    python benchmarks/two_stage_e2e.py --tiny --device cpu                        # CPU self-check
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import json
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from distilled_e2e import (  # noqa: E402
    AUDIO_VAE_CONFIG,
    VAE_CONFIG,
    VOCODER_CONFIG,
    compile_seconds,
    describe_passes,
    on_device,
    record_passes,
)
from transformer_step import build_model, transformer_config  # noqa: E402

from ltx_pipelines.acceleration.executor import _ENGINES, forget_engines  # noqa: E402
from ltx_pipelines.acceleration.step_cache import StepCachedPasses  # noqa: E402

#: In order of importance (a time limit cuts the tail): the targets first, the baselines after.
DEFAULT_RUNS = (
    "768x512x30:bf16-compiled,1536x1024x40:bf16-compiled,768x512x30:fp8-compiled,1536x1024x40:fp8-compiled,"
    "768x512x30:bf16,768x512x30:fp8,768x512x30:bf16-compiled-cache0.05,1536x1024x40:bf16,1536x1024x40:fp8"
)
PROMPT = "A beautiful sunset over the ocean"
LORA_STRENGTH = 0.8


@dataclass(frozen=True)
class Run:
    width: int
    height: int
    steps: int | None  # None: the distilled pipeline's fixed sigmas
    fp8: bool
    compile: bool | None  # the pipeline's compile= (None: the package's default, by token count)
    step_cache: float | None
    label: str
    distilled: bool = False

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"

    @property
    def compiled(self) -> bool:
        return self.compile is True

    @property
    def compile_word(self) -> str:
        return {None: "default", True: "on", False: "off"}[self.compile]

    @classmethod
    def parse(cls, spec: str) -> "Run":
        usage = ("VARIANT is [distilled-]bf16|fp8, then -compiled or -default, and/or -cacheT; WxHxSTEPS for the "
                 "two-stage pipeline, WxH for the distilled one")  # fmt: skip
        geometry, _, variant = spec.partition(":")
        parts = variant.split("-")
        distilled = parts[0] == "distilled"
        if distilled:
            parts = parts[1:]
        try:
            dims = [int(d) for d in geometry.split("x")]
        except ValueError:
            raise SystemExit(f"bad run {spec!r}: {usage}") from None
        modifiers = parts[1:]
        if (
            not parts or parts[0] not in ("bf16", "fp8") or len(dims) != (2 if distilled else 3)
            or any(p not in ("compiled", "default") and not p.startswith("cache") for p in modifiers)
            or ("compiled" in modifiers and "default" in modifiers)
        ):  # fmt: skip
            raise SystemExit(f"bad run {spec!r}: {usage}")
        cache = next((float(p[5:]) for p in modifiers if p.startswith("cache")), None)
        compiles = True if "compiled" in modifiers else None if "default" in modifiers else False
        steps = None if distilled else dims[2]
        return cls(dims[0], dims[1], steps, parts[0] == "fp8", compiles, cache, spec, distilled)


# -- files and components ----------------------------------------------------------------------------


def model_config(tiny: bool) -> tuple[dict, dict]:
    """(checkpoint config, upsampler config): LTX-2's, or the smoke model's tiny ones."""
    if tiny:
        from ltx_pipelines.smoke_model import ltx_config, upsampler_config

        return ltx_config(), upsampler_config()
    config = {**transformer_config(tiny=False), "vae": VAE_CONFIG, "audio_vae": AUDIO_VAE_CONFIG,
              "vocoder": VOCODER_CONFIG}  # fmt: skip
    return config, {"in_channels": 128}


def lora_modules(config: dict) -> dict[str, tuple[int, int]]:
    """Module name -> (out, in) of every linear the distilled LoRA targets (the smoke LoRA's key set)."""
    from ltx_core.model.transformer import LTXModelConfigurator

    from ltx_pipelines.smoke_model import LORA_TARGETS

    with torch.device("meta"):
        model = LTXModelConfigurator.from_config(config)
    return {
        name: tuple(module.weight.shape)
        for name, module in sorted(model.named_modules())
        if isinstance(module, torch.nn.Linear)
        and name.startswith("transformer_blocks.")
        and name.endswith(LORA_TARGETS)
    }


def write_lora(path: Path, modules: dict[str, tuple[int, int]], rank: int, device: torch.device) -> None:
    """A random LoRA in ComfyUI naming: ``diffusion_model.<module>.lora_A/B.weight``, bf16."""
    g = torch.Generator(device=device).manual_seed(3)
    tensors = {}
    for name, (out_features, in_features) in modules.items():
        a = torch.randn(rank, in_features, device=device, generator=g) / in_features**0.5
        b = torch.randn(out_features, rank, device=device, generator=g) * (0.05 / rank**0.5)
        tensors[f"diffusion_model.{name}.lora_A.weight"] = a.to(torch.bfloat16).cpu()
        tensors[f"diffusion_model.{name}.lora_B.weight"] = b.to(torch.bfloat16).cpu()
    save_file(tensors, str(path))


def header_only_files(root: Path, config: dict, upsampler_config: dict, modules: dict) -> tuple[Path, Path, Path]:
    """A dev checkpoint holding the config and one real-shaped LoRA target (what the LoRA check reads)."""
    checkpoint = header_only_checkpoint(root, config, modules, distilled=False)
    upsampler = root / "upsampler-random.safetensors"
    save_file({"initial_conv.weight": torch.zeros(1)}, str(upsampler),
              metadata={"config": json.dumps(upsampler_config)})  # fmt: skip
    gemma = root / "gemma"
    gemma.mkdir()
    (gemma / "config.json").write_text(json.dumps({"text_config": {"hidden_size": 3840, "num_hidden_layers": 48}}))
    for file in ("tokenizer.model", "preprocessor_config.json"):
        (gemma / file).write_text("{}")
    save_file({"unused": torch.zeros(1)}, str(gemma / "model.safetensors"))
    return checkpoint, upsampler, gemma


def header_only_checkpoint(root: Path, config: dict, modules: dict, distilled: bool) -> Path:
    """The dev (or distilled) checkpoint file: the config and one real-shaped LoRA target."""
    name, (out_features, in_features) = min(modules.items(), key=lambda item: item[1][0] * item[1][1])
    checkpoint = root / f"ltx-2-19b-{'distilled' if distilled else 'dev'}-random.safetensors"
    save_file(
        {f"model.diffusion_model.{name}.weight": torch.zeros(out_features, in_features, dtype=torch.bfloat16)},
        str(checkpoint),
        metadata={"config": json.dumps(config), "model_version": "2.0.0", "distilled": str(distilled).lower()},
    )  # fmt: skip
    return checkpoint


def build_components(config: dict, upsampler_config: dict, device: torch.device, dtype: torch.dtype) -> dict:
    """Everything but the transformer, by ledger key: built once, shared by the bf16 and FP8 pipelines."""
    from ltx_core.model.audio_vae import AudioDecoderConfigurator, VocoderConfigurator
    from ltx_core.model.upsampler import LatentUpsamplerConfigurator
    from ltx_core.model.video_vae import VideoDecoderConfigurator, VideoEncoderConfigurator

    return {
        ("video_decoder",): on_device(VideoDecoderConfigurator, config, device, dtype),
        ("video_encoder",): on_device(VideoEncoderConfigurator, config, device, dtype),
        ("spatial_upsampler",): on_device(LatentUpsamplerConfigurator, upsampler_config, device, dtype),
        ("audio_decoder",): on_device(AudioDecoderConfigurator, config, device, dtype),
        ("vocoder",): on_device(VocoderConfigurator, config, device, torch.float32),
    }


def cache_prompts(ledger: object, config: dict, device: torch.device, dtype: torch.dtype) -> None:
    """The prompt and the default negative prompt, as if encoded before (a repeated prompt skips Gemma)."""
    from ltx_pipelines.engine.guidance import PromptEmbeddings
    from ltx_pipelines.utils.constants import DEFAULT_NEGATIVE_PROMPT

    g = torch.Generator(device=device).manual_seed(0)
    width = int(config["transformer"]["caption_channels"])
    for prompt in (PROMPT, DEFAULT_NEGATIVE_PROMPT):
        context = torch.randn(1, 1024, width, device=device, dtype=dtype, generator=g)
        ledger.prompt_cache[prompt] = PromptEmbeddings(context, context)


def fp8_model(base: torch.nn.Module, lora_path: Path | None, strength: float, in_place: bool) -> torch.nn.Module:
    """An fp8-scaled-mm copy of ``base`` (with the LoRA fused before quantization when ``lora_path`` is given).

    ``in_place``: ``base`` itself becomes it (its bf16 weights go). Otherwise the copy shares ``base``'s float
    weights until each is quantized, so no second bf16 model is ever made. One linear at a time: a fused weight
    lives only while it is quantized.
    """
    from safetensors import safe_open

    from ltx_pipelines.models.fp8 import FP8ScaledLinear, is_fp8_target

    def targets(model: torch.nn.Module) -> list[tuple[str, torch.nn.Linear]]:
        return [(name, module) for name, module in model.velocity_model.named_modules()
                if isinstance(module, torch.nn.Linear) and is_fp8_target(name)]  # fmt: skip

    if in_place:
        forget_engines(base)  # compiled code and CUDA graphs of the bf16 weights
        model = base
    else:
        shared = {id(module.weight): module.weight for _, module in targets(base)}
        engines = base.__dict__.pop(_ENGINES, None)
        try:
            model = copy.deepcopy(base, shared)  # the target weights are the same tensors, not copies
        finally:
            if engines is not None:
                base.__dict__[_ENGINES] = engines
    opened = safe_open(str(lora_path), framework="pt") if lora_path is not None else contextlib.nullcontext()
    with opened as lora, torch.no_grad():
        keys = set(lora.keys()) if lora is not None else set()
        for name, linear in targets(model):
            a_key = f"diffusion_model.{name}.lora_A.weight"
            if a_key in keys:
                weight = linear.weight
                a = lora.get_tensor(a_key).to(weight.device, torch.float32)
                b = lora.get_tensor(a_key.replace("lora_A", "lora_B")).to(weight.device, torch.float32)
                fused = (weight.float() + strength * (b @ a)).to(weight.dtype)
                linear.weight = torch.nn.Parameter(fused, requires_grad=False)  # this copy's module only
            parent, _, attr = name.rpartition(".")
            setattr(model.velocity_model.get_submodule(parent), attr, FP8ScaledLinear.from_linear(linear))
    return model


# -- running ------------------------------------------------------------------------------------------


class SwapTimer:
    """Accumulates the time the ledger spends adding and removing LoRAs in memory (bf16 keep policy)."""

    def __init__(self, ledger: object, device: torch.device):
        self.seconds = 0.0
        swapper = ledger._lora_swapper
        original = swapper.set

        def timed_set(model: torch.nn.Module, loras: tuple) -> None:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            started = time.perf_counter()
            original(model, loras)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            self.seconds += time.perf_counter() - started

        swapper.set = timed_set  # instance attribute of this benchmark's own ledger only


def generate(pipeline: object, run: Run, steps: int | None, frames: int, out: Path) -> object:
    """One generation; ``steps`` None: the distilled pipeline (fixed sigmas) or the run's own count."""
    from ltx_core.model.video_vae import TilingConfig

    extra = {} if run.distilled else {"num_inference_steps": steps or run.steps}
    return pipeline(prompt=PROMPT, output_path=str(out), height=run.height, width=run.width,
                    num_frames=frames, tiling_config=TilingConfig.default(), overwrite=True, **extra)  # fmt: skip


def measure(pipeline: object, run: Run, frames: int, out: Path, device: torch.device, swaps: SwapTimer,
            references: dict) -> dict:  # fmt: skip
    from ltx_pipelines.acceleration.options import AccelerationOptions

    pipeline.acceleration = AccelerationOptions(compile=run.compile, step_cache=run.step_cache)
    executors = pipeline.bench_executors
    executors.clear()
    compiled_before = compile_seconds(pipeline)
    started = time.perf_counter()
    generate(pipeline, run, None if run.distilled else 2, frames, out)  # warm-up: every shape and variant
    warmup_s = time.perf_counter() - started
    warmup_passes = describe_passes(executors)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    swaps.seconds = 0.0
    executors.clear()
    compiled_warm = compile_seconds(pipeline)
    started = time.perf_counter()
    result = generate(pipeline, run, run.steps, frames, out)
    total = time.perf_counter() - started
    row = {
        "run": run.label, "pipeline": "distilled" if run.distilled else "two-stage", "size": run.size,
        "steps": run.steps, "fp8": run.fp8, "compile": run.compile_word, "total_s": round(total, 2),
        "breakdown_s": {k: round(v, 3) for k, v in result.timings.items()},
        "lora_swap_s": round(swaps.seconds, 3),
        "peak_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 1) if device.type == "cuda" else 0.0,
        "warmup_run_s": round(warmup_s, 1), "compile_s": round(compiled_warm - compiled_before, 1),
        "compile_s_measured_run": round(compile_seconds(pipeline) - compiled_warm, 1),
        "passes": describe_passes(executors),
    }  # fmt: skip
    if warmup_passes != row["passes"]:
        row["passes_warmup"] = warmup_passes
    cached = [e.inner for e in executors if isinstance(e.inner, StepCachedPasses)]
    if cached:
        run_blocks, reused = sum(e.blocks_run for e in cached), sum(e.blocks_reused for e in cached)
        row["step_cache_blocks_reused_pct"] = round(100 * reused / max(run_blocks + reused, 1), 1)
    reference = references.setdefault((run.distilled, run.size), (run.label, result.frames))
    if reference[0] != run.label:
        diff = (result.frames.float() - reference[1].float()).abs()
        mse = float((diff**2).mean())
        row["vs"] = reference[0]
        row["frames_mean_abs_diff"] = round(float(diff.mean()), 3)
        row["frames_psnr_db"] = round(10 * torch.log10(torch.tensor(255.0**2 / max(mse, 1e-12))).item(), 2)
    print(json.dumps(row), flush=True)
    return row


class Pipelines:
    """The pipelines the runs ask for, made on demand around one random model: bf16 (the resident model, the
    two-stage one swapping its LoRA in memory) and FP8 (two FP8 models: stage 1 / distilled, and LoRA-fused)."""

    def __init__(self, files: tuple, distilled_checkpoint: Path, lora: object, config: dict, components: dict,
                 base: torch.nn.Module, lora_path: Path, device: torch.device, dtype: torch.dtype) -> None:  # fmt: skip
        self.files, self.distilled_checkpoint, self.lora, self.config = files, distilled_checkpoint, lora, config
        self.components, self.base, self.lora_path, self.device, self.dtype = components, base, lora_path, device, dtype
        self.fp8_plain: torch.nn.Module | None = None  # FP8, no LoRA: two-stage stage 1, distilled
        self.fp8_lora: torch.nn.Module | None = None  # FP8, LoRA fused before quantization: two-stage stage 2
        self._made: dict[tuple[bool, bool], tuple[object, SwapTimer]] = {}  # (distilled, fp8) -> pipeline

    def get(self, run: Run, bf16_later: bool) -> tuple[object, SwapTimer]:
        """The pipeline for ``run``; ``bf16_later``: whether a later run still needs the bf16 model."""
        key = (run.distilled, run.fp8)
        self._restore_bf16()  # a two-stage bf16 run leaves its LoRA applied; the other pipelines' ledgers don't know
        if run.fp8 and self.fp8_plain is None:
            self.fp8_plain = self._fp8_model(lora=False, keep_bf16=True)
        if run.fp8 and not run.distilled and self.fp8_lora is None:
            self.fp8_lora = self._fp8_model(lora=True, keep_bf16=bf16_later)
        if key not in self._made:
            if not run.fp8 and self.base is None:
                raise SystemExit(f"{run.label}: the bf16 model was made FP8 in place; put the bf16 runs first")
            pipeline = self._make(run.distilled, run.fp8)
            ledger = pipeline.ledger
            ledger._models.update(self.components)
            cache_prompts(ledger, self.config, self.device, self.dtype)
            if run.fp8:
                # the keys the ledger looks quantized models up by: stage 1 asks with no extra LoRA, stage 2 with it
                ledger._models[("transformer", ("extra_loras", ()))] = self.fp8_plain
                if not run.distilled:
                    ledger._models[("transformer", ("extra_loras", (self.lora,)))] = self.fp8_lora
            else:
                ledger._models[("transformer",)] = self.base
            self._made[key] = (pipeline, SwapTimer(ledger, self.device))
        return self._made[key]

    def _restore_bf16(self) -> None:
        if self.base is not None:
            for (_, fp8), (pipeline, _) in self._made.items():
                if not fp8:
                    pipeline.ledger._lora_swapper.restore(self.base.velocity_model)

    def _make(self, distilled: bool, fp8: bool) -> object:
        from ltx_pipelines import DistilledPipeline, TI2VidTwoStagesPipeline
        from ltx_pipelines.models.fp8 import fp8_scaled_mm_policy

        checkpoint, upsampler, gemma = self.files
        common = {"spatial_upsampler_path": upsampler, "gemma_root": gemma, "device": self.device,
                  "dtype": self.dtype, "memory_policy": "keep",
                  "quantization": fp8_scaled_mm_policy() if fp8 else None}  # fmt: skip
        if distilled:
            pipeline = DistilledPipeline(checkpoint_path=self.distilled_checkpoint, **common)
        else:
            pipeline = TI2VidTwoStagesPipeline(checkpoint_path=checkpoint, distilled_lora=self.lora, **common)
        record_passes(pipeline)  # each stage's executor and the token counts it ran; this pipeline object only
        return pipeline

    def _fp8_model(self, lora: bool, keep_bf16: bool) -> torch.nn.Module:
        """An FP8 model from the bf16 one: as is (stage 1, distilled) or with the LoRA fused first (stage 2).

        Each is made when a run first needs it, so a bf16 run between holds one FP8 model beside the bf16 one, not
        two. ``keep_bf16`` False: the bf16 model becomes this one in place, and the bf16 pipelines go.
        """
        started = time.perf_counter()
        self._restore_bf16()
        lora_path = self.lora_path if lora else None
        if keep_bf16:
            model = fp8_model(self.base, lora_path, LORA_STRENGTH, in_place=False)
        else:
            for key in [k for k in self._made if not k[1]]:
                del self._made[key]  # their ledgers, executors and LoRA backups hold the bf16 model
            base, self.base = self.base, None
            model = fp8_model(base, lora_path, LORA_STRENGTH, in_place=True)
            del base
            gc.collect()
        held = ""
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
            held = f"; {torch.cuda.memory_allocated(self.device) / 2**30:.1f} GiB allocated now"
        print(f"# FP8 transformer{' (LoRA fused)' if lora else ''} in {time.perf_counter() - started:.1f} s "
              f"({'beside the bf16 model' if keep_bf16 else 'the bf16 model quantized in place'}{held})", flush=True)  # fmt: skip
        return model


def table(rows: list[dict]) -> str:
    """The runs as one markdown table."""
    header = ("| run | total s | text | stage 1 | upsample | stage 2 | decode video | decode audio | write mp4 | "
              "LoRA swap (in stages) | peak GiB | compile s (warm-up) | passes (stage, video tokens, path) | "
              "step cache reused | frames vs first (PSNR dB) |")  # fmt: skip
    lines = [header, "|---" * 15 + "|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['run']} | failed: {r['error']} |" + " |" * 13)
            continue
        b = r["breakdown_s"]
        cells = [b.get(k, 0.0) for k in ("text encoding", "stage 1", "upsample", "stage 2", "decode video",
                                          "decode audio", "write mp4")]  # fmt: skip
        psnr = f"{r['frames_psnr_db']} vs {r['vs']}" if "vs" in r else "-"
        reused = f"{r['step_cache_blocks_reused_pct']} %" if "step_cache_blocks_reused_pct" in r else "-"
        lines.append(f"| {r['run']} | **{r['total_s']}** | " + " | ".join(f"{c:.2f}" for c in cells)
                     + f" | {r['lora_swap_s']:.2f} | {r['peak_gib']} | {r['compile_s']} | {r.get('passes', '-')} | "
                     f"{reused} | {psnr} |")  # fmt: skip
    return "\n".join(lines)


def compile_default_from(tokens: int, device_type: str) -> None:
    """Self-check knob: make the default (``-default`` runs) compile on this device from ``tokens`` video tokens
    (the CPU's default never compiles), so that a tiny CPU run goes through the by-token-count executor."""
    from ltx_pipelines.acceleration import executor, options

    options.COMPILE_BY_DEFAULT[device_type] = True
    options.COMPILE_MIN_VIDEO_TOKENS = executor.COMPILE_MIN_VIDEO_TOKENS = tokens


def main() -> None:  # noqa: PLR0915 - one straight measurement script
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tiny", action="store_true", help="The smoke model's sizes, small videos: a CPU self-check.")
    parser.add_argument("--runs", default=None, help=f"WxHxSTEPS:VARIANT list (default: {DEFAULT_RUNS}).")
    parser.add_argument("--frames", type=int, default=None, help="Frames (default 121; tiny 9).")
    parser.add_argument("--lora-rank", type=int, default=None, help="Distilled LoRA rank (default 384; tiny 4).")
    parser.add_argument("--out-dir", default=None, help="Where the mp4s go (default: a temporary folder).")
    parser.add_argument("--default-compiles-from", type=int, default=None, metavar="TOKENS",
                        help="Self-check only: the -default runs compile from TOKENS video tokens on this device "
                             "(also the CPU, whose default never compiles); unset: the package's policy.")
    parser.add_argument("--keep-going", action="store_true",
                        help="A run that fails (out of memory, say) gets a row with its error; the next runs go on.")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    from ltx_pipelines.engine.model_ledger import comfy_lora

    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    if args.default_compiles_from is not None:
        compile_default_from(args.default_compiles_from, device.type)
    default_runs = "128x128x2:bf16,128x128x2:bf16-compiled,128x128x2:bf16-cache0.5,128x128x2:fp8-compiled" \
        if args.tiny else DEFAULT_RUNS  # fmt: skip
    runs = [Run.parse(spec) for spec in (args.runs or default_runs).split(",")]
    frames = args.frames or (9 if args.tiny else 121)
    rank = args.lora_rank or (4 if args.tiny else 384)
    config, upsampler_config = model_config(args.tiny)
    rows: list[dict] = []
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        out_dir = Path(args.out_dir) if args.out_dir else root
        started = time.perf_counter()
        modules = lora_modules(config)
        files = header_only_files(root, config, upsampler_config, modules)
        distilled_checkpoint = header_only_checkpoint(root, config, modules, distilled=True)
        lora_path = root / "ltx-2-19b-distilled-lora-random.safetensors"
        write_lora(lora_path, modules, rank, device)
        lora = comfy_lora(lora_path, LORA_STRENGTH)
        base = build_model(config, device, dtype, seed=0)
        print(f"# built the random components and a rank-{rank} LoRA on {len(modules)} linears in "
              f"{time.perf_counter() - started:.1f} s", flush=True)  # fmt: skip
        components = build_components(config, upsampler_config, device, dtype)
        pipelines = Pipelines(files, distilled_checkpoint, lora, config, components, base, lora_path, device, dtype)
        del base
        references: dict = {}
        for i, run in enumerate(runs):
            bf16_later = any(not later.fp8 for later in runs[i:])
            try:
                pipeline, swaps = pipelines.get(run, bf16_later)
                name = f"{'distilled' if run.distilled else 'two-stage'}-{run.size}.mp4"
                rows.append(measure(pipeline, run, frames, out_dir / name, device, swaps, references))
            except Exception as e:
                if not args.keep_going:
                    raise
                traceback.print_exc()
                rows.append({"run": run.label, "error": f"{type(e).__name__}: {str(e).strip()[:300]}"})
                print(json.dumps(rows[-1]), flush=True)
            finally:  # the FP8 switch may turn the bf16 model into an FP8 one in place: hold nothing between runs
                pipeline = swaps = None
                gc.collect()
                if device.type == "cuda":
                    torch.cuda.empty_cache()
            if args.json:  # after every run: a run cut short by a time limit keeps what came before
                report = {"gpu": gpu, "torch": torch.__version__, "frames": frames, "tiny": args.tiny, "rows": rows}
                Path(args.json).write_text(json.dumps(report, indent=2))
    print(f"# {gpu}, torch {torch.__version__}, {frames} frames")
    print()
    print(table(rows))


if __name__ == "__main__":
    main()
