"""Which device this is: a random id made once and kept in the state directory.

Why not the hostname: cloned VMs, cloud images and phones of one model all call themselves the same,
so hosts named after the hostname collided (each registration evicted or was refused by the other's)
and ``status`` counted three devices as one. The hostname stays what people read; the device id is
what tells devices apart: default node ids carry its first :data:`SHORT_LENGTH` characters
(``<hostname>-<6 of the device id>-<n>``) and the controller counts devices by it.

The id lives in ``$XDG_STATE_HOME/bxthre3/device_id`` (:func:`device_id_path`). A device cloned
*with* its state directory carries the same id as the original; ``bxthre3 device-id --new`` on the
clone gives it its own (node ids change with it, and so do their host keys, which are kept per node id).
``--device-id`` or ``$BXTHRE3_DEVICE_ID`` override the file (tests, a read-only home).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import socket
import sys
import threading
from collections.abc import Mapping
from pathlib import Path

from ..common import paths
from ..common.errors import Bxthre3Error

log = logging.getLogger("bxthre3.device_identity")  # the name log lines show: kept from before the move to packages

DEVICE_ID_ENV = "BXTHRE3_DEVICE_ID"
"""Overrides the kept device id (after ``--device-id``, before the file)."""

DEVICE_ID_RE = re.compile(r"^[0-9a-z]{6,64}$")
"""What a device id may be: 6-64 lowercase letters and digits (made ones are 32 hex digits)."""

SHORT_LENGTH = 6
"""Characters of the device id in default node ids: enough that two devices of one hostname differ
(16.7 million values for 6 hex digits), short enough to read in a status table."""

MAX_NAME_LENGTH = 48
"""A hostname is cut to this in node ids, so `<name>-<short id>-<n>` stays well under the 128-character limit."""

RENEW_COMMAND = "bxthre3 device-id --new"
"""The one command that gives a cloned device its own id (named in every duplicate-id message)."""

_NOT_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def device_id_path() -> Path:
    """``$XDG_STATE_HOME/bxthre3/device_id``."""
    return paths.state_home() / "device_id"


def new_device_id() -> str:
    """128 random bits as 32 hex digits."""
    return os.urandom(16).hex()  # not `secrets`: its hmac import loads OpenSSL, ~3.5 MB in every host


def check_device_id(value: str, where: str) -> str:
    """``value`` if it is a device id, else a one-line error saying which flag, variable or file to fix."""
    text = value.strip()
    if not DEVICE_ID_RE.match(text):
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise Bxthre3Error(f"{where}: a device id is 6-64 lowercase letters and digits, not {shown!r}")
    return text


def load_device_id(path: Path | None = None) -> str | None:
    """The kept id, None when there is none yet; a damaged file is an error naming the fix."""
    path = path or device_id_path()
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise Bxthre3Error(f"cannot read the device id in {path}: {exc.strerror}") from None
    try:
        return check_device_id(text, str(path))
    except Bxthre3Error as exc:
        raise Bxthre3Error(f"{exc}; run `{RENEW_COMMAND}` to make a new one") from None


def _write_aside(path: Path, device_id: str) -> Path:
    """The id written and synced to a temporary file beside ``path`` (mode 0644: the id is no secret)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(device_id + "\n")
        f.flush()
        os.fsync(f.fileno())
    return tmp


def load_or_create_device_id(path: Path | None = None) -> str:
    """This device's id, made on first use.

    Creation is atomic (written aside, then hard-linked into place): a node manager and a host
    starting at the same moment agree on one id, and no reader ever sees a half-written file.
    A state directory that cannot be written gives an id for this process only, with a warning:
    node ids are then unique but change with every start.
    """
    path = path or device_id_path()
    existing = load_device_id(path)
    if existing is not None:
        return existing
    fresh = new_device_id()
    tmp: Path | None = None
    try:
        tmp = _write_aside(path, fresh)
        try:
            os.link(tmp, path)
        except FileExistsError:  # another process made it first: use theirs
            return load_device_id(path) or fresh
    except OSError as exc:
        log.warning("cannot keep the device id in %s (%s); using one for this process only", path, exc.strerror)
    finally:
        if tmp is not None:
            try:
                tmp.unlink()
            except OSError:
                pass
    return fresh


def renew_device_id(path: Path | None = None) -> str:
    """Replace the kept id with a new one (atomically) and return it: the fix for a cloned state directory."""
    path = path or device_id_path()
    fresh = new_device_id()
    try:
        tmp = _write_aside(path, fresh)
        os.replace(tmp, path)
    except OSError as exc:
        raise Bxthre3Error(f"cannot write the device id to {path}: {exc.strerror}") from None
    return fresh


def resolve_device_id(flag: str | None, environ: Mapping[str, str] | None = None, path: Path | None = None) -> str:
    """``--device-id``, else ``$BXTHRE3_DEVICE_ID``, else the kept id (made on first use)."""
    if flag:
        return check_device_id(flag, "--device-id")
    env = (os.environ if environ is None else environ).get(DEVICE_ID_ENV, "").strip()
    if env:
        return check_device_id(env, f"${DEVICE_ID_ENV}")
    return load_or_create_device_id(path)


def short_id(device_id: str) -> str:
    """The part of the device id that default node ids carry."""
    return device_id[:SHORT_LENGTH]


def display_name(hostname: str | None = None) -> str:
    """The hostname as a node id part: letters, digits, '.', '_', '-' only, cut to MAX_NAME_LENGTH."""
    name = socket.gethostname() if hostname is None else hostname
    cleaned = _NOT_NAME.sub("-", name).strip("-._")[:MAX_NAME_LENGTH].rstrip("-._")
    return cleaned or "device"


def node_prefix(device_id: str, hostname: str | None = None) -> str:
    """``<hostname>-<6 of the device id>``: what a device's default node ids start with."""
    return f"{display_name(hostname)}-{short_id(device_id)}"


def default_host_id(device_id: str, pid: int, hostname: str | None = None) -> str:
    """The node id of a host started by hand without ``--node-id``: unique per device and process."""
    return f"{node_prefix(device_id, hostname)}-{pid}"


def form_host_id(environ: Mapping[str, str] | None = None) -> str:
    """The TUI's default node id for a host: ``<hostname>-<6 of the device id>-host``, stable across
    starts (so its key file is reused) and apart from the node manager's ``-1, -2 ...``. A damaged id
    file must not stop the form from opening: then a random suffix, as before device ids."""
    try:
        return f"{node_prefix(resolve_device_id(None, environ))}-host"
    except Bxthre3Error:
        return f"{display_name()}-{os.urandom(2).hex()}"


# ---------------------------------------------------------------------- what fixes a duplicate node id

HOST_HINT = "give each host a unique --node-id"
"""For a host started by hand: its node id is its own choice."""


def node_manager_hint(device_name: str | None, device_id: str) -> str:
    """What fixes a duplicate node id of a host a node manager started, said for *that* node manager."""
    if device_name:
        return f"give this node manager another --device-name than {device_name!r} (its hosts are named after it)"
    return (
        f"this device shares its device id ({short_id(device_id)}...) with another one, e.g. a clone of its "
        f"state directory: run `{RENEW_COMMAND}` on one of them and restart its node manager "
        "(or start that node manager with another --device-id)"
    )


def refusal_message(address: object, duplicate: str, hint: str) -> str:
    """The one line a host exits with when its node id is taken: what happened, then what fixes it."""
    return f"controller {address} refused this host: {duplicate}; {hint}"


# ---------------------------------------------------------------------- `bxthre3 device-id`


def register_cli(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "device-id",
        help="print this device's id (node ids and device counts use it); --new gives a cloned device its own",
    )
    p.add_argument(
        "--new", action="store_true",
        help="replace the kept id with a new one: run it on a clone that copied another device's state directory",
    )  # fmt: skip
    p.set_defaults(handler=_run_device_id)


def _run_device_id(args: argparse.Namespace) -> int:
    path = device_id_path()
    if args.new:
        old = load_device_id_quietly(path)
        fresh = renew_device_id(path)
        print(fresh)
        was = f" (was {old})" if old else ""
        print(f"bxthre3: new device id kept in {path}{was}; restart this device's node manager", file=sys.stderr)
        return 0
    print(resolve_device_id(None, path=path))  # the id the roles started here use
    if os.environ.get(DEVICE_ID_ENV, "").strip():
        print(f"bxthre3: note: from ${DEVICE_ID_ENV}, which overrides the one kept in {path}", file=sys.stderr)
    return 0


def load_device_id_quietly(path: Path) -> str | None:
    """The kept id, or None when it is missing or damaged (``--new`` replaces it either way)."""
    try:
        return load_device_id(path)
    except Bxthre3Error:
        return None
