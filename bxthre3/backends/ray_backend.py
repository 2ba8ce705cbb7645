"""`--backend ray://HOST:PORT`, `ray:auto`, `ray:local`: a DAG's tasks run on a Ray cluster.

Only the CLI's process and the Ray workers import this module, and only when that backend is asked for:
nothing else of Bxthre3 imports Ray. The workers need bxthre3 (same version) and its engine installed;
they run each attempt through Bxthre3's executor (`worker_side.run_attempt`), so timeouts, memory caps,
the WASI surface, output limits and failure reasons are the ones a host gives.

The loop is the Dask one (`dask_backend.run_dag`) with Ray's words; docs/BACKENDS.md has the facts behind
each choice (checked in the ray 2.60.0 sources):

- one Ray task per *attempt*, `max_retries=0` (Ray's default is 3 reruns when a worker dies) and
  `retry_exceptions=False`: which failures run again is Bxthre3's decision (`driver.DagRun`), and the task
  function returns every task failure as a value instead of raising;
- upstream results are `ObjectRef`s passed at top level, so Ray resolves them before the task starts
  and moves the bytes node to node; only succeeded tasks' refs are passed on;
- each module is `ray.put` once per DAG; its ref travels *inside* a tuple, which Ray does not resolve, so
  a worker fetches the bytes only the first time it meets that hash (then the device's module cache has it);
- a worker that dies mid-attempt (`WorkerCrashedError`, `NodeDiedError`, Ray's memory monitor's
  `OutOfMemoryError`) or a cancelled attempt is `host_lost`; `ray.cancel(force=False)` raises
  KeyboardInterrupt inside the attempt, and `worker_side` kills the executor child before re-raising.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import signal
import tempfile
import time
import warnings
from collections import deque
from collections.abc import Callable
from typing import Any

import ray
from ray import exceptions as ray_errors

from ..common.errors import ClusterError
from ..common.failures import FailureReason
from ..dag.spec import DagSpec
from .driver import AttemptSpec, DagRun
from .opening import BackendURL
from .worker_side import engine_from_probes, failed_outcome, module_cache, probe_worker, run_attempt, store_modules

log = logging.getLogger(__name__)

POLL_S = 0.2
"""Longest wait for an attempt before backoffs and cancellation are looked at again."""

PROGRESS_EVERY_S = 0.1
"""The progress bar is fed at most this often (and once at the end)."""

MIN_LIVE, LIVE_PER_CPU = 256, 32
"""Attempts given to Ray at once: max(MIN_LIVE, LIVE_PER_CPU x the cluster's CPUs); the rest wait in the
driver. `ray.wait` costs O(refs) per call (2 ms per turn with 5,000 live refs, 30 % of the loop), and
Ray only needs enough queued work to keep every CPU busy."""

LOST = (
    ray_errors.WorkerCrashedError,
    ray_errors.NodeDiedError,
    ray_errors.OutOfMemoryError,
    ray_errors.TaskCancelledError,
    ray_errors.ObjectLostError,
    ray_errors.LocalRayletDiedError,
)
"""Ray errors that mean the attempt's worker or node went, not that the module failed: `host_lost`."""


def _attempt_on_ray_worker(spec: AttemptSpec, module: tuple[Any, ...], *upstreams: dict[str, Any]) -> dict[str, Any]:
    """The Ray task: one attempt, with the node and worker that ran it.

    `module` is `(ObjectRef,)`: nested, so Ray does not fetch the bytes for every task; they are read only
    when this worker's module cache lacks the hash. A `ray.cancel` arrives as KeyboardInterrupt inside
    `run_attempt`, which kills the executor child and re-raises (Ray then reports TaskCancelledError)."""
    if not module_cache().has(spec.module_sha):
        store_modules({spec.module_sha: ray.get(module[0])})
    outcome = run_attempt(spec, *upstreams)
    outcome["node_id"] = f"ray:{ray.get_runtime_context().get_node_id()[:12]}/{os.getpid()}"
    return outcome


_attempt_remote = ray.remote(_attempt_on_ray_worker)


def _lost(ref: Any) -> dict[str, Any]:
    """An attempt that ended without a value: its worker or node died, Ray cancelled it, or (a bug) it raised."""
    try:
        ray.get(ref, timeout=5)
        exc: BaseException = RuntimeError("no error and no value")
    except BaseException as err:  # noqa: B036 - Ray re-raises the task's own exception types too
        exc = err
    reason = FailureReason.HOST_LOST if isinstance(exc, LOST) else FailureReason.INTERNAL
    text = str(exc).strip().splitlines()
    return failed_outcome(reason, f"{type(exc).__name__}: {text[0] if text else ''}"[:500])


def _values(refs: list[Any]) -> dict[Any, dict[str, Any]]:
    """The finished attempts' outcomes: one `ray.get` for the batch; each on its own if any of them failed."""
    try:
        return dict(zip(refs, ray.get(refs), strict=True))
    except Exception:
        out = {}
        for ref in refs:
            try:
                out[ref] = ray.get(ref)
            except Exception:
                out[ref] = _lost(ref)
        return out


def _probe_nodes(engine: str) -> dict[str, Any]:
    """`worker_side.probe_worker` on one worker of every alive node (pinned there), by node: what each
    answered, or the exception its task raised (a node without bxthre3 cannot even unpickle the task)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    probe = ray.remote(probe_worker)
    refs = {
        node["NodeID"][:12]: probe.options(
            num_cpus=0, max_retries=0,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node["NodeID"], soft=False),
        ).remote(engine)
        for node in ray.nodes() if node.get("Alive")
    }  # fmt: skip
    answers: dict[str, Any] = {}
    for node, ref in refs.items():
        try:
            answers[f"ray:{node}"] = ray.get(ref, timeout=120)
        except Exception as exc:  # RayTaskError wraps what the probe raised (ModuleNotFoundError: no bxthre3)
            answers[f"ray:{node}"] = exc
    return answers


def check_memory(spec: DagSpec, url: object) -> None:
    """Refuse, in one line, a task whose `memory:` no node offers: Ray would keep such a task waiting forever
    (an infeasible resource request). Ray's `memory` resource is logical, exactly `memory:`'s meaning."""
    biggest = max((t.memory or 0 for t in spec.tasks), default=0)
    if biggest == 0:
        return
    offer = max((node["Resources"].get("memory", 0) for node in ray.nodes() if node.get("Alive")), default=0)
    offer_mb = int(offer) // 2**20
    for task in spec.tasks:
        if (task.memory or 0) > offer_mb:
            raise ClusterError(
                f"{spec.source}: task {task.id!r}: memory: {task.memory} MB, but the largest Ray node offers "
                f"{offer_mb} MB of its memory resource; lower memory: or add a bigger node"
            )


def run_dag(
    run: DagRun,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    clock: Callable[[], float] = time.time,
    url: object = "ray",
) -> DagRun:
    """Run the DAG to its end on the Ray cluster this process is connected to (`ray.init` done); returns `run`."""
    spec = run.spec
    engine, warning = engine_from_probes(url, run.policy.engine, _probe_nodes(run.policy.engine))
    if warning:
        log.warning("%s", warning)
    run.policy = dataclasses.replace(run.policy, engine=engine)
    check_memory(spec, url)
    modules = {sha: (ray.put(data),) for sha, data in spec.modules.items()}  # one copy in the object store
    options: dict[str, Any] = {"max_retries": 0, "retry_exceptions": False, "num_cpus": 1}
    attempt_fns = {0: _attempt_remote.options(**options)}
    """By the task's `memory:` (0: none): Ray reserves that much of a node's logical `memory` resource."""
    succeeded: dict[str, Any] = {}
    """Refs of succeeded tasks' results while an attempt may still read them (dropped refs free the store)."""
    live: dict[Any, tuple[str, int]] = {}
    queued: deque[AttemptSpec] = deque()
    """Startable attempts not yet given to Ray: at most `max_live` are, so each turn's `ray.wait` stays short."""
    max_live = max(MIN_LIVE, LIVE_PER_CPU * int(ray.cluster_resources().get("CPU", 1)))
    last_progress = 0.0
    try:
        while True:
            now = clock()
            if run.cancel_if_requested(now):
                queued.clear()
            queued.extend(run.startable(now))
            while queued and len(live) < max_live:
                attempt = queued.popleft()
                fn = attempt_fns.get(attempt.memory_mb) or attempt_fns.setdefault(
                    attempt.memory_mb, _attempt_remote.options(**options, memory=attempt.memory_mb * 2**20)
                )
                ref = fn.remote(attempt, modules[attempt.module_sha], *(succeeded[u] for u in attempt.upstream_ids))
                live[ref] = (attempt.task_id, attempt.attempt)
            if run.done:
                break
            if on_progress is not None and now - last_progress >= PROGRESS_EVERY_S:
                on_progress(run.summary(now))
                last_progress = now
            timeout = run.wait_at_most(now, POLL_S)
            if not live:
                time.sleep(timeout)
                continue
            pending = list(live)
            ready, rest = ray.wait(pending, num_returns=1, timeout=timeout, fetch_local=False)
            if not ready:
                continue
            if rest:  # everything else that is done too, without waiting: one batch per turn
                more, _ = ray.wait(rest, num_returns=len(rest), timeout=0, fetch_local=False)
                ready += more
            values = _values(ready)
            for ref in ready:
                task_id, attempt_no = live.pop(ref)
                outcome = values[ref]
                if outcome.get("reason") is None:
                    succeeded[task_id] = ref
                run.finished(task_id, attempt_no, outcome, outcome.get("node_id"), clock())
                for unneeded in run.unneeded_outputs(task_id):
                    succeeded.pop(unneeded, None)
        if on_progress is not None:
            on_progress(run.summary(clock()))
        return run
    finally:
        for ref in live:
            ray.cancel(ref, force=False)


def _loopback_only() -> None:
    """Keep `_node_ip_address="127.0.0.1"` as given. Ray 2.60 rewrites a loopback node address to "a remotely
    reachable IP" (`ray.init` -> `services.resolve_ip_for_localhost` -> `get_node_ip_address`, which probes
    8.8.8.8 unless `ray_constants.ENABLE_RAY_CLUSTER` is false, as on macOS and Windows, where Ray uses
    127.0.0.1 "to prevent bothersome firewall popups"). A private constant: if a later Ray drops it, the
    rewrite happens again and `ray:local` is reachable from the network; run it in a loopback-only
    namespace (benchmarks/ray_in_netns.sh) where that matters."""
    constants = getattr(getattr(ray, "_private", None), "ray_constants", None)
    if constants is not None and hasattr(constants, "ENABLE_RAY_CLUSTER"):
        constants.ENABLE_RAY_CLUSTER = False


class RayBackend:
    """`ray:local` (a Ray started for this run on 127.0.0.1 with `workers` x `threads` CPUs, shut down after
    it), `ray:auto` (the cluster this machine is a node of) or `ray://HOST:PORT` (a Ray Client server)."""

    def __init__(self, url: BackendURL, *, workers: int = 2, threads: int = 1) -> None:
        self.url = url
        self.workers = workers
        self.threads = threads
        self.connected = False
        self.temp_dir: str | None = None

    def __enter__(self) -> RayBackend:
        quiet: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
        """Ray's INFO lines and the workers' stdout/stderr are not the run's output."""
        if ray.is_initialized():
            raise ClusterError(f"--backend {self.url}: this process is already connected to Ray; ray.shutdown() first")
        sigterm = signal.getsignal(signal.SIGTERM)
        try:
            if self.url.mode == "local":
                os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # a local Ray for one run reports nothing
                # Ray 2.60 turns token authentication on for a new local cluster and says so at WARNING
                # level; it is how Ray runs, not news about this run.
                logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
                _loopback_only()
                self.temp_dir = tempfile.mkdtemp(prefix="bxthre3-ray-")  # sockets, logs, spill: gone at exit
                ray.init(
                    address="local", _node_ip_address="127.0.0.1", num_cpus=self.workers * self.threads,
                    num_gpus=0, include_dashboard=False, _temp_dir=self.temp_dir, **quiet,
                )  # fmt: skip
            elif self.url.mode == "auto":
                ray.init(address="auto", **quiet)
            else:
                with warnings.catch_warnings():  # its "connection timed out" UserWarning: the error says it
                    warnings.simplefilter("ignore", UserWarning)
                    ray.init(address=f"ray://{self.url.address}", **quiet)  # Ray Client: about 30 s to give up
        except Exception as exc:
            if ray.is_initialized():
                ray.shutdown()
            self._remove_temp_dir()
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ClusterError(f"--backend {self.url}: cannot {self._verb()} ({first[:300]}); {self._fix()}") from exc
        finally:
            if signal.getsignal(signal.SIGTERM) is not sigterm and sigterm is not None:
                signal.signal(signal.SIGTERM, sigterm)  # ray.init installs its own: Bxthre3's unwinds the run
        self.connected = True
        return self

    def _verb(self) -> str:
        if self.url.mode == "local":
            return "start a local Ray"
        if self.url.mode == "auto":
            return "find a Ray cluster on this machine"
        return f"connect to the Ray Client server at {self.url.address}"

    def _fix(self) -> str:
        if self.url.mode == "local":
            return "check that ray is installed whole (pip install 'bxthre3[ray]') and /tmp is writable"
        auth = "; a cluster with token authentication (Ray's default) also needs RAY_AUTH_MODE=token here"
        if self.url.mode == "auto":
            return "start one with `ray start --head`, or use ray://HOST:PORT or ray:local" + auth
        return "check the address and that the head runs `ray start --head --ray-client-server-port PORT`" + auth

    def __exit__(self, *exc_info: object) -> None:
        if self.connected:
            self.connected = False
            ray.shutdown()  # local: stops the Ray this run started; auto/ray://: only disconnects
        self._remove_temp_dir()

    def _remove_temp_dir(self) -> None:
        if self.temp_dir is not None:
            shutil.rmtree(self.temp_dir, ignore_errors=True)
            self.temp_dir = None

    def run(self, run: DagRun, on_progress: Callable[[dict[str, Any]], None] | None = None) -> DagRun:
        assert self.connected, "use RayBackend as a context manager"
        return run_dag(run, on_progress, url=self.url)
