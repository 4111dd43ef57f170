"""``python -m service`` / ``microexp-serve``: run the API under uvicorn.

Flags override the ``MICROEXP_*`` environment variables; they are passed to the workers through the
environment, so every worker process builds the same settings.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile

import uvicorn
from pydantic import ValidationError

from service.logs import logging_config
from service.metrics import MULTIPROC_ENV
from service.settings import Settings

_FLAGS = {
    "host": "MICROEXP_HOST",
    "port": "MICROEXP_PORT",
    "store": "MICROEXP_STORE",
    "workers": "MICROEXP_WORKERS",
    "default_size": "MICROEXP_DEFAULT_SIZE",
    "detector": "MICROEXP_DETECTOR",
    "yunet_model": "MICROEXP_YUNET_MODEL",
    "reload_interval": "MICROEXP_RELOAD_INTERVAL",
    "log_level": "MICROEXP_LOG_LEVEL",
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="microexp-serve",
        description="Serve facial-expression recognition over HTTP. Every flag has a MICROEXP_* variable.",
    )
    parser.add_argument("--host", help="interface to listen on (MICROEXP_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="TCP port (MICROEXP_PORT, default 8000)")
    parser.add_argument("--store", help="model store folder (MICROEXP_STORE, default: the repository's models/)")
    parser.add_argument("--workers", type=int, help="worker processes (MICROEXP_WORKERS, default 1)")
    parser.add_argument("--default-size", help="size used when a request names none (MICROEXP_DEFAULT_SIZE)")
    parser.add_argument("--detector", help="default face detector: yunet (default), haar or mtcnn (MICROEXP_DETECTOR)")
    parser.add_argument(
        "--yunet-model", help="face_detection_yunet_2023mar.onnx (MICROEXP_YUNET_MODEL, default: the store's copy)"
    )
    parser.add_argument("--reload-interval", type=float, help="seconds between store checks (MICROEXP_RELOAD_INTERVAL)")
    parser.add_argument("--log-level", help="debug, info, warning or error (MICROEXP_LOG_LEVEL)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    for name, variable in _FLAGS.items():
        value = getattr(args, name)
        if value is not None:
            os.environ[variable] = str(value)
    try:
        settings = Settings()
    except ValidationError as error:
        sys.exit(f"microexp-serve: invalid configuration:\n{error}")
    metrics_dir = None
    if settings.workers > 1 and MULTIPROC_ENV not in os.environ:
        # Each worker counts its own requests; a shared folder lets /metrics report all of them.
        metrics_dir = os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="microexp-metrics-")
    try:
        uvicorn.run(
            "service.app:create_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            log_config=logging_config(settings.log_level),
            access_log=False,
            # X-Forwarded-For names the client only when the peer is one of the configured proxies.
            proxy_headers=bool(settings.trusted_proxies),
            forwarded_allow_ips=[str(network) for network in settings.trusted_proxies],
            timeout_keep_alive=settings.keep_alive_timeout,
            limit_concurrency=settings.max_connections,
        )
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
