"""``python -m ltx_pipelines.serve``: start the server (see ``--help``; ``--smoke`` to try it without weights)."""

from __future__ import annotations

import logging
import sys

from ltx_pipelines.engine.cli import setup_logging
from ltx_pipelines.serve.security import is_loopback_address
from ltx_pipelines.serve.settings import build_parser, settings_from_args
from ltx_pipelines.utils.errors import InputError

logger = logging.getLogger("ltx_pipelines.serve")


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    from ltx_pipelines.serve.app import create_app

    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    try:
        settings = settings_from_args(args, parser)
        server: uvicorn.Server | None = None
        app = create_app(settings, server_exiting=lambda: server is not None and server.should_exit)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    notice = settings.files.smoke_notice()
    if notice:
        logger.warning("%s The page says so too.", notice)
    if not settings.api_key and not is_loopback_address(settings.host):
        logger.warning("Listening on %s without --api-key: anyone who can reach it can use it.", settings.host)
    config = uvicorn.Config(
        app, host=settings.host, port=settings.port, log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=5, log_config=None,
    )  # fmt: skip
    server = uvicorn.Server(config)
    logger.info("Open http://%s:%d/ (API docs at /docs)", _display_host(settings.host), settings.port)
    try:
        server.run()
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl+C it already handled by shutting down cleanly
        logger.info("Stopped.")


def _display_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "") else f"[{host}]" if ":" in host else host


if __name__ == "__main__":
    main()
