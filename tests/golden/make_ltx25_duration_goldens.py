"""Golden fixtures for the LTX-2.5 duration head, computed by the reference implementation itself.

Like ``make_ltx25_goldens.py`` (whose helpers it reuses), this runs in the reference's own environment (LTX-2
release 1.2.0) and imports only the reference, torch and safetensors, so every number it writes is the
reference's. Our tests (``tests/models/ltx25/test_duration_head.py``) check that our head reproduces them.

Regenerate (float32 on CPU, deterministic, about a second)::

    /work/refenv/venv/bin/python tests/golden/make_ltx25_duration_goldens.py tests/golden/ltx25

What it writes into OUT_DIR (it never touches ``transformer.safetensors`` or ``manifest.json``, which the
transformer script rewrites as a whole):

* ``duration_head.safetensors`` and ``duration_head_q2.safetensors``: tiny random heads in the layout of the
  published ``model_patches/ltx-2.5-duration-head-*.safetensors`` -- tensors ``duration_head.<module>``, header
  metadata ``config`` (``transformer.cross_attention_dim`` / ``audio_cross_attention_dim`` and a
  ``duration_head`` section) and ``model_version``. The first has one pooling query like the released head, the
  second two (so the flattening of the pooled queries is pinned too). Each file is loaded back with the
  reference's own loader (``DurationPredictor.from_checkpoint``) before its outputs are computed. Next to the
  weights, under ``golden.<case>.``, each case's connector contexts and the reference's predicted seconds.
* ``duration_head.json``: the upstream commit and environment, the configs, per head case the reference's
  seconds and frame counts (``DurationPredictor.__call__`` at several frame rates and ranges), the frame rule's
  edge cases (given seconds run through ``DurationPredictor.__call__`` with a head that returns them, recording
  the frame count or the error and whether the reference logged its out-of-range warning), and sha256 digests.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from pathlib import Path

import torch
from ltx_core.duration_head.model_configurator import DurationHeadConfigurator
from ltx_pipelines.utils.blocks import DurationPredictor
from make_ltx25_goldens import (
    output_folder,
    provenance,
    save_deterministic,
    sha256_of,
)

SEED = 2505
PREFIX = "duration_head."
MODEL_VERSION = "2.5.0"
TEXT = {"cross_attention_dim": 32, "audio_cross_attention_dim": 16}
HEADS = {
    "duration_head": {"pooler_hidden_dim": 16, "num_queries": 1, "num_pooler_heads": 2, "mlp_hidden": 12},
    "duration_head_q2": {"pooler_hidden_dim": 16, "num_queries": 2, "num_pooler_heads": 4, "mlp_hidden": 8},
}
#: case -> (batch, video tokens, audio tokens); 0 tokens = that modality not given.
CASES = {
    "av_7_5": (1, 7, 5),
    "av_1_1": (1, 1, 1),
    "av_12_3": (1, 12, 3),
    "video_only": (1, 6, 0),
    "audio_only": (1, 0, 4),
    "batch2": (2, 5, 3),  # forward only: the predictor refuses batches
}
#: (frame rate, min seconds, max seconds) each batch-1 case's prediction is turned into frames at.
PREDICTION_RANGES = [(24.0, 1.0, 20.0), (25.0, 1.0, 20.0), (24.0, 2.0, 3.0), (30.0, 0.5, 1.5)]
#: (label, seconds, frame rate, min seconds, max seconds) for the frame rule alone.
FRAME_CASES = [
    ("below_min_24", 0.2, 24.0, 1.0, 20.0),
    ("at_min_24_snaps_up", 1.0, 24.0, 1.0, 20.0),
    ("on_grid_25_frames_24", 25 / 24, 24.0, 1.0, 20.0),
    ("on_grid_121_frames_24", 121 / 24, 24.0, 1.0, 20.0),
    ("mid_5s_24", 5.0, 24.0, 1.0, 20.0),
    ("just_below_grid_24", 128 / 24, 24.0, 1.0, 20.0),  # 128 frames -> 121
    ("just_above_grid_24", 122 / 24, 24.0, 1.0, 20.0),  # 122 frames -> 121
    ("at_max_24", 20.0, 24.0, 1.0, 20.0),
    ("above_max_24", 33.0, 24.0, 1.0, 20.0),
    ("huge_24", 1e6, 24.0, 1.0, 20.0),
    ("below_min_25", 0.5, 25.0, 1.0, 20.0),
    ("at_min_25_on_grid", 1.0, 25.0, 1.0, 20.0),
    ("mid_5s_25", 5.0, 25.0, 1.0, 20.0),
    ("on_grid_97_frames_25", 97 / 25, 25.0, 1.0, 20.0),
    ("at_max_25", 20.0, 25.0, 1.0, 20.0),
    ("above_max_25", 21.0, 25.0, 1.0, 20.0),
    ("ntsc_5s", 5.0, 24000 / 1001, 1.0, 20.0),
    ("round_tie_to_even_16fps", 24.5 / 16, 16.0, 1.0, 20.0),  # 24.5 frames: 24 (-> 17), not 25
    ("round_tie_to_even_32fps", 40.5 / 32, 32.0, 1.0, 20.0),  # 40.5 frames: 40 (-> 33), not 41
    ("min_frames_tie_25", 0.2, 25.0, 0.5, 20.0),  # min 12.5 frames rounds to 12; snap up to 17
    ("narrow_range_snap_up", 0.5, 24.0, 1.0, 1.2),  # 24..29 frames: 17 < 24, up to 25
    ("range_under_one_step", 1.0, 24.0, 1.0, 1.0),  # 24..24 frames: up to 25, capped at 24 (off grid)
    ("range_under_one_step_above", 3.0, 24.0, 1.0, 1.1),  # 24..26 frames: clamped 26 -> 25
    ("zero_min_small", 0.1, 24.0, 0.0, 20.0),  # 2 frames -> 1
    ("zero_min_zero_frames", 0.01, 24.0, 0.0, 20.0),  # 0 frames: the reference raises
    ("tiny_positive", 1e-6, 24.0, 1.0, 20.0),
]


def _init(name: str, shape: torch.Size) -> tuple[float, float]:
    """(mean, std): O(1) activations, modality tags and queries that matter, predictions of a few seconds."""
    if name == "mlp_out.bias":
        return math.log(4.0), 0.1
    if name.endswith(("modality_emb", "query_tokens")):
        return 0.0, 0.7
    if name.endswith("bias"):
        return 0.0, 0.1
    return 0.0, float(shape[-1]) ** -0.5


def build_head(head_config: dict, generator: torch.Generator) -> torch.nn.Module:
    """The reference's head, built as its configurator builds it, with seeded weights (sorted name order)."""
    head = DurationHeadConfigurator.from_metadata({"config": config_of(head_config)}).to(torch.float32).eval()
    params = dict(head.named_parameters())
    with torch.no_grad():
        for name in sorted(params):
            mean, std = _init(name, params[name].shape)
            params[name].copy_(mean + std * torch.randn(params[name].shape, generator=generator))
    return head


def config_of(head_config: dict) -> dict:
    return {"transformer": dict(TEXT), "duration_head": dict(head_config)}


def contexts(batch: int, video_tokens: int, audio_tokens: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    out = {}
    if video_tokens:
        out["video_context"] = torch.randn(batch, video_tokens, TEXT["cross_attention_dim"], generator=generator)
    if audio_tokens:
        out["audio_context"] = torch.randn(batch, audio_tokens, TEXT["audio_cross_attention_dim"], generator=generator)
    return out


class _WarningCounter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


def reference_frames(
    predictor: DurationPredictor, video: torch.Tensor, audio: torch.Tensor | None, fps: float, lo: float, hi: float
) -> dict:
    """The reference predictor's frame count (or its error) and whether it logged its out-of-range warning."""
    counter = _WarningCounter()
    block_logger = logging.getLogger(DurationPredictor.__module__)
    block_logger.addHandler(counter)
    try:
        result = {"frames": predictor(video, audio, frame_rate=fps, min_seconds=lo, max_seconds=hi)}
    except (ValueError, OverflowError) as e:
        result = {"error": type(e).__name__}
    finally:
        block_logger.removeHandler(counter)
    return {**result, "warns": counter.count > 0}


def frame_rule_cases() -> list[dict]:
    """Given seconds through the reference's predictor, fed by a head that just returns them."""
    rows = []
    for label, seconds, fps, lo, hi in FRAME_CASES:
        predictor = DurationPredictor(lambda _v, _a, s=seconds: torch.tensor([s], dtype=torch.float64))
        outcome = reference_frames(predictor, torch.zeros(1), None, fps, lo, hi)
        rows.append({"case": label, "seconds": seconds, "frame_rate": fps, "min_seconds": lo, "max_seconds": hi,
                     **outcome})  # fmt: skip
    return rows


def write_head(out_dir: Path, name: str, head_config: dict, seed: int) -> dict:
    """One head file (weights + golden cases) and its manifest entry."""
    generator = torch.Generator().manual_seed(seed)
    head = build_head(head_config, generator)
    weights = {PREFIX + k: v.detach().clone().contiguous() for k, v in head.state_dict().items()}
    inputs = {case: contexts(*shape, generator) for case, shape in CASES.items()}
    path = out_dir / f"{name}.safetensors"
    metadata = {"config": json.dumps(config_of(head_config)), "model_version": MODEL_VERSION}
    save_deterministic(weights, path, metadata)  # weights first: the reference must load them from the file

    predictor = DurationPredictor.from_checkpoint(str(path), dtype=torch.float32, device=torch.device("cpu"))
    if predictor is None:
        raise RuntimeError(f"the reference found no duration head in {path}")
    loaded = predictor._head  # noqa: SLF001 - the reference's own loaded module
    tensors, cases = dict(weights), {}
    for case, given in inputs.items():
        video, audio = given.get("video_context"), given.get("audio_context")
        with torch.no_grad():
            seconds = loaded(video, audio)
        case_tensors = {f"golden.{case}.{k}": v.contiguous() for k, v in given.items()}
        case_tensors[f"golden.{case}.seconds"] = seconds.detach().to(torch.float32).contiguous()
        tensors.update(case_tensors)
        entry = {"shape": dict(zip(("batch", "video_tokens", "audio_tokens"), CASES[case], strict=True)),
                 "seconds": seconds.tolist(), "sha256": sha256_of(case_tensors)}  # fmt: skip
        if seconds.shape == (1,):
            entry["frames"] = [
                {"frame_rate": fps, "min_seconds": lo, "max_seconds": hi,
                 **reference_frames(predictor, video, audio, fps, lo, hi)}
                for fps, lo, hi in PREDICTION_RANGES
            ]  # fmt: skip
        cases[case] = entry
    save_deterministic(tensors, path, metadata)
    check_final_file(path, inputs, tensors)
    return {"file": path.name, "config": config_of(head_config), "seed": seed, "tensors_prefix": PREFIX,
            "cases": cases, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}  # fmt: skip


def check_final_file(path: Path, inputs: dict[str, dict[str, torch.Tensor]], tensors: dict) -> None:
    """The written file (weights next to golden tensors) loads in the reference and gives the same seconds.

    Not bit for bit: where a tensor lies in the file moves its alignment in memory, which can change float32
    summation order by an ulp or so.
    """
    predictor = DurationPredictor.from_checkpoint(str(path), dtype=torch.float32, device=torch.device("cpu"))
    for case, given in inputs.items():
        with torch.no_grad():
            seconds = predictor._head(given.get("video_context"), given.get("audio_context"))  # noqa: SLF001
        if not torch.allclose(seconds, tensors[f"golden.{case}.seconds"], rtol=1e-6, atol=0.0):
            raise RuntimeError(f"{path} gives other seconds for {case} once the golden tensors are in it")


def main() -> None:
    out_dir = output_folder(__doc__.splitlines()[0])
    heads = {name: write_head(out_dir, name, config, SEED + i) for i, (name, config) in enumerate(HEADS.items())}
    manifest = {
        **provenance(
            "tiny random LTX-2.5 duration heads, their inputs and the reference's seconds and frames "
            "(float32, CPU), and the reference's seconds -> frames rule on edge cases",
            "tests/golden/make_ltx25_duration_goldens.py",
        ),
        "model_version": MODEL_VERSION,
        "heads": heads,
        "frame_rule": frame_rule_cases(),
    }
    path = out_dir / "duration_head.json"
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    sizes = ", ".join(f"{h['file']} ({(out_dir / h['file']).stat().st_size} bytes)" for h in heads.values())
    print(f"wrote {sizes} and {path}")


if __name__ == "__main__":
    main()
