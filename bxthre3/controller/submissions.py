"""DAG submissions off the controller's loop: decoding, validation and record building on one thread.

A 100,000-task submission is ~15 MB of msgpack. Decoding it, validating it (`DagSpec.from_wire`),
building its scheduler records and journalling it took the loop 3.4 s (independent tasks) to 7.4 s
(a chain), during which no heartbeat was answered and hosts re-registered. All but the last step is
pure, so it runs here on one worker thread, in arrival order; the loop only adds the finished records
(`scheduler.prepare_dag` made them), writes one compressed journal row and replies: tens of ms.

The GIL: this thread and the loop share one interpreter. The costly C calls are cut short (msgpack
decodes through a Python hook per container, packing goes task by task, zlib and hashlib release the
GIL), and the switch interval is lowered while this thread works, so the loop waits little per wake-up.
What did stall it for ~0.25 s at a time was the cyclic garbage collector: building ~600,000 objects
triggers full collections, each walking every object the process holds, with the GIL held. A large
submission is therefore built with the collector paused, and its objects are then frozen
(`gc.freeze`) when the controller owns its process: they live as long as their DAG, hold no
reference cycles (a pruned DAG is freed by reference counting), and later collections no longer walk
them either. (What else is frozen with them and later becomes a garbage cycle is never collected: a
few objects per big submission in a controller process; so embedders only skip the young generations.)

Ordering: one thread and one FIFO, so outcomes come back in the order submissions arrived, refused
ones included (a refusal made on the loop passes through the queue, so a client's replies keep
their order).
"""

from __future__ import annotations

import gc
import logging
import os
import queue
import sys
import threading
from collections import deque
from dataclasses import dataclass

import msgpack

from ..common.errors import Bxthre3Error, ProtocolError
from ..common.limits import MiB
from ..dag.spec import DagSpec
from ..scheduler.core import PreparedDag, prepare_dag
from ..wire import protocol
from .store import spec_blob

log = logging.getLogger("bxthre3.submissions")  # the name log lines show: kept from before the move to packages

DECODE_OFF_LOOP_BYTES = 64 * 1024
"""Frames at least this big are looked at (`is_submit`) before decoding, so a submission's decode
happens on the worker; smaller frames decode on the loop in well under a millisecond."""

GC_PAUSE_BYTES = 1 * MiB
"""Submissions this big are built with the garbage collector paused and their objects frozen."""

SWITCH_INTERVAL_S = 0.0005
"""The interpreter's thread switch interval while a big submission is prepared (default 5 ms).

Every socket call of the loop releases the GIL, and taking it back waits until this thread gives it
up: with the default, one loop turn of ~10 such calls waited ~50 ms."""


@dataclass(slots=True)
class SubmitJob:
    """One submission as the loop received it: an undecoded frame, or a decoded `Submit`."""

    identity: bytes
    req_id: int
    payload: bytes | None = None
    message: protocol.Submit | None = None
    refused: str = ""
    """Set when the loop refused it already (rate limits, queue full): the reply still waits its turn."""

    @property
    def size(self) -> int:
        return len(self.payload) if self.payload is not None else 0


@dataclass(slots=True)
class SubmitOutcome:
    """What the worker made of a job: a prepared DAG, a one-line error to reply, or a bad frame."""

    job: SubmitJob
    spec: DagSpec | None = None
    prepared: PreparedDag | None = None
    blob: bytes = b""
    """The journal's copy of the spec (`store.spec_blob`)."""
    error: str = ""
    """Why the DAG is refused, for the reply."""
    bad_frame: str = ""
    """The frame did not decode as a `submit`: dropped without a reply, like any bad frame."""


def is_submit(payload: bytes) -> int | None:
    """The req_id of a `submit` frame, read from its first bytes only; None for any other frame."""
    unpacker = msgpack.Unpacker(raw=False, max_buffer_size=4096)
    try:
        unpacker.feed(payload[:256])
        if unpacker.read_array_header() < 4:
            return None
        version, kind, req_id = unpacker.unpack(), unpacker.unpack(), unpacker.unpack()
    except Exception:  # msgpack raises several unrelated types on garbage
        return None
    if version != protocol.PROTOCOL_VERSION or kind != protocol.Submit.KIND:
        return None
    return req_id if isinstance(req_id, int) and not isinstance(req_id, bool) else None


def prepare_submission(job: SubmitJob) -> SubmitOutcome:
    """Decode, validate and build one submission. Pure (no controller state), so it runs off the loop."""
    if job.refused:
        return SubmitOutcome(job, error=job.refused)
    message = job.message
    if message is None:
        assert job.payload is not None
        try:
            decoded = protocol.decode(job.payload)
        except ProtocolError as exc:
            return SubmitOutcome(job, bad_frame=str(exc))
        if not isinstance(decoded, protocol.Submit):  # is_submit read the kind; decode agrees or refuses
            return SubmitOutcome(job, bad_frame=f"expected a submit, decoded a {decoded.KIND}")
        message = decoded
    try:
        spec = DagSpec.from_wire(message.dag, source="submission")
    except Bxthre3Error as exc:
        return SubmitOutcome(job, error=str(exc))
    # The decoded message (~500 bytes a task) is dead once the spec is built: let it go before the
    # records and the journal blob are made, or a 100,000-task DAG holds both at its peak (~50 MB more).
    message = decoded = None  # type: ignore[assignment]
    # The id and time are the loop's to give (it sets them when it adds the DAG).
    return SubmitOutcome(job, spec=spec, prepared=prepare_dag("", spec, 0.0), blob=spec_blob(spec))


class SubmissionWorker:
    """One daemon thread running `prepare_submission` on jobs in order; the loop polls `fileno()`."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[SubmitJob | None] = queue.SimpleQueue()
        self._done: deque[SubmitOutcome] = deque()
        self._read_fd = self._write_fd = -1
        self._closing = False
        self._thread: threading.Thread | None = None
        self.queued_bytes = 0
        """Bytes of frames handed over and not yet taken back (the loop bounds it)."""
        self.queued = 0
        self.freeze = False
        """True when the controller owns its process (the `controller` role): a big DAG's objects are
        then frozen out of the GC's reach for good. Embedded (tests, `bxthre3 run`) they only skip
        the young generations, since freezing would also keep the embedder's garbage cycles forever."""

    def start(self) -> None:
        """Start the thread (and make the pipe: a controller that never serves holds no fds)."""
        if self._thread is None:
            self._read_fd, self._write_fd = os.pipe()
            os.set_blocking(self._read_fd, False)
            os.set_blocking(self._write_fd, False)
            self._thread = threading.Thread(target=self._run, name="bxthre3-submissions", daemon=True)
            self._thread.start()

    def fileno(self) -> int:
        """Readable while finished outcomes wait for `take`."""
        return self._read_fd

    def put(self, job: SubmitJob) -> None:
        self.queued += 1
        self.queued_bytes += job.size
        self._jobs.put(job)

    def take(self) -> list[SubmitOutcome]:
        """Every finished outcome, in submission order (call when `fileno()` is readable)."""
        try:
            while os.read(self._read_fd, 4096):
                pass
        except BlockingIOError:
            pass
        out: list[SubmitOutcome] = []
        while self._done:
            outcome = self._done.popleft()
            self.queued -= 1
            self.queued_bytes -= outcome.job.size
            out.append(outcome)
        return out

    def close(self, timeout: float = 2.0) -> None:
        """Stop the thread; a submission it is still validating was never acknowledged, so it is dropped."""
        self._closing = True
        self._jobs.put(None)
        if self._thread is None:
            return
        self._thread.join(timeout)
        if self._thread.is_alive():
            return  # mid-way through a big DAG: it exits after it (a daemon); leave it the pipe
        # Closing twice (serve's end, then its owner) must not close an fd number reused since.
        for fd in (self._read_fd, self._write_fd):
            if fd >= 0:
                os.close(fd)
        self._read_fd = self._write_fd = -1

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None or self._closing:
                return
            try:
                outcome = self._prepare(job)
            except Exception:  # a bug must not end the thread (every later submission would hang)
                log.exception("internal error preparing a submission")
                outcome = SubmitOutcome(job, error="internal error while validating the DAG (see the controller log)")
            if self._closing:
                return
            self._done.append(outcome)
            try:
                os.write(self._write_fd, b"\0")
            except BlockingIOError:  # the pipe is full, so the loop will wake anyway
                pass

    def _prepare(self, job: SubmitJob) -> SubmitOutcome:
        if job.size < GC_PAUSE_BYTES or not gc.isenabled():
            return prepare_submission(job)
        gc.disable()
        switch = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        try:
            outcome = prepare_submission(job)
        finally:
            sys.setswitchinterval(switch)
            gc.freeze()  # before enabling: the young generation holds every new object, unscanned
            if not self.freeze:
                gc.unfreeze()  # into the oldest generation, still unscanned: collected as usual later
            gc.enable()
        return outcome
