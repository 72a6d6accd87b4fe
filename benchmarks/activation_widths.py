"""Per-token activation widths of the LTX-2 transformer, counted from live tensors (no GPU needed).

The memory pre-flight (``ltx_pipelines/memory/budget.py``) models a pass's activations as "widths":
bytes per video token divided by (model width x bytes of the compute dtype). This script measures
them with the real model widths and one transformer block, on any device, by counting the bytes of
live tensors (PyTorch's ``MemTracker``: storages created inside it, freed when their last reference
goes), so the CPU gives the same figures as a GPU up to kernel workspaces:

* **state**: the transformer state a pass keeps between blocks (``TransformerArgs`` of both
  modalities), per-token timesteps and compact (one row per sample);
* **block**: what one block adds at its peak above that state, whole and with the feed-forward in
  token chunks (then the attention's temporaries are the peak).

    python benchmarks/activation_widths.py --size 256x384 --frames 121 --dtype bfloat16
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from transformer_step import build_model, make_inputs, transformer_config  # noqa: E402

from ltx_pipelines.memory.chunking import chunk_feed_forwards  # noqa: E402
from ltx_pipelines.models.transformer_blocks import EagerBlocks, args_tensors  # noqa: E402
from ltx_pipelines.models.transformer_passes import make_modality  # noqa: E402


def state_bytes(*args: object) -> int:
    """Bytes of every distinct tensor storage the blocks receive (shared storages once)."""
    seen: dict[int, int] = {}
    for a in args:
        if a is None:
            continue
        for t in args_tensors(a):
            storage = t.untyped_storage()
            seen[storage.data_ptr()] = storage.nbytes()
    return sum(seen.values())


def block_peak(engine: EagerBlocks, video: object, audio: object, perturbations: object) -> int:
    """Peak bytes of tensors created while block 0 runs (its temporaries and its outputs)."""
    from torch.distributed._tools.mem_tracker import MemTracker

    tracker = MemTracker()
    with tracker:
        out = engine.blocks(video, audio, perturbations, 0, 1)
    peak = sum(tracker.get_tracker_snapshot("peak").get(d, {}).get("Total", 0) for d in tracker.get_tracker_snapshot("peak"))
    del out
    return peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="256x384", help="HxW of the pass (256x384x121: 1 536 video tokens).")
    parser.add_argument("--frames", type=int, default=121)
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--ff-chunk", type=int, default=256)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    from ltx_core.guidance.perturbations import BatchedPerturbationConfig

    torch.manual_seed(0)
    dtype, device = getattr(torch, args.dtype), torch.device("cpu")
    h, w = (int(v) for v in args.size.split("x"))
    config = transformer_config(tiny=False)
    config["transformer"]["num_layers"] = 1
    model = build_model(config, device, dtype, seed=0)
    video_state, audio_state, positive, _ = make_inputs(h, w, args.frames, 24.0, 3840, device, dtype, seed=1)
    sigma = torch.tensor(0.9)
    video = make_modality(video_state, sigma, positive.video)
    audio = make_modality(audio_state, sigma, positive.audio)
    tokens, width = video.latent.shape[1], 4096
    unit = tokens * width * torch.finfo(dtype).bits // 8
    perturbations = BatchedPerturbationConfig.empty(1)
    result = {"video_tokens": tokens, "audio_tokens": audio.latent.shape[1], "dtype": args.dtype}
    model.requires_grad_(True)  # MemTracker hooks parameters' gradients; no_grad keeps autograd out
    with torch.no_grad():
        for compact in (False, True):
            engine = EagerBlocks(model, compact=compact)
            v_args, a_args = engine.prepare(video, audio)
            key = "compact" if compact else "per_token"
            result[f"state_widths_{key}"] = round(state_bytes(v_args, a_args) / unit, 2)
            result[f"block_widths_{key}"] = round(block_peak(engine, v_args, a_args, perturbations) / unit, 2)
        chunk_feed_forwards(model.velocity_model, args.ff_chunk)
        engine = EagerBlocks(model, compact=True)
        v_args, a_args = engine.prepare(video, audio)
        result["block_widths_compact_ff_chunked"] = round(block_peak(engine, v_args, a_args, perturbations) / unit, 2)
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
