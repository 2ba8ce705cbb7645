"""Logging set-up, applied only by the CLI: the library itself never configures logging.

Also where logs go and how files that grow without a logger behind them (a host's captured
stdout/stderr) are kept as bounded as the log files themselves.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from pathlib import Path

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


SHORT_FORMAT = ("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S")
"""Console lines: the time of day is enough next to a terminal."""

FULL_FORMAT = "%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"
"""Log file lines: date, process and logger, for reading after the fact."""


def setup_logging(level: str = "INFO", log_file: Path | None = None, console: bool = True) -> None:
    """Send the root logger to stderr (short lines) and/or a rotating file (full lines), at `level`.

    Built by hand rather than with `logging.config.dictConfig`: that module imports socketserver and
    more, ~0.4 MB resident in every host and controller for two handlers. Handlers a previous call
    installed are closed and replaced, as dictConfig did; other loggers are left alone."""
    handlers: list[logging.Handler] = []
    try:
        if console:
            stream = logging.StreamHandler(sys.stderr)
            stream.setFormatter(logging.Formatter(*SHORT_FORMAT))
            handlers.append(stream)
        if log_file is not None:
            from logging.handlers import RotatingFileHandler

            log_file.parent.mkdir(parents=True, exist_ok=True)
            file = RotatingFileHandler(log_file, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS)
            file.setFormatter(logging.Formatter(FULL_FORMAT))
            handlers.append(file)
        root = logging.getLogger()
        root.setLevel(level)
    except (ValueError, OSError) as exc:
        for handler in handlers:
            handler.close()
        raise Bxthre3Error(
            f"cannot write the log file {log_file}: {exc.__cause__ or exc} "
            f"(choose another with --log-file or ${LOG_DIR_ENV})"
        ) from exc
    for old in root.handlers[:]:
        root.removeHandler(old)
        old.close()
    for handler in handlers:
        root.addHandler(handler)
