"""Run a pipeline's command line (``cli.run_cli(main)``, as ``python -m`` does) and keep the frames it writes.

    torchrun --standalone --nproc-per-node 2 tests/parallel/cli_frames.py MODULE FRAMES.pt CLI-ARGS...

The mp4 encoder runs frame threads and is not bit-reproducible, so tests compare the frames handed to
it: ``write_video`` is wrapped (in this process only) to save them to FRAMES.pt first. Under torchrun
only rank 0 writes, so only rank 0 saves.
"""

from __future__ import annotations

import importlib
import sys

import torch

from ltx_pipelines.engine import cli, pipeline_base


def main() -> None:
    module, frames_path, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
    real_write = pipeline_base.write_video

    def write_and_keep(path, frames, fps, audio, **kwargs):  # noqa: ANN001, ANN202
        frames = torch.cat(list(frames), dim=0)
        torch.save({"frames": frames, "waveform": audio.waveform}, frames_path)
        return real_write(path, iter([frames]), fps, audio, **kwargs)

    pipeline_base.write_video = write_and_keep  # test-only wrap, this process only
    cli.run_cli(importlib.import_module(f"ltx_pipelines.{module}").main, argv)


if __name__ == "__main__":
    main()
