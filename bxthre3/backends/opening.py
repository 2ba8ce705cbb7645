"""How a backend is named and opened: `--backend`'s URL (:func:`parse_backend`, pure, one-line errors) and
:func:`open_backend`, which imports the engine's module (`dask_backend`, `ray_backend`) only then, so nothing
of Dask or Ray is imported unless that backend is asked for, and a missing extra is one line naming the
`pip install` that brings it.

Every backend is a context manager with the same one method, ``run(dag_run, on_progress) -> dag_run``: it
runs a `driver.DagRun` (made by the caller with :func:`new_run`, so another thread may read its progress
and set `cancel_requested`) to its end; the ended run's `results()` print as a controller's results do.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..common.errors import Bxthre3Error, ClusterError

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..dag.spec import DagSpec
    from .driver import DagRun, Policy

KINDS = ("dask", "ray")

FORMS = "dask://HOST:PORT, dask:local, ray://HOST:PORT, ray:auto or ray:local"
"""Every accepted `--backend` form, for error messages and help."""


@dataclass(frozen=True, slots=True)
class BackendURL:
    """A parsed `--backend` value."""

    kind: str
    """`dask` or `ray`."""
    address: str | None
    """`HOST:PORT` of an existing cluster's scheduler (Dask) or Ray Client server; None for `local`/`auto`."""
    mode: str
    """`remote` (an address), `local` (a cluster started for this run on 127.0.0.1), or `auto` (Ray: the
    cluster this machine is a node of, as `ray.init(address="auto")` finds it)."""
    text: str

    def __str__(self) -> str:
        return self.text


def parse_backend(text: str) -> BackendURL:
    """`--backend`'s value, or a one-line error naming the accepted forms."""
    value = text.strip()
    kind, sep, rest = value.partition(":")
    if not sep or kind not in KINDS:
        raise Bxthre3Error(f"--backend {text!r}: not a backend; use {FORMS} (or leave it out for Bxthre3's own)")
    if rest == "local":
        return BackendURL(kind, None, "local", value)
    if rest == "auto" and kind == "ray":
        return BackendURL(kind, None, "auto", value)
    if rest.startswith("//"):
        address = rest[2:].rstrip("/")
        host, colon, port = address.rpartition(":")
        if colon and host and port.isdigit() and 0 < int(port) < 65536:
            return BackendURL(kind, address, "remote", value)
        raise Bxthre3Error(f"--backend {text!r}: the address must be HOST:PORT (e.g. {kind}://10.0.0.5:8786)")
    raise Bxthre3Error(f"--backend {text!r}: use {FORMS}")


class Backend(Protocol):
    """An opened backend: `with open_backend(...) as b: run = b.run(spec, policy, on_progress)`."""

    def __enter__(self) -> Backend: ...

    def __exit__(self, *exc_info: object) -> None: ...

    def run(self, run: DagRun, on_progress: Callable[[dict[str, Any]], None] | None = None) -> DagRun: ...


_MODULES = {"dask": ("dask_backend", "DaskBackend"), "ray": ("ray_backend", "RayBackend")}


def open_backend(url: BackendURL, *, workers: int = 2, threads: int = 1) -> Backend:
    """The backend `url` names, not yet entered; `workers` x `threads` size a `local` cluster only."""
    module_name, class_name = _MODULES[url.kind]
    try:
        module = importlib.import_module(f"{__package__}.{module_name}")
    except ImportError as exc:
        if exc.name is not None and exc.name.split(".")[0] in ("dask", "distributed", "ray"):
            raise ClusterError(
                f"--backend {url}: {url.kind.capitalize()} is not installed here; pip install 'bxthre3[{url.kind}]'"
            ) from exc
        raise
    backend: Backend = getattr(module, class_name)(url, workers=workers, threads=threads)
    return backend


def new_run(spec: DagSpec, policy: Policy) -> DagRun:
    """A run of `spec` for a backend, named by a fresh id (keys on the engine's cluster carry it)."""
    import random
    import time
    import uuid

    from .driver import DagRun

    return DagRun(spec, uuid.uuid4().hex[:12], policy, time.time(), rng=random.random)
