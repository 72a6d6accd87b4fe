"""Gemma-3 12B prompt encoding: resident against streamed by layer under GPU memory caps (issue 9).

No Gemma download is needed: a Gemma directory with the real 12B shapes (ltx-core's
``GEMMA3_CONFIG_FOR_LTX``) is written with random bf16 weights in five shards (22.7 GiB; the smoke
bundle's tokenizer, whose ids all fall inside the real vocabulary). The model ledger then builds the
text encoder as a pipeline does: whole when it fits, streamed by layer when ``--max-gpu-memory``
(also applied with ``torch.cuda.set_per_process_memory_fraction``) says it does not. Per run:
build time, first and second encode of a 1024-token prompt, peak GPU memory, host memory (private
and resident), the largest difference of the hidden states from the resident run (0 expected),
and, with ``--enhance-tokens N``, the time per generated token of prompt enhancement.

    python benchmarks/gemma_streaming.py --workdir /tmp --json /tmp/gemma.json   # GPU: resident, 16 and 6 GiB
    python benchmarks/gemma_streaming.py --tiny --device cpu --caps 1            # CPU self-check (smoke shapes)

On the device's machine (transformers 5.14.1 from the carried wheels in .whl/, as benchmarks/gpu_run.sh
installs them; ~23 GB of disk under --workdir):

    python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site \
        $(ls .whl/*.whl | grep -v /ltx_pipelines-) && TQDM_DISABLE=1 PYTHONPATH=src:/tmp/site \
        python3 benchmarks/gemma_streaming.py --workdir /tmp --json $OUT/gemma.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from ltx_pipelines.engine.model_ledger import ModelLedger  # noqa: E402
from ltx_pipelines.engine.prompt_enhancement import enhance_prompt  # noqa: E402
from ltx_pipelines.memory.budget import StageLoad  # noqa: E402
from ltx_pipelines.memory.host import GIB, process_memory  # noqa: E402
from ltx_pipelines.memory.preflight import MemoryRequest  # noqa: E402
from ltx_pipelines.smoke_model import ensure_smoke_bundle  # noqa: E402

PROMPT = "A red fox trots across a snowy road at dusk while a truck's headlights sweep over the trees"
#: A request whose transformer needs next to nothing, so that the plan only decides about Gemma.
TINY_REQUEST = MemoryRequest(stages=(StageLoad("stage 1", 256, 26, 1),), height=64, width=64, num_frames=9)
#: Model key prefix (Gemma3ForConditionalGeneration, transformers 5) -> file key prefix (the released Gemma files).
FILE_PREFIXES = {"model.language_model.": "language_model.model.", "model.vision_tower.": "vision_tower.vision_model.",
                 "model.multi_modal_projector.": "multi_modal_projector."}  # fmt: skip
SHARDS = 5


def gemma_config(tiny: bool, smoke_gemma: Path) -> dict:
    if tiny:
        return json.loads((smoke_gemma / "config.json").read_text())
    from ltx_core.text_encoders.gemma.config import GEMMA3_CONFIG_FOR_LTX

    return GEMMA3_CONFIG_FOR_LTX.to_dict()


def file_shapes(config: dict) -> dict[str, tuple[int, ...]]:
    """File key -> shape of every tensor a Gemma 3 file holds for this config (no lm_head: it is tied)."""
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    with torch.device("meta"):
        model = Gemma3ForConditionalGeneration(Gemma3Config.from_dict(config))
    shapes = {}
    for key, tensor in model.state_dict().items():
        prefix = next((p for p in FILE_PREFIXES if key.startswith(p)), None)
        if prefix is not None:
            shapes[FILE_PREFIXES[prefix] + key[len(prefix) :]] = tuple(tensor.shape)
    return shapes


def write_gemma(root: Path, config: dict, smoke_gemma: Path, device: torch.device) -> Path:
    """A Gemma directory: config, the smoke tokenizer and processor files, random bf16 weights in shards."""
    gemma = root / "gemma-random"
    gemma.mkdir()
    for path in smoke_gemma.iterdir():
        if path.suffix != ".safetensors" and path.name != "config.json":
            shutil.copy(path, gemma / path.name)
    (gemma / "config.json").write_text(json.dumps(config))
    shapes = file_shapes(config)
    names = sorted(shapes)
    g = torch.Generator(device=device).manual_seed(0)
    per_shard = -(-len(names) // SHARDS)
    for i in range(SHARDS):
        tensors = {}
        for name in names[i * per_shard : (i + 1) * per_shard]:
            scale = 0.02 if len(shapes[name]) > 1 else 0.1
            values = torch.randn(shapes[name], generator=g, device=device) * scale
            tensors[name] = values.to(torch.bfloat16).cpu()
        save_file(tensors, str(gemma / f"model-{i + 1:05d}-of-{SHARDS:05d}.safetensors"))
    return gemma


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_encode(encoder: torch.nn.Module, device: torch.device) -> tuple[float, tuple[torch.Tensor, ...]]:
    sync(device)
    started = time.perf_counter()
    with torch.inference_mode():
        states, _ = encoder.encode(PROMPT)
    sync(device)
    return time.perf_counter() - started, states


def enhance_seconds_per_token(ledger: ModelLedger, tokens: int, device: torch.device) -> float | None:
    """Prompt enhancement as the pipelines run it (our system prompt), per generated token."""
    if tokens < 1:
        return None
    encoder, made = ledger.get("text_encoder"), []
    original = encoder.model.generate

    def generate(**inputs: object):  # noqa: ANN202
        out = original(**inputs)
        made.append(out.shape[1] - inputs["input_ids"].shape[1])
        return out

    encoder.model.generate = generate
    sync(device)
    started = time.perf_counter()
    enhance_prompt(ledger, PROMPT, seed=1, max_new_tokens=tokens)
    sync(device)
    del encoder.model.generate
    return (time.perf_counter() - started) / max(made[0], 1)


def run(label: str, checkpoint: Path, gemma: Path, device: torch.device, cap: float | None,
        reference: tuple[torch.Tensor, ...] | None, enhance_tokens: int) -> tuple[dict, tuple]:  # fmt: skip
    if device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, cap * GIB / total) if cap else 1.0, device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    # Without a GPU nothing is planned: an explicit disk is how the streamed path runs there (the self-check).
    offload = "disk" if cap and device.type == "cpu" else "auto"
    ledger = ModelLedger(checkpoint, gemma, device=device, dtype=torch.bfloat16, max_gpu_memory=cap,
                         memory_policy="keep", offload=offload)  # fmt: skip
    ledger.pending_request = TINY_REQUEST  # planned at the first build, as in a pipeline
    started = time.perf_counter()
    encoder = ledger.get("text_encoder")
    sync(device)
    build = time.perf_counter() - started
    first, _ = timed_encode(encoder, device)
    second, states = timed_encode(encoder, device)
    per_token = enhance_seconds_per_token(ledger, enhance_tokens, device)
    states = tuple(s.float().cpu() for s in states)
    row = {
        "run": label, "streamed": hasattr(encoder, "ltx_streaming"), "build_s": round(build, 2),
        "first_encode_s": round(first, 3), "second_encode_s": round(second, 3),
        "enhance_s_per_token": round(per_token, 3) if per_token is not None else None,
        "gpu_peak_gib": round(torch.cuda.max_memory_allocated(device) / GIB, 2) if device.type == "cuda" else None,
        "host_private_gib": round(process_memory()["rss_anon"] / GIB, 2),
        "host_resident_gib": round(process_memory()["rss"] / GIB, 2),
        "max_abs_diff": None if reference is None else max(float((a - b).abs().max())
                                                           for a, b in zip(reference, states, strict=True)),
    }  # fmt: skip
    ledger.release_all()
    del encoder, ledger
    return row, states


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="the smoke bundle's Gemma shapes (CPU self-check)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--caps", default="16,6", help="GiB caps for the streamed runs, comma-separated")
    parser.add_argument("--enhance-tokens", type=int, default=4, help="tokens of prompt enhancement to time (0: none)")
    parser.add_argument("--json", type=Path, help="write the rows here")
    parser.add_argument("--workdir", type=Path, help="where the random Gemma is written (default: a temp folder)")
    args = parser.parse_args()
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        bundle = ensure_smoke_bundle(Path(tmp) / "smoke")
        config = gemma_config(args.tiny, Path(bundle.gemma_root))
        started = time.perf_counter()
        gemma = write_gemma(Path(tmp), config, Path(bundle.gemma_root), device)
        print(f"wrote the random Gemma in {time.perf_counter() - started:.1f} s", flush=True)
        rows: list[dict] = []

        def report(row: dict) -> None:  # each row as it ends: a time limit keeps what finished
            rows.append(row)
            print(json.dumps(row), flush=True)
            if args.json:
                args.json.write_text(json.dumps(rows, indent=1))

        row, reference = run("resident", bundle.distilled_checkpoint, gemma, device, None, None, args.enhance_tokens)
        report(row)
        for cap in (float(c) for c in args.caps.split(",") if c):
            report(run(f"cap {cap:g} GiB", bundle.distilled_checkpoint, gemma, device, cap, reference,
                       args.enhance_tokens)[0])  # fmt: skip


if __name__ == "__main__":
    main()
