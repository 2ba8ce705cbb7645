"""Logging set-up, applied only by the CLI: the library itself never configures logging.

Also where logs go and how files that grow without a logger behind them (a host's captured
stdout/stderr) are kept as bounded as the log files themselves.
"""

from __future__ import annotations

import logging
import logging.config
import os
import shutil
from pathlib import Path
from typing import Any

from .errors import Bxthre3Error
from .paths import state_home

LOG_DIR_ENV = "BXTHRE3_LOG_DIR"
"""Overrides where every role writes its logs (bootstrap.sh sets it to the checkout's ``logs/``)."""

LOG_MAX_BYTES = 5 * 1024 * 1024
"""A log file is rotated when it grows past this."""

LOG_BACKUPS = 2
"""Rotated copies kept (``name.1`` newest, ``name.2``), so one role's logs never pass 15 MB."""


def chosen_log_dir() -> Path | None:
    """``$BXTHRE3_LOG_DIR`` made absolute, or None when it is unset (the user chose no place)."""
    value = os.environ.get(LOG_DIR_ENV) or ""
    return Path(value).absolute() if value else None


def default_log_dir() -> Path:
    """``$BXTHRE3_LOG_DIR``, else ``logs`` in the XDG state directory.

    Not the current directory: a role started from five places used to leave five ``logs`` folders.
    A relative ``$BXTHRE3_LOG_DIR`` is made absolute at once, so it names the same folder for the
    children (hosts of a node manager) whatever directory they start in.
    """
    return chosen_log_dir() or state_home() / "logs"


def role_log_file(log_file: Path | str | None, name: str) -> Path:
    """A role's log file: the one given by ``--log-file``, else ``name`` in :func:`default_log_dir`."""
    return Path(log_file) if log_file is not None else default_log_dir() / name


def rotate_if_large(path: Path, max_bytes: int = LOG_MAX_BYTES, backups: int = LOG_BACKUPS) -> bool:
    """Rotate ``path`` like the log files (``path.1`` newest ... ``path.<backups>``) once it passes ``max_bytes``.

    For files a child process writes directly (a host's stdout/stderr, opened in append mode): the
    content is copied to ``path.1`` and ``path`` truncated in place, so a writer that still holds it
    open goes on appending at the new end instead of into a renamed file. Lines written between
    the copy and the truncation are lost; that is the price of rotating without the writer's help.
    Returns whether it rotated; a file that cannot be read or written is left alone.
    """
    try:
        if path.stat().st_size <= max_bytes:
            return False
        for index in range(backups - 1, 0, -1):
            older = path.with_name(f"{path.name}.{index}")
            if older.exists():
                older.replace(path.with_name(f"{path.name}.{index + 1}"))
        if backups > 0:
            shutil.copyfile(path, path.with_name(f"{path.name}.1"))
        with open(path, "r+b") as f:
            f.truncate(0)
    except OSError:
        return False
    return True


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
            "maxBytes": LOG_MAX_BYTES,
            "backupCount": LOG_BACKUPS,
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
        raise Bxthre3Error(
            f"cannot write the log file {log_file}: {exc.__cause__ or exc} "
            f"(choose another with --log-file or ${LOG_DIR_ENV})"
        ) from exc
