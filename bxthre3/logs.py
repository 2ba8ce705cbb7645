"""Logging set-up, applied only by the CLI: the library itself never configures logging."""

from __future__ import annotations

import logging
import logging.config
from pathlib import Path
from typing import Any

from .errors import Bxthre3Error


def logging_config(level: str = "INFO", log_file: Path | None = None, console: bool = True) -> dict[str, Any]:
    handlers: dict[str, Any] = {}
    if console:
        handlers["console"] = {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stderr",
            "formatter": "short",
        }
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers["file"] = {
            "class": "logging.handlers.RotatingFileHandler",
            "filename": str(log_file),
            "maxBytes": 5 * 1024 * 1024,
            "backupCount": 2,
            "formatter": "full",
        }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "short": {"format": "%(asctime)s %(levelname)-7s %(message)s", "datefmt": "%H:%M:%S"},
            "full": {"format": "%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"},
        },
        "handlers": handlers,
        "root": {"level": level, "handlers": list(handlers)},
    }


def setup_logging(level: str = "INFO", log_file: Path | None = None, console: bool = True) -> None:
    try:
        logging.config.dictConfig(logging_config(level, log_file, console))
    except (ValueError, OSError) as exc:
        raise Bxthre3Error(f"cannot write the log file {log_file}: {exc.__cause__ or exc}") from exc
