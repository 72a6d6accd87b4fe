"""What the mp4 write after the decode costs, and which encoder setting would shorten it (issue 23).

The distilled 768x512x121 generation spends 0.6-0.75 s writing its mp4 after the last frame decodes (the whole
clip decodes as one tile, so nothing overlaps). This times, on the host's CPUs, the H.264 encode of a 121-frame
clip as ``utils/media_io.py`` does it (RGB frames handed to PyAV, libx264 ``veryfast`` CRF 18, frame threads)
against two levers:

* ``superfast`` / ``ultrafast`` presets: less search, larger files;
* frames converted to YUV 4:2:0 before the writer (as a GPU could do it), so the writer thread's per-frame
  RGB -> YUV conversion leaves the serial part;

and the package's own ``write_video`` (with an AAC track) fed row-major frames against the permuted view ltx-core's
decode hands out (the engine makes them row-major since 2026-12-07).

Each row: seconds (best of ``--repeats``), file size, and PSNR of the decoded file against the YUV 4:2:0 frames it
was given (the encoder's loss alone), so that a faster setting's quality cost is in the same table. The frames are
smooth random fields (upsampled noise plus a moving gradient), not a generated video: x264's speed depends on
content, so treat ratios, not seconds, as the finding.

    python benchmarks/mp4_encode.py                 # 768x512x121 (the distilled default)
    python benchmarks/mp4_encode.py --tiny          # 96x64x9: a few seconds, checks the script
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from ltx_core.types import Audio  # noqa: E402

from ltx_pipelines.engine.stages import chunked  # noqa: E402
from ltx_pipelines.utils.media_io import H264_OPTIONS, write_video  # noqa: E402 - after the path, as the others do


def clip(frames: int, height: int, width: int) -> np.ndarray:
    """uint8 [F, H, W, 3]: coarse noise upsampled (textures x264 must code) plus a gradient that moves."""
    g = torch.Generator().manual_seed(0)
    out = np.empty((frames, height, width, 3), dtype=np.uint8)
    ramp = torch.linspace(0, 1, width).view(1, 1, width)
    for index in range(frames):  # a frame at a time: a 1536x1024x121 clip in float32 would be 2.3 GB
        coarse = torch.rand(1, 3, max(height // 16, 1), max(width // 16, 1), generator=g)
        frame = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)[0]
        frame = 0.7 * frame + 0.3 * ((ramp + index / frames) % 1.0)
        out[index] = (frame.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return out


def to_yuv420(frames: np.ndarray) -> list[np.ndarray]:
    """The planes PyAV takes as ``yuv420p`` ([H * 3/2, W]), converted ahead of time by libswscale."""
    return [av.VideoFrame.from_ndarray(f, format="rgb24").reformat(format="yuv420p").to_ndarray() for f in frames]


def encode(path: Path, frames: list[np.ndarray], pixel_format: str, preset: str, height: int, width: int) -> float:
    """Seconds to encode and close the file, as the package's writer does (one frame at a time, muxed at once)."""
    started = time.perf_counter()
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(24))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {**H264_OPTIONS, "preset": preset}  # the package's settings, but the preset
        stream.thread_type = "AUTO"
        for index, pixels in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(pixels, format=pixel_format)
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return time.perf_counter() - started


def psnr(path: Path, reference: list[np.ndarray]) -> float:
    """Against the YUV 4:2:0 planes the encoder was given (the same conversion for both inputs), so that only the
    encoder's loss counts, not the chroma subsampling's."""
    squared, count = 0.0, 0
    with av.open(str(path)) as container:
        for frame, planes in zip(container.decode(video=0), reference, strict=True):
            diff = frame.to_ndarray(format="yuv420p").astype(np.int32) - planes
            squared += float((diff * diff).sum())
            count += diff.size
    return round(10 * np.log10(255.0**2 / max(squared / count, 1e-12)), 2)


def package_writer(folder: Path, frames: np.ndarray, repeats: int) -> list[dict]:
    """The package's own ``write_video`` (H.264 + an AAC track, as a generation writes), fed row-major frames or
    the permuted view ltx-core's decode hands out ([f, h, w, c] over a [c, f, h, w] buffer): the layout decides
    whether the writer's thread copies every frame before encoding it."""
    rows = []
    row_major = torch.from_numpy(frames)
    permuted = row_major.permute(3, 0, 1, 2).contiguous().permute(1, 2, 3, 0)
    audio = Audio(waveform=0.1 * torch.randn(2, len(frames) * 1000, generator=torch.Generator().manual_seed(0)),
                  sampling_rate=24000)  # fmt: skip
    for layout, video in (("row-major", row_major), ("permuted", permuted)):
        best = float("inf")
        for _ in range(repeats):
            started = time.perf_counter()
            write_video(folder / "package.mp4", chunked(video), 24.0, audio=audio, overwrite=True)
            best = min(best, time.perf_counter() - started)
        rows.append({"writer": "write_video + AAC", "frames": layout, "seconds": round(best, 3)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="768x512x121", help="WxHxFRAMES")
    parser.add_argument("--presets", default="veryfast,superfast,ultrafast")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tiny", action="store_true", help="96x64x9, one repeat: checks the script")
    parser.add_argument("--json", default=None, help="also write the rows here")
    args = parser.parse_args()
    if args.tiny:
        args.size, args.repeats = "96x64x9", 1
    width, height, count = (int(v) for v in args.size.split("x"))
    frames = clip(count, height, width)
    started = time.perf_counter()
    yuv = to_yuv420(frames)
    convert_s = time.perf_counter() - started
    print(f"# {width}x{height}x{count}, {os.cpu_count()} CPUs, PyAV {av.__version__}; "
          f"RGB->YUV 4:2:0 alone (libswscale, one thread): {convert_s:.3f} s", flush=True)  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "clip.mp4"
        for preset in args.presets.split(","):
            for pixel_format, source in (("rgb24", list(frames)), ("yuv420p", yuv)):
                seconds = min(encode(path, source, pixel_format, preset, height, width) for _ in range(args.repeats))
                row = {"preset": preset, "input": pixel_format, "seconds": round(seconds, 3),
                       "fps": round(count / seconds, 1), "kib": path.stat().st_size // 1024,
                       "psnr_db": psnr(path, yuv)}  # fmt: skip
                rows.append(row)
                print(json.dumps(row), flush=True)
        rows += package_writer(Path(folder), frames, args.repeats)
    if args.json:
        Path(args.json).write_text(json.dumps({"convert_s": convert_s, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
