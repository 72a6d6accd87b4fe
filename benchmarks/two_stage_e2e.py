"""Warm end-to-end time of the two-stage pipeline (TI2VidTwoStagesPipeline), with a breakdown per stage.

As ``distilled_e2e.py`` does, the pipeline is created on header-only files that carry the real
LTX-2 config, and its model ledger is filled with full-size random-weight components built on the
GPU: the 19B transformer, the video VAE, the x2 upsampler, the audio VAE decoder and the vocoder.
The distilled LoRA is a random one with the real key set (every attention projection and
feed-forward linear of every block, ComfyUI naming, rank 384 by default), written to a file and
read by the pipeline as a real one is. Prompts are pre-filled in the ledger's cache (a repeated
prompt never runs Gemma), so "text encoding" is the cache hit.

Configurations (``--runs``): ``WxHxSTEPS:VARIANT``, a variant being ``bf16`` or ``fp8``
(fp8-scaled-mm), plus ``-compiled`` (``--compile``) and/or ``-cacheT`` (``--step-cache T``). Each run
generates once with 2 steps to warm up (every shape, graph variant and kernel the measured run
meets), then once with the full step count, the run reported: total, per stage, peak memory,
compile time spent (warm-up), and how far its frames are from the first variant of the same size.

bf16 runs use the resident model with the LoRA swapped in and out in memory (what the ``keep``
policy does; the swap is timed separately, it is part of the stage times); FP8 runs hold two FP8
copies, one with the LoRA fused before quantization (what the ledger builds for quantized weights).
Runs go in the order given; each one's row is printed (and the JSON rewritten) when it ends.

    python benchmarks/two_stage_e2e.py --json /tmp/e2e.json                      # GPU, full size
    python benchmarks/two_stage_e2e.py --tiny --device cpu                        # CPU self-check
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from distilled_e2e import AUDIO_VAE_CONFIG, VAE_CONFIG, VOCODER_CONFIG, on_device  # noqa: E402
from transformer_step import build_model, transformer_config  # noqa: E402

from ltx_pipelines.acceleration.executor import copy_without_engines  # noqa: E402
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
    steps: int
    fp8: bool
    compiled: bool
    step_cache: float | None
    label: str

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"

    @classmethod
    def parse(cls, spec: str) -> "Run":
        geometry, variant = spec.split(":")
        width, height, steps = map(int, geometry.split("x"))
        parts = variant.split("-")
        if parts[0] not in ("bf16", "fp8") or any(p != "compiled" and not p.startswith("cache") for p in parts[1:]):
            raise SystemExit(f"bad run {spec!r}: VARIANT is bf16|fp8, then -compiled and/or -cacheT")
        cache = next((float(p[5:]) for p in parts[1:] if p.startswith("cache")), None)
        return cls(width, height, steps, parts[0] == "fp8", "compiled" in parts, cache, spec)


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
    name, (out_features, in_features) = min(modules.items(), key=lambda item: item[1][0] * item[1][1])
    checkpoint = root / "ltx-2-19b-dev-random.safetensors"
    save_file(
        {f"model.diffusion_model.{name}.weight": torch.zeros(out_features, in_features, dtype=torch.bfloat16)},
        str(checkpoint), metadata={"config": json.dumps(config), "model_version": "2.0.0", "distilled": "false"},
    )  # fmt: skip
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


def fuse_lora(model: torch.nn.Module, lora_path: Path, strength: float) -> None:
    """Add ``strength * B @ A`` of every LoRA module to the model's weights, in place (float32 sum)."""
    from safetensors import safe_open

    params = dict(model.velocity_model.named_parameters())
    with safe_open(str(lora_path), framework="pt") as f, torch.no_grad():
        for key in f.keys():  # noqa: SIM118 - safe_open has no iterator
            if not key.endswith(".lora_A.weight"):
                continue
            module = key.removeprefix("diffusion_model.").removesuffix(".lora_A.weight")
            weight = params[f"{module}.weight"]
            a = f.get_tensor(key).to(weight.device, torch.float32)
            b = f.get_tensor(key.replace("lora_A", "lora_B")).to(weight.device, torch.float32)
            weight.copy_((weight.float() + strength * (b @ a)).to(weight.dtype))


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


def generate(pipeline: object, run: Run, steps: int, frames: int, out: Path) -> object:
    from ltx_core.model.video_vae import TilingConfig

    return pipeline(prompt=PROMPT, output_path=str(out), height=run.height, width=run.width,
                    num_frames=frames, num_inference_steps=steps,
                    tiling_config=TilingConfig.default(), overwrite=True)  # fmt: skip


def compile_seconds(pipeline: object) -> float:
    from ltx_pipelines.acceleration.executor import engine_stats

    models = [m for key, m in pipeline.ledger._models.items() if key[0] == "transformer"]
    return sum(engine_stats(m).get("compile_s", 0.0) for m in models)


def measure(pipeline: object, run: Run, frames: int, out: Path, device: torch.device, swaps: SwapTimer,
            references: dict) -> dict:  # fmt: skip
    from ltx_pipelines.acceleration.options import AccelerationOptions

    pipeline.acceleration = AccelerationOptions(compile=run.compiled, step_cache=run.step_cache)
    executors = pipeline.bench_executors
    compiled_before = compile_seconds(pipeline)
    started = time.perf_counter()
    generate(pipeline, run, 2, frames, out)  # warm-up: every shape and variant of the measured run
    warmup_s = time.perf_counter() - started
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    swaps.seconds = 0.0
    executors.clear()
    started = time.perf_counter()
    result = generate(pipeline, run, run.steps, frames, out)
    total = time.perf_counter() - started
    row = {
        "run": run.label, "size": run.size, "steps": run.steps, "total_s": round(total, 2),
        "breakdown_s": {k: round(v, 3) for k, v in result.timings.items()},
        "lora_swap_s": round(swaps.seconds, 3),
        "peak_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 1) if device.type == "cuda" else 0.0,
        "warmup_run_s": round(warmup_s, 1), "compile_s": round(compile_seconds(pipeline) - compiled_before, 1),
    }  # fmt: skip
    cached = [e for e in executors if isinstance(e, StepCachedPasses)]
    if cached:
        run_blocks, reused = sum(e.blocks_run for e in cached), sum(e.blocks_reused for e in cached)
        row["step_cache_blocks_reused_pct"] = round(100 * reused / max(run_blocks + reused, 1), 1)
    reference = references.setdefault(run.size, (run.label, result.frames))
    if reference[0] != run.label:
        diff = (result.frames.float() - reference[1].float()).abs()
        mse = float((diff**2).mean())
        row["vs"] = reference[0]
        row["frames_mean_abs_diff"] = round(float(diff.mean()), 3)
        row["frames_psnr_db"] = round(10 * torch.log10(torch.tensor(255.0**2 / max(mse, 1e-12))).item(), 2)
    print(json.dumps(row), flush=True)
    return row


class Pipelines:
    """The bf16 pipeline (resident model, LoRA swapped in memory) and the FP8 one (two FP8 models), made on demand."""

    def __init__(self, files: tuple, lora: object, config: dict, components: dict, base: torch.nn.Module,
                 lora_path: Path, device: torch.device, dtype: torch.dtype) -> None:  # fmt: skip
        self.files, self.lora, self.config, self.components, self.base = files, lora, config, components, base
        self.lora_path, self.device, self.dtype = lora_path, device, dtype
        self._made: dict[bool, tuple[object, SwapTimer]] = {}

    def get(self, fp8: bool) -> tuple[object, SwapTimer]:
        if fp8 not in self._made:
            pipeline = self._make(fp8)
            ledger = pipeline.ledger
            ledger._models.update(self.components)
            cache_prompts(ledger, self.config, self.device, self.dtype)
            if fp8:
                stage_1, stage_2 = self._fp8_models()
                # the keys the ledger looks quantized models up by: stage 1 asks with no extra LoRA, stage 2 with it
                ledger._models[("transformer", ("extra_loras", ()))] = stage_1
                ledger._models[("transformer", ("extra_loras", (self.lora,)))] = stage_2
            else:
                ledger._models[("transformer",)] = self.base
            self._made[fp8] = (pipeline, SwapTimer(ledger, self.device))
        return self._made[fp8]

    def _make(self, fp8: bool) -> object:
        from ltx_pipelines import TI2VidTwoStagesPipeline
        from ltx_pipelines.models.fp8 import fp8_scaled_mm_policy

        checkpoint, upsampler, gemma = self.files
        pipeline = TI2VidTwoStagesPipeline(
            checkpoint_path=checkpoint, distilled_lora=self.lora, spatial_upsampler_path=upsampler,
            gemma_root=gemma, quantization=fp8_scaled_mm_policy() if fp8 else None, device=self.device,
            dtype=self.dtype, memory_policy="keep",
        )  # fmt: skip
        # Record the pass executors each stage gets (step-cache statistics); this benchmark's pipeline only.
        pipeline.bench_executors = []
        make_executor = pipeline.pass_executor

        def recording(transformer: torch.nn.Module) -> object:
            executor = make_executor(transformer)
            pipeline.bench_executors.append(executor)
            return executor

        pipeline.pass_executor = recording
        return pipeline

    def _fp8_models(self) -> tuple[torch.nn.Module, torch.nn.Module]:
        """FP8 copies of the bf16 model: as is (stage 1) and with the LoRA fused first (stage 2)."""
        from ltx_pipelines.models.fp8 import convert_to_fp8_scaled_mm

        started = time.perf_counter()
        if False in self._made:  # the bf16 pipeline may have left the LoRA applied (its last stage was stage 2)
            self._made[False][0].ledger._lora_swapper.restore(self.base.velocity_model)
        stage_1 = copy_without_engines(self.base)
        convert_to_fp8_scaled_mm(stage_1.velocity_model)
        stage_2 = copy_without_engines(self.base)
        fuse_lora(stage_2, self.lora_path, LORA_STRENGTH)
        convert_to_fp8_scaled_mm(stage_2.velocity_model)
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        print(f"# FP8 stage-1 and stage-2 (LoRA fused) transformers in {time.perf_counter() - started:.1f} s",
              flush=True)  # fmt: skip
        return stage_1, stage_2


def main() -> None:  # noqa: PLR0915 - one straight measurement script
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tiny", action="store_true", help="The smoke model's sizes, small videos: a CPU self-check.")
    parser.add_argument("--runs", default=None, help=f"WxHxSTEPS:VARIANT list (default: {DEFAULT_RUNS}).")
    parser.add_argument("--frames", type=int, default=None, help="Frames (default 121; tiny 9).")
    parser.add_argument("--lora-rank", type=int, default=None, help="Distilled LoRA rank (default 384; tiny 4).")
    parser.add_argument("--out-dir", default=None, help="Where the mp4s go (default: a temporary folder).")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    from ltx_pipelines.engine.model_ledger import comfy_lora

    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
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
        lora_path = root / "ltx-2-19b-distilled-lora-random.safetensors"
        write_lora(lora_path, modules, rank, device)
        lora = comfy_lora(lora_path, LORA_STRENGTH)
        base = build_model(config, device, dtype, seed=0)
        print(f"# built the random components and a rank-{rank} LoRA on {len(modules)} linears in "
              f"{time.perf_counter() - started:.1f} s", flush=True)  # fmt: skip
        components = build_components(config, upsampler_config, device, dtype)
        pipelines = Pipelines(files, lora, config, components, base, lora_path, device, dtype)
        references: dict = {}
        for run in runs:
            pipeline, swaps = pipelines.get(run.fp8)
            rows.append(measure(pipeline, run, frames, out_dir / f"{run.size}.mp4", device, swaps, references))
            if args.json:  # after every run: a run cut short by a time limit keeps what came before
                Path(args.json).write_text(json.dumps({"gpu": gpu, "torch": torch.__version__, "rows": rows}, indent=2))
    print(f"# {gpu}, torch {torch.__version__}, {frames} frames")
    print("\n| run | total s | text | stage 1 | upsample | stage 2 | decode video | decode audio | write mp4 | "
          "LoRA swap (in stages) | peak GiB | compile s (warm-up) | step cache reused | frames vs first (PSNR dB) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        b = r["breakdown_s"]
        cells = [b.get(k, 0.0) for k in ("text encoding", "stage 1", "upsample", "stage 2", "decode video",
                                          "decode audio", "write mp4")]  # fmt: skip
        psnr = f"{r['frames_psnr_db']} vs {r['vs']}" if "vs" in r else "-"
        reused = f"{r['step_cache_blocks_reused_pct']} %" if "step_cache_blocks_reused_pct" in r else "-"
        print(f"| {r['run']} | **{r['total_s']}** | " + " | ".join(f"{c:.2f}" for c in cells)
              + f" | {r['lora_swap_s']:.2f} | {r['peak_gib']} | {r['compile_s']} | {reused} | {psnr} |")  # fmt: skip


if __name__ == "__main__":
    main()
