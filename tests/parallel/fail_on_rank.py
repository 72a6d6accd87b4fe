"""A pipeline's command line with a failure injected on one rank (test-only; nothing in src/ reads this).

    torchrun --standalone --nproc-per-node 2 tests/parallel/fail_on_rank.py RANK CALL MODULE CLI-ARGS...

On rank RANK, the CALL-th denoising step (counted over all stages, from 1) raises
``RuntimeError("injected failure")`` before computing its passes, while the other ranks go on into
that step's collectives and block there. ``cli.run_cli`` must end every rank with a clear message.
"""

from __future__ import annotations

import importlib
import os
import sys

from ltx_pipelines.engine import cli
from ltx_pipelines.parallel.guidance_split import GuidanceSplit


def main() -> None:
    rank, call, module, argv = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4:]
    real_call = GuidanceSplit.__call__
    calls = [0]

    def failing_call(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        calls[0] += 1
        if int(os.environ["RANK"]) == rank and calls[0] == call:
            raise RuntimeError("injected failure")
        return real_call(self, *args, **kwargs)

    GuidanceSplit.__call__ = failing_call  # test-only patch, this process only
    cli.run_cli(importlib.import_module(f"ltx_pipelines.{module}").main, argv)


if __name__ == "__main__":
    main()
