"""How a pipeline's command line runs under torchrun: one process group around ``main()``.

A rank that fails prints one clear line naming itself and exits at once with a non-zero code;
torchrun then stops the other ranks (they may be blocked in a collective, waiting for the failed
one, which no timeout-free mechanism can unblock). Nothing is written: only rank 0 writes, at the
very end, atomically.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Callable

from ltx_pipelines.parallel.process_group import TorchrunEnv, destroy, init_from_env
from ltx_pipelines.utils.errors import InputError


def device_flag(argv: list[str] | None) -> str | None:
    """The value of ``--device`` in the command line (the group's backend depends on it)."""
    args = sys.argv[1:] if argv is None else argv
    for i, arg in enumerate(args):
        if arg == "--device" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--device="):
            return arg.split("=", 1)[1]
    return None


def quiet_other_ranks(rank: int) -> None:
    """Only rank 0 logs progress: the others log warnings and errors, and show no progress bars."""
    if rank != 0:
        logging.getLogger("ltx_pipelines").setLevel(logging.WARNING)
        os.environ["TQDM_DISABLE"] = "1"


def _exit(code: int) -> None:
    """Leave now: a normal exit could wait forever tearing down a group whose peers are stuck."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def run_cli_distributed(main: Callable[[list[str] | None], object], argv: list[str] | None = None) -> None:
    """``cli.run_cli`` under torchrun: start the group, run ``main``, end the group; fail loudly per rank."""
    env = TorchrunEnv.detect()
    if env is None:
        raise RuntimeError("run_cli_distributed needs the environment torchrun sets (WORLD_SIZE > 1).")
    who = f"rank {env.rank} of {env.world_size}"
    try:
        quiet_other_ranks(env.rank)
        init_from_env(device_flag(argv))
        main(argv)
    except InputError as e:
        print(f"error ({who}): {e}", file=sys.stderr)
        _exit(2)
    except KeyboardInterrupt:
        print(f"interrupted ({who}): no output was written", file=sys.stderr)
        _exit(130)
    except Exception as e:  # noqa: BLE001 - every failure must end this rank with a message
        traceback.print_exc()
        print(
            f"error: {who} failed: {type(e).__name__}: {e}. torchrun stops the other ranks; no output was written.",
            file=sys.stderr,
        )
        _exit(1)
    destroy()


__all__ = ["device_flag", "quiet_other_ranks", "run_cli_distributed"]
