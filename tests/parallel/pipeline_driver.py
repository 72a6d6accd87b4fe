"""Run pipelines through the Python API, tiny, and save their frames and audio: in one process or under torchrun.

    python tests/parallel/pipeline_driver.py SMOKE_BUNDLE OUT_DIR NAME...                    # one process
    torchrun --standalone --nproc-per-node 2 tests/parallel/pipeline_driver.py SMOKE_BUNDLE OUT_DIR NAME...

Under torchrun the driver initialises a gloo process group itself, as a user script would, and the
pipelines take the parallel route because they are built inside it. Rank 0 saves
``OUT_DIR/NAME.pt`` (frames, waveform, and whether every rank returned the same result) and writes
``OUT_DIR/NAME.mp4``; the other ranks must return the same result and write nothing. The inputs
(images, a reference clip, a tone, a source clip) are written into OUT_DIR/inputs by the first run.

``distilled_256x384`` and ``ti2vid_two_stages_256x384`` are the drift issue's request (256x384, 17
frames, seed 7; the two-stage one with 4 steps), as its command lines give it. A name ending in
``_qN`` runs one in one process with the distilled passes' text cross-attentions on N query chunks
(``rank_drift.distilled_passes_in_chunks``): N ranks' arithmetic, the tests' exact reference.
"""

from __future__ import annotations

import math
import os
import re
import sys
import wave
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from ltx_core.components.guiders import MultiModalGuiderParams
from ltx_core.model.video_vae import SpatialTilingConfig, TemporalTilingConfig, TilingConfig
from ltx_core.types import Audio
from PIL import Image

from ltx_pipelines.engine.model_ledger import comfy_lora
from ltx_pipelines.smoke_model import SmokeBundle
from ltx_pipelines.utils.media_io import write_video
from rank_drift import REQUEST as ISSUE_REQUEST
from rank_drift import distilled_passes_in_chunks

PIPELINES = (
    "distilled", "ti2vid_two_stages", "ti2vid_two_stages_hq", "ti2vid_one_stage",
    "keyframe_interpolation", "a2vid_two_stage", "ic_lora", "retake",
)  # fmt: skip
SMALL = dict(height=64, width=64, num_frames=9, frame_rate=24.0)
CFG_ONLY = MultiModalGuiderParams(cfg_scale=3.0, stg_scale=0.0, rescale_scale=0.0, modality_scale=1.0, stg_blocks=[])
#: The one-stage run decodes 128x128 in 3x3 spatial tiles: the distributed decode inside a pipeline.
SMALL_TILES = TilingConfig(SpatialTilingConfig(64, 32), TemporalTilingConfig(16, 8))


def write_inputs(folder: Path) -> dict[str, Path]:
    """Deterministic media inputs (written once; every rank reads the same files)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {name: folder / name for name in ("first.png", "last.png", "reference.mp4", "tone.wav", "source.mp4")}
    if all(p.exists() for p in paths.values()):
        return paths
    for i, name in enumerate(("first.png", "last.png")):
        pixels = np.zeros((64, 64, 3), np.uint8)
        pixels[..., i] = np.linspace(0, 255, 64, dtype=np.uint8)[None, :]
        Image.fromarray(pixels).save(paths[name])
    stripes = (np.arange(64)[None, None, :] // 8 % 2 * 255 + np.zeros((5, 64, 1))).astype(np.uint8)
    write_video(paths["reference.mp4"], torch.from_numpy(np.repeat(stripes[..., None], 3, axis=-1)), 24.0)
    t = np.arange(22050) / 22050
    with wave.open(str(paths["tone.wav"]), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(22050)
        f.writeframes((0.4 * np.sin(2 * math.pi * 440 * t) * 32767).astype(np.int16).tobytes())
    bars = ((np.linspace(0, 255, 64)[None, None, :] + np.arange(17)[:, None, None] * 9) % 256 + np.zeros((17, 64, 64)))
    frames = np.stack([bars, np.full_like(bars, 90), 255 - bars], axis=-1).astype(np.uint8)
    samples = torch.arange(round(17 / 24 * 16000)) / 16000
    tone = 0.3 * torch.sin(2 * math.pi * 330 * samples)
    write_video(paths["source.mp4"], torch.from_numpy(frames), 24.0, Audio(torch.stack([tone, -tone]), 16000))
    return paths


def run(name: str, bundle: SmokeBundle, inputs: dict[str, Path], output: Path):  # noqa: ANN201
    """One tiny generation of pipeline ``name``; returns its GenerationResult."""
    two_stage = dict(
        checkpoint_path=bundle.checkpoint, distilled_lora=comfy_lora(bundle.distilled_lora, 0.8),
        spatial_upsampler_path=bundle.spatial_upsampler, gemma_root=bundle.gemma_root,
    )  # fmt: skip
    common = dict(prompt="a red kite", output_path=output, seed=5)
    if name == "distilled_256x384":
        from ltx_pipelines.distilled import DistilledPipeline

        pipeline = DistilledPipeline(bundle.distilled_checkpoint, bundle.gemma_root, bundle.spatial_upsampler)
        return pipeline(**ISSUE_REQUEST, output_path=output)
    if name == "ti2vid_two_stages_256x384":
        from ltx_pipelines.ti2vid_two_stages import TI2VidTwoStagesPipeline

        return TI2VidTwoStagesPipeline(**two_stage)(**ISSUE_REQUEST, output_path=output, num_inference_steps=4)
    if name == "distilled":
        from ltx_pipelines.distilled import DistilledPipeline

        pipeline = DistilledPipeline(
            bundle.distilled_checkpoint, bundle.gemma_root, spatial_upsampler_path=bundle.spatial_upsampler
        )
        pipeline.validate(**common, **SMALL)  # checks only: must not leave a rank waiting in a collective
        return pipeline(**common, **SMALL)
    if name in ("ti2vid_two_stages", "ti2vid_two_stages_hq", "keyframe_interpolation"):
        from ltx_pipelines.keyframe_interpolation import KeyframeInterpolationPipeline
        from ltx_pipelines.ti2vid_two_stages import TI2VidTwoStagesPipeline
        from ltx_pipelines.ti2vid_two_stages_hq import TI2VidTwoStagesHQPipeline

        cls = {"ti2vid_two_stages": TI2VidTwoStagesPipeline, "ti2vid_two_stages_hq": TI2VidTwoStagesHQPipeline,
               "keyframe_interpolation": KeyframeInterpolationPipeline}[name]  # fmt: skip
        images = [(str(inputs["first.png"]), 0, 1.0), (str(inputs["last.png"]), 8, 1.0)]
        extra = dict(images=images) if name == "keyframe_interpolation" else {}
        return cls(**two_stage)(**common, **SMALL, num_inference_steps=2, **extra)
    if name == "ti2vid_one_stage":
        from ltx_pipelines.ti2vid_one_stage import TI2VidOneStagePipeline

        pipeline = TI2VidOneStagePipeline(bundle.checkpoint, bundle.gemma_root)
        size = dict(SMALL, height=128, width=128)
        return pipeline(**common, **size, num_inference_steps=2, tiling_config=SMALL_TILES)
    if name == "a2vid_two_stage":
        from ltx_pipelines.a2vid_two_stage import A2VidPipelineTwoStage

        pipeline = A2VidPipelineTwoStage(**two_stage)
        cheap = dict(video_guider_params=CFG_ONLY, audio_guider_params=CFG_ONLY)
        return pipeline(audio_path=inputs["tone.wav"], **common, **SMALL, num_inference_steps=2, **cheap)
    if name == "ic_lora":
        from ltx_pipelines.ic_lora import ICLoraPipeline

        pipeline = ICLoraPipeline(
            checkpoint_path=bundle.distilled_checkpoint, gemma_root=bundle.gemma_root,
            spatial_upsampler_path=bundle.spatial_upsampler, loras=[comfy_lora(bundle.ic_lora, 1.0)],
        )  # fmt: skip
        return pipeline(video_conditioning=[(str(inputs["reference.mp4"]), 1.0)], **common, **SMALL)
    if name == "retake":
        from ltx_pipelines.retake import RetakePipeline

        pipeline = RetakePipeline(bundle.checkpoint, bundle.gemma_root)
        return pipeline(video_path=inputs["source.mp4"], start_time=0.2, end_time=0.5, **common, num_inference_steps=2)
    raise SystemExit(f"unknown pipeline {name!r}; choose from {', '.join(PIPELINES)}")


def main() -> None:
    bundle, out, names = SmokeBundle.at(Path(sys.argv[1])), Path(sys.argv[2]), sys.argv[3:]
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    rank = 0
    torch.set_num_threads(1)
    if distributed:
        dist.init_process_group("gloo")
        rank = dist.get_rank()
    inputs = write_inputs(out / "inputs") if rank == 0 else None
    if distributed:
        dist.barrier()
        inputs = write_inputs(out / "inputs")
    for name in names:
        base, parts = re.fullmatch(r"(.*?)(?:_q(\d+))?", name).groups()
        with distilled_passes_in_chunks(int(parts or 1)):
            result = run(base, bundle, inputs, out / f"{name}.mp4")
        same = True
        if distributed:
            mine = (result.frames.clone(), result.audio.waveform.clone())
            everyone: list = [None] * dist.get_world_size()
            dist.all_gather_object(everyone, mine)
            same = all(torch.equal(f, mine[0]) and torch.equal(w, mine[1]) for f, w in everyone)
            assert (result.output_path is not None) == (rank == 0), (rank, result.output_path)
        if rank == 0:
            torch.save({"frames": result.frames, "waveform": result.audio.waveform, "ranks_agree": same,
                        "timings": dict(result.timings)}, out / f"{name}.pt")  # fmt: skip
    if distributed:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
