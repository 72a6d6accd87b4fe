"""The server's command-line flags, and the settings they decide.

The model flags are the pipelines' own (same names, the same LoRA syntax, the same checks), plus the
files only some pipelines need (``--distilled-checkpoint-path`` for ``distilled`` and ``ic_lora``,
``--ic-lora``). ``--smoke`` serves the random-weight smoke model instead, built on first use.
"""

from __future__ import annotations

import argparse
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from ltx_pipelines.acceleration.cli_flags import add_compile_args
from ltx_pipelines.engine import cli
from ltx_pipelines.engine.model_ledger import comfy_lora
from ltx_pipelines.models.files import VAE_DECODERS
from ltx_pipelines.serve.catalog import ServedFiles
from ltx_pipelines.utils import constants as C
from ltx_pipelines.utils.errors import InputError

DEFAULT_DATA_DIR = "ltx-serve-data"
API_KEY_ENV = "LTX_SERVE_API_KEY"


@dataclass(frozen=True)
class ServerSettings:
    files: ServedFiles
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8000
    database_url: str | None = None  # default: SQLite file under data_dir
    api_key: str | None = None
    max_queue: int = 100
    max_upload_bytes: int = 200 << 20
    cors_origins: tuple[str, ...] = ()
    idle_release: float | None = None
    devices: tuple[str, ...] | None = None  # default: every visible GPU, else the CPU
    log_level: str = "INFO"
    allowed_hosts: tuple[str, ...] = ()  # Host names accepted besides loopback ones, when listening on loopback
    warm_up: bool | None = None  # compile the default job's shapes at start; None: where a worker has a GPU


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ltx_pipelines.serve",
        description="Serve the LTX-2 pipelines: an HTTP API, an OpenAI-compatible /v1/videos endpoint and a web "
        "page, over a durable job queue. Try it with --smoke (random weights: the videos are noise).",
        formatter_class=lambda prog: argparse.ArgumentDefaultsHelpFormatter(prog, max_help_position=38, width=110),
    )
    models = parser.add_argument_group("model files (the pipelines' flags)")
    models.add_argument(
        "--smoke", nargs="?", const="", default=None, metavar="DIR",
        help="Serve the smoke model (random weights: every video is NOISE), built on first use in DIR "
        "(without DIR: <data-dir>/smoke-model). Replaces the model flags.",
    )  # fmt: skip
    models.add_argument("--checkpoint-path", type=cli.resolve_path, help="Full LTX-2 checkpoint (guided pipelines).")
    models.add_argument(
        "--distilled-checkpoint-path", type=cli.resolve_path, help="Distilled LTX-2 checkpoint (distilled, ic_lora)."
    )
    models.add_argument("--gemma-root", type=cli.resolve_path, help="Folder of the Gemma-3 text encoder.")
    models.add_argument("--transformer-path", type=cli.resolve_path, help="Split full (dev) transformer (LTX-2.5).")
    models.add_argument(
        "--distilled-transformer-path", type=cli.resolve_path, help="Split distilled transformer (LTX-2.5)."
    )
    models.add_argument("--text-encoder-path", type=cli.resolve_path, help="Packed text encoder (LTX-2.5).")
    models.add_argument("--video-vae-path", type=cli.resolve_path, help="Video VAE file (LTX-2.5).")
    models.add_argument(
        "--vae-decoder", choices=VAE_DECODERS, default="auto",
        help="Video decoder: auto (what the video VAE file carries; with --model-dir, LTX-2.5's diffusion decoder "
        "where both files are there), diffusion, or conv (LTX-2.5's lighter convolutional decoder file).",
    )  # fmt: skip
    models.add_argument("--audio-vae-path", type=cli.resolve_path, help="Audio VAE and vocoder file (LTX-2.5).")
    models.add_argument("--duration-head-path", type=cli.resolve_path, help="Duration head file (LTX-2.5).")
    models.add_argument(
        "--prompt-enhancer-gemma-root", type=cli.resolve_path,
        help="A Gemma 3 or dense Gemma 4 folder that rewrites prompts for enhance_prompt on LTX-2.5 (its Gemma 4 "
        "only encodes; a Gemma 4 enhancer rewrites text prompts only).",
    )  # fmt: skip
    models.add_argument(
        "--model-dir", type=cli.resolve_path, metavar="DIR",
        help="A downloaded model folder: the full and distilled models and the files that go with them are found "
        "there (the model flags above win); the log says what was picked.",
    )  # fmt: skip
    models.add_argument("--spatial-upsampler-path", type=cli.resolve_path, help="x2 latent upsampler (.safetensors).")
    cli.add_distilled_lora_arg(models)
    models.add_argument(
        "--lora", dest="loras", action=cli._LoraAction, nargs="+", default=[], metavar="PATH [STRENGTH]",
        help="A LoRA applied by every pipeline but ic_lora (repeatable).",
    )  # fmt: skip
    models.add_argument(
        "--ic-lora", dest="ic_loras", action=cli._LoraAction, nargs="+", default=[], metavar="PATH [STRENGTH]",
        help="IC-LoRA of the ic_lora pipeline (repeatable).",
    )  # fmt: skip
    models.add_argument("--quantization", choices=["fp8-cast", "fp8-scaled-mm"], default=None, help="FP8 transformer.")
    models.add_argument(
        "--offload", choices=["none", "cpu", "disk", "auto"], default="auto",
        help="Where the transformer's weights live (as in the pipelines' --offload).",
    )  # fmt: skip
    models.add_argument(
        "--max-gpu-memory", type=float, default=None, metavar="GIB", help="Use at most this much GPU memory."
    )
    add_compile_args(models)

    server = parser.add_argument_group("server")
    server.add_argument("--host", default="127.0.0.1", help="Address to listen on (0.0.0.0: every interface).")
    server.add_argument("--port", type=int, default=8000)
    server.add_argument("--data-dir", type=cli.resolve_path, default=DEFAULT_DATA_DIR, help="Jobs, uploads, outputs.")
    server.add_argument(
        "--database-url", default=None, help="SQLAlchemy URL of the job store (unset: a SQLite file in --data-dir)."
    )
    server.add_argument("--max-queue", type=int, default=100, help="Jobs waiting at most; more get HTTP 429.")
    server.add_argument(
        "--idle-release", type=float, default=None, metavar="SECONDS",
        help="Free the GPU's models after this long without a job (they load again with the next).",
    )  # fmt: skip
    server.add_argument(
        "--warm-up", action=argparse.BooleanOptionalAction, default=None,
        help="At start, each worker runs the default job once (the default pipeline, size and frames, 2 steps; "
        "nothing is stored) so that its compiled shapes are ready before the first request. Default: on for GPU "
        "workers, off on the CPU.",
    )  # fmt: skip
    server.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])

    security = parser.add_argument_group("security")
    security.add_argument(
        "--api-key", default=None,
        help=f"Require 'Authorization: Bearer KEY' on every route but the page's files (or set ${API_KEY_ENV}, "
        "which keeps the key out of the process list).",
    )  # fmt: skip
    security.add_argument("--max-upload-mb", type=float, default=200.0, help="Largest request body (all uploads).")
    security.add_argument(
        "--cors-origin", dest="cors_origins", action="append", default=[], metavar="ORIGIN",
        help="Let pages of ORIGIN (e.g. https://app.example.com) call the API (repeatable; default: none).",
    )  # fmt: skip
    security.add_argument(
        "--allow-host", dest="allowed_hosts", action="append", default=[], metavar="NAME",
        help="On a loopback --host only loopback Host names are answered (against DNS rebinding); also accept "
        "NAME, e.g. the public name a reverse proxy forwards (repeatable).",
    )  # fmt: skip
    return parser


#: Server flag -> ServedFiles field, for the flags that name one model file each.
_MODEL_FLAGS = {
    "checkpoint_path": "checkpoint", "distilled_checkpoint_path": "distilled_checkpoint", "gemma_root": "gemma_root",
    "transformer_path": "transformer", "distilled_transformer_path": "distilled_transformer",
    "text_encoder_path": "text_encoder", "video_vae_path": "video_vae", "audio_vae_path": "audio_vae",
    "duration_head_path": "duration_head", "spatial_upsampler_path": "spatial_upsampler",
    "prompt_enhancer_gemma_root": "prompt_enhancer_gemma_root",
}  # fmt: skip


def compile_settings(args: argparse.Namespace) -> dict[str, object]:
    """The ServedFiles fields of the compile flags (absent from namespaces built before they existed)."""
    return {"compile": getattr(args, "compile", None), "compile_cache": getattr(args, "compile_cache", None),
            "attention": getattr(args, "attention", "auto")}  # fmt: skip


def settings_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> ServerSettings:
    """Check the flags together and turn them into settings (building the smoke model if asked)."""
    data_dir = Path(args.data_dir)
    if args.max_queue < 1:
        parser.error("--max-queue must be at least 1")
    if args.max_upload_mb <= 0:
        parser.error("--max-upload-mb must be positive")
    if args.idle_release is not None and args.idle_release < 0:
        parser.error("--idle-release must not be negative")
    if args.smoke is not None:
        given = [f"--{name.replace('_', '-')}" for name in (*_MODEL_FLAGS, "model_dir") if getattr(args, name)]
        if given or args.distilled_lora or args.loras or args.ic_loras:
            parser.error(f"--smoke serves the smoke model; leave out {', '.join(given) or 'the LoRA flags'}")
        files = smoke_files(Path(args.smoke) if args.smoke else data_dir / "smoke-model", args)
    else:
        files = served_files(args, parser)
    return ServerSettings(
        files=files,
        data_dir=data_dir,
        host=args.host,
        port=args.port,
        database_url=args.database_url,
        api_key=args.api_key or os.environ.get(API_KEY_ENV) or None,
        max_queue=args.max_queue,
        max_upload_bytes=int(args.max_upload_mb * (1 << 20)),
        cors_origins=tuple(args.cors_origins),
        idle_release=args.idle_release,
        log_level=args.log_level,
        allowed_hosts=tuple(h.lower() for h in args.allowed_hosts),
        warm_up=args.warm_up,
    )


def served_files(args: argparse.Namespace, parser: argparse.ArgumentParser) -> ServedFiles:
    """The model flags (and what --model-dir finds for the ones not given) as the server's files."""
    named = {field: str(getattr(args, flag)) for flag, field in _MODEL_FLAGS.items() if getattr(args, flag)}
    found = _found_in_model_dir(args.model_dir, parser, args.vae_decoder) if args.model_dir else {}
    distilled_lora = tuple(args.distilled_lora)
    if not distilled_lora and found.get("distilled_lora"):
        distilled_lora = (comfy_lora(found.pop("distilled_lora"), C.DEFAULT_DISTILLED_LORA_STRENGTH),)
    found.pop("distilled_lora", None)
    files = ServedFiles(
        **{**found, **named}, distilled_lora=distilled_lora, loras=tuple(args.loras), ic_loras=tuple(args.ic_loras),
        quantization=args.quantization, offload=args.offload, max_gpu_memory=args.max_gpu_memory,
        **compile_settings(args),
        vae_decoder=args.vae_decoder,
    )  # fmt: skip
    if not (files.has("model") or files.has("distilled_model")):
        parser.error("give a model: --checkpoint-path and/or --distilled-checkpoint-path with --gemma-root, the split "
                     "files (--transformer-path and/or --distilled-transformer-path, --text-encoder-path, "
                     "--video-vae-path, --audio-vae-path), --model-dir, or --smoke")  # fmt: skip
    return files


def _found_in_model_dir(model_dir: str, parser: argparse.ArgumentParser, vae_decoder: str = "auto") -> dict[str, str]:
    """ServedFiles fields for what --model-dir holds: its full and its distilled model, each where present."""
    from ltx_pipelines.models import discovery

    root = Path(model_dir)
    try:
        scanned = discovery.scan(root)
    except InputError as e:
        parser.error(str(e))
    fields: dict[str, str] = {}
    for distilled in (False, True):
        try:
            picked = discovery.pick(scanned, distilled=distilled, vae_decoder=vae_decoder)
        except InputError as e:
            logging.getLogger(__name__).info("--model-dir: no %s model (%s)", "distilled" if distilled else "full", e)
            continue
        discovery.log_picked(picked, root)
        for name, value in picked.given().items():
            field = _PICKED_FIELD.get((name, distilled), _PICKED_FIELD.get((name, None)))
            fields.setdefault(field, str(value))
    if not fields:
        parser.error(f"--model-dir {root} holds no LTX model this server can run")
    return fields


#: (Picked field, the distilled pick?) -> ServedFiles field; None: the same for either pick.
_PICKED_FIELD = {
    ("checkpoint_path", False): "checkpoint", ("checkpoint_path", True): "distilled_checkpoint",
    ("transformer_path", False): "transformer", ("transformer_path", True): "distilled_transformer",
    ("gemma_root", None): "gemma_root", ("text_encoder_path", None): "text_encoder",
    ("video_vae_path", None): "video_vae", ("audio_vae_path", None): "audio_vae",
    ("duration_head_path", None): "duration_head", ("spatial_upsampler_path", None): "spatial_upsampler",
    ("distilled_lora_path", None): "distilled_lora",
}  # fmt: skip


def smoke_files(folder: Path, args: argparse.Namespace) -> ServedFiles:
    """The smoke bundle in ``folder`` (built there if missing), as the server's model files."""
    from ltx_pipelines.smoke_model import ensure_smoke_bundle

    bundle = ensure_smoke_bundle(folder)
    return ServedFiles(
        gemma_root=str(bundle.gemma_root),
        checkpoint=str(bundle.checkpoint),
        distilled_checkpoint=str(bundle.distilled_checkpoint),
        distilled_lora=(comfy_lora(bundle.distilled_lora, C.DEFAULT_DISTILLED_LORA_STRENGTH),),
        spatial_upsampler=str(bundle.spatial_upsampler),
        ic_loras=(comfy_lora(bundle.ic_lora, C.DEFAULT_LORA_STRENGTH),),
        quantization=args.quantization,
        offload=args.offload,
        max_gpu_memory=args.max_gpu_memory,
        **compile_settings(args),
    )


__all__ = ["DEFAULT_DATA_DIR", "ServerSettings", "build_parser", "settings_from_args", "smoke_files"]
