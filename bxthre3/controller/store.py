"""The controller's journal: DAGs, task states, attempts, outputs and modules in SQLite.

Write-behind with group commit: the scheduler marks what changed (``DagRecord.dirty``),
and after each batch of frames the controller calls :meth:`Store.flush`, which writes
every changed row in one transaction and commits, *then* sends the batch's replies,
acks and assignments. So nothing is acknowledged before it is durable, and a `kill -9`
at any moment loses no accepted DAG and no recorded result, at the cost of one commit
per batch rather than one per change.

Large outputs live in files beside the database (``outputs/<dag>/<task>``), written and
fsynced before the row that points at them is committed. Named outputs (the files a task left
under ``/out``) have rows of their own in ``task_files``, the large ones in
``outputs/<dag>/+files/<task>/<sha256 of the name>`` (a name never becomes a path on disk).
Quarantined devices (``Scheduler.quarantined``) have a row each in ``quarantined``, rewritten whole in
the flush after the set changed (``Scheduler.quarantine_changed``), so a restart keeps them out.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import sqlite3
import time
import zlib
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack

from ..common.digests import sha256_hex
from ..common.errors import Bxthre3Error
from ..common.failures import FailureReason
from ..dag.spec import DagSpec, TaskSpec
from ..scheduler import DagRecord, DagState, QuarantineRecord, Scheduler, TaskRecord, TaskState
from ..scheduler.model import AttemptRecord

log = logging.getLogger("bxthre3.store")  # the name log lines show: kept from before the move to packages

SCHEMA_VERSION = 3
"""1: dags, tasks, task_files, modules; 2 added `quarantined` (an older controller refuses a journal of 2
rather than run tasks on devices it would not know are quarantined)."""

_MIGRATIONS: dict[int, str] = {1: "", 2: ""}
"""SQL that takes a journal from schema N to N + 1, beyond what `_SCHEMA` (all ``IF NOT EXISTS``) creates
anyway: 1 -> 2 only adds a table, which `_SCHEMA` has just made; 2 -> 3 adds the `cache` table and the
tasks' `cached` column (added by `_migrate` if missing: ALTER TABLE has no IF NOT EXISTS)."""

DEFAULT_CACHE_BYTES = 1 << 30
"""The result cache's size cap (`--cache-size`): outputs and `/out` files, least recently used evicted first."""

INLINE_OUTPUT_BYTES = 256 * 1024
"""Outputs up to this size are stored in the database row; larger ones in a file beside it."""

MEMORY = ":memory:"
"""Pass as the state dir for a throwaway in-memory journal (tests, `bxthre3 run`, benchmarks)."""


JOURNAL_FILE = "state.db"
JOURNAL_FILES = (JOURNAL_FILE, f"{JOURNAL_FILE}-wal", f"{JOURNAL_FILE}-shm", "outputs")
"""What `--reset-state` moves aside: the database, its WAL and index, and the large outputs it points at.
The token and cluster id stay: hosts keep their cluster."""

DISK_FULL = "the controller's disk is full"
"""How a refused write starts, on the controller's log and in the reply a client prints."""

_SQLITE_FULL = 13
"""SQLite's SQLITE_FULL result code: `sqlite3.SQLITE_FULL` exists only from Python 3.11 (3.10 lacks the name)."""


class JournalError(Bxthre3Error):
    """The journal on disk cannot be trusted (empty, damaged, not ours): the controller refuses to start."""

    def __init__(self, message: str, summary: str = "") -> None:
        super().__init__(message)
        self.summary = summary or message
        """What is wrong, without the remedy (`--reset-state` prints it as it moves the files)."""


class JournalWriteError(Bxthre3Error):
    """A commit failed (disk full, I/O error); the journal is still at its last commit.

    ``disk_full`` says whether waiting for space is the remedy (SQLITE_FULL, ENOSPC, EDQUOT)."""

    def __init__(self, message: str, *, disk_full: bool) -> None:
        super().__init__(message)
        self.disk_full = disk_full


def _write_error(exc: BaseException, where: Path | str) -> JournalWriteError:
    """One error for every way a write can fail, telling a full disk from the rest."""
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        full = code == _SQLITE_FULL or "disk is full" in str(exc)
        what = str(exc)
    else:
        full = isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
        what = (exc.strerror if isinstance(exc, OSError) else None) or str(exc)
    if full:
        return JournalWriteError(f"{DISK_FULL} ({what}, writing {where})", disk_full=True)
    return JournalWriteError(f"the controller cannot write its journal in {where}: {what}", disk_full=False)


def damaged(state_dir: Path | str, what: str) -> JournalError:
    """The one line a refused journal gets: which file, what is wrong, and the two ways out."""
    summary = f"the controller's journal {Path(state_dir) / JOURNAL_FILE} {what}"
    return JournalError(
        f"{summary}; it was left untouched: start with another --state-dir, or run "
        f"`bxthre3 controller --reset-state --state-dir {state_dir}` to move the damaged files aside "
        "(renamed with a timestamp, never deleted) and start empty",
        summary,
    )


def reset_state(state_dir: Path | str, now: float | None = None) -> list[Path]:
    """Rename the journal's files to ``<name>.damaged-<UTC time>``; returns the new paths.

    Renamed, not deleted: a damaged journal may still hold results someone can dig out with
    ``sqlite3 .recover``, and a wrong --state-dir must never cost data."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
    moved = []
    for name in JOURNAL_FILES:
        old = Path(state_dir) / name
        if not os.path.lexists(old):
            continue
        new = old.with_name(f"{name}.damaged-{stamp}")
        n = 1
        while os.path.lexists(new):
            n += 1
            new = old.with_name(f"{name}.damaged-{stamp}-{n}")
        try:
            os.rename(old, new)
        except OSError as exc:
            raise JournalError(f"cannot move {old} aside: {exc.strerror}") from exc
        moved.append(new)
    return moved


@dataclass(frozen=True, slots=True)
class PrunePolicy:
    """Finished DAGs are deleted when there are more than ``keep`` or they are older than ``max_age_s``."""

    keep: int = 100
    max_age_s: float = 7 * 24 * 3600.0


def _private(path: Path) -> None:
    """chmod 0700 when we own it (a shared directory someone else made is left as it is)."""
    try:
        if path.stat().st_uid == os.getuid() and path.stat().st_mode & 0o077:
            path.chmod(0o700)
    except OSError:
        pass


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS modules (sha TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS dags (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, spec BLOB NOT NULL, state TEXT NOT NULL,
    submitted_at REAL NOT NULL, finished_at REAL
);
CREATE TABLE IF NOT EXISTS tasks (
    dag_id TEXT NOT NULL, task_id TEXT NOT NULL, state TEXT NOT NULL, attempt INTEGER NOT NULL,
    failures INTEGER NOT NULL, host_losses INTEGER NOT NULL, output BLOB, output_file TEXT,
    stderr BLOB, exit_code INTEGER, reason TEXT, error TEXT, started_at REAL, finished_at REAL,
    duration REAL, not_before REAL, recorded INTEGER NOT NULL, attempts BLOB, cached INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (dag_id, task_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS task_files (
    dag_id TEXT NOT NULL, task_id TEXT NOT NULL, name TEXT NOT NULL, data BLOB, data_file TEXT,
    PRIMARY KEY (dag_id, task_id, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cache (
    key TEXT PRIMARY KEY, output BLOB NOT NULL, files BLOB, size INTEGER NOT NULL, used INTEGER NOT NULL,
    digest TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS quarantined (
    device_id TEXT PRIMARY KEY, device TEXT NOT NULL, since REAL NOT NULL, mismatches INTEGER NOT NULL,
    reason TEXT NOT NULL
) WITHOUT ROWID;
"""

_UPSERT_FILE = "INSERT OR REPLACE INTO task_files (dag_id, task_id, name, data, data_file) VALUES (?, ?, ?, ?, ?)"

_UPSERT_TASK = """
INSERT OR REPLACE INTO tasks (dag_id, task_id, state, attempt, failures, host_losses, output, output_file,
    stderr, exit_code, reason, error, started_at, finished_at, duration, not_before, recorded, attempts, cached)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""


def spec_blob(spec: DagSpec) -> bytes:
    """The journal's copy of a spec (without modules, stored once each): msgpack, zlib-compressed.

    Pure and thread-safe: the controller makes it on its submission thread. Compressed because a
    100,000-task spec is ~15 MB of msgpack (each task repeats its module's sha256) and writing that
    row took the loop ~0.1 s (WAL pages and a checkpoint); level 1 makes it ~0.3-0.8 MB in ~25-70 ms,
    and zlib releases the GIL. Old journals hold plain msgpack, which `_unpack_spec` tells apart.
    """
    wire = spec.to_wire()
    del wire["modules"]
    packer = msgpack.Packer(use_bin_type=True, autoreset=False)
    packer.pack_map_header(len(wire))
    for key, value in wire.items():
        packer.pack(key)
        if key != "tasks":
            packer.pack(value)
            continue
        packer.pack_array_header(len(value))
        for task in value:  # one call per task: a single packb of 100,000 held the GIL ~70 ms
            packer.pack(task)
    return zlib.compress(packer.bytes(), 1)


def _entry_digest(output: bytes, packed_files: bytes | None) -> str:
    """sha256 of a cache entry's contents, length-prefixed: a damaged row is dropped, never served."""
    parts = (output, packed_files or b"")
    return sha256_hex(b"".join(len(p).to_bytes(8, "little") + p for p in parts))


def _unpack_spec(blob: bytes) -> bytes:
    """The msgpack of a journalled spec: zlib data starts with 0x78, which no msgpack map does."""
    return zlib.decompress(blob) if blob[:1] == b"\x78" else blob


class Store:
    def __init__(self, state_dir: Path | str) -> None:
        """Open (or create) the journal in ``state_dir``; JournalError if what is there cannot be trusted
        (an empty file, a damaged header, a database that is not ours). :meth:`load` checks the pages."""
        self.in_memory = str(state_dir) == MEMORY
        self.dir = None if self.in_memory else Path(state_dir)
        existed = False
        try:
            if self.dir is not None:
                self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
                _private(self.dir)  # the journal holds every input and output: the controller's user only
                (self.dir / "outputs").mkdir(exist_ok=True, mode=0o700)
                try:
                    size = (self.dir / JOURNAL_FILE).stat().st_size
                    existed = True
                except FileNotFoundError:
                    size = -1
                if size == 0:  # SQLite would take it for a new, empty journal: every DAG silently gone
                    raise damaged(self.dir, "is empty (0 bytes) where DAGs were journalled")
            path = MEMORY if self.dir is None else str(self.dir / JOURNAL_FILE)
            self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise Bxthre3Error(f"cannot open the controller state in {state_dir}: {exc}") from exc
        try:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes
            tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if existed and "meta" not in tables:
                raise damaged(state_dir, "is not a Bxthre3 journal (no meta table)")
            self.db.executescript(_SCHEMA)
            row = self.db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if row is None:
                if existed:
                    raise damaged(state_dir, "is not a Bxthre3 journal (no schema version)")
                self.db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            elif row[0].isdigit() and int(row[0]) in _MIGRATIONS:
                self._migrate(int(row[0]))
                row = (str(SCHEMA_VERSION),)
        except sqlite3.DatabaseError as exc:
            self.db.close()
            if getattr(exc, "sqlite_errorcode", None) == _SQLITE_FULL:
                raise Bxthre3Error(f"cannot open the controller state in {state_dir}: {DISK_FULL}") from exc
            raise damaged(state_dir, f"is damaged (SQLite: {exc})") from exc
        except JournalError:
            self.db.close()
            raise
        if row is not None and row[0] != str(SCHEMA_VERSION):
            self.db.close()
            raise Bxthre3Error(f"{state_dir} holds state of schema {row[0]}; this controller reads {SCHEMA_VERSION}")
        self._in_tx = False
        self.cache_cap = DEFAULT_CACHE_BYTES
        """Bytes the result cache may hold (0: no cache)."""
        self._cache: OrderedDict[str, int] = OrderedDict()
        """Key -> size of every cache entry, least recently used first (loaded by `load`)."""
        self.cache_bytes = 0
        self._cache_seq = 0
        self._cache_puts: dict[str, tuple[bytes, bytes | None, int, str]] = {}
        """Entries added since the last commit: key -> (output, packed files, size, digest)."""
        self._cache_drops: set[str] = set()
        self._cache_uses: dict[str, int] = {}
        self.existed = existed
        """The journal was there before (a restart): :meth:`load` checks its pages."""

    def _migrate(self, version: int) -> None:
        """Bring a journal of an older schema to SCHEMA_VERSION, in one transaction (all or nothing)."""
        start = version
        self.db.execute("BEGIN")
        try:
            while version < SCHEMA_VERSION:
                if _MIGRATIONS[version]:
                    self.db.executescript(_MIGRATIONS[version])
                version += 1
            if "cached" not in {row[1] for row in self.db.execute("PRAGMA table_info(tasks)")}:
                self.db.execute("ALTER TABLE tasks ADD COLUMN cached INTEGER NOT NULL DEFAULT 0")
            self.db.execute("UPDATE meta SET value=? WHERE key='schema'", (str(SCHEMA_VERSION),))
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise
        log.info("journal schema brought from %d to %d", start, SCHEMA_VERSION)

    def close(self) -> None:
        if self._in_tx:
            self.db.execute("COMMIT")
            self._in_tx = False
        self.db.close()

    # ------------------------------------------------------------------ writes

    def _begin(self) -> None:
        if not self._in_tx:
            self.db.execute("BEGIN")
            self._in_tx = True

    def _rollback(self) -> None:
        """Back to the last commit after a failed write (SQLite may already have rolled back itself)."""
        self._in_tx = False
        try:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
        except sqlite3.Error as exc:  # the next BEGIN will say more if the connection is unusable
            log.debug("rollback failed: %s", exc)

    def add_dag(self, dag_id: str, spec: DagSpec, submitted_at: float, blob: bytes | None = None) -> None:
        """Record a new DAG and its modules, committed at once: the DAG is accepted only if this returns.

        ``blob`` is `spec_blob(spec)` when the caller made it already (off the controller's loop).
        Its tasks get no rows: a task without one is pending (see `scheduler.prepare_dag`).
        JournalWriteError (the journal unchanged) if it cannot be written, so the submission can be
        refused with the reason instead of accepted and lost."""
        if blob is None:
            blob = spec_blob(spec)
        modules = list(spec.modules.items())
        row = (dag_id, spec.name, blob, DagState.RUNNING.value, submitted_at)
        try:
            self._begin()
            self.db.executemany("INSERT OR IGNORE INTO modules VALUES (?, ?)", modules)
            self.db.execute("INSERT INTO dags VALUES (?, ?, ?, ?, ?, NULL)", row)
            self.db.execute("COMMIT")
            self._in_tx = False
        except (sqlite3.Error, OSError) as exc:
            self._rollback()
            raise _write_error(exc, self.dir or MEMORY) from exc

    def flush(self, scheduler: Scheduler) -> int:
        """Write every changed task and DAG row, and commit. Returns the rows written.

        Dirty marks are cleared only once the commit succeeded: after a JournalWriteError (disk
        full) the journal is at its last commit and the next flush writes the same rows again."""
        rows = 0
        written: list[DagRecord] = []
        try:
            for dag in scheduler.dags.values():
                if not dag.dirty and not dag.dag_dirty:
                    continue
                self._begin()
                written.append(dag)
                if dag.dirty:
                    changed = [dag.tasks[t] for t in dag.dirty]
                    self.db.executemany(_UPSERT_TASK, [self._task_row(dag, t) for t in changed])
                    file_rows = [row for t in changed if t.files for row in self._file_rows(dag.id, t)]
                    if file_rows:  # only tasks that succeeded with named outputs
                        self.db.executemany(_UPSERT_FILE, file_rows)
                    rows += len(dag.dirty)
                if dag.dag_dirty:
                    self.db.execute(
                        "UPDATE dags SET state=?, finished_at=? WHERE id=?", (dag.state.value, dag.finished_at, dag.id)
                    )
                    rows += 1
            if self._cache_puts or self._cache_drops or self._cache_uses:
                self._begin()
                rows += self._write_cache()
            quarantine = scheduler.quarantine_changed
            if quarantine:
                self._begin()
                self.db.execute("DELETE FROM quarantined")
                self.db.executemany(
                    "INSERT INTO quarantined VALUES (?, ?, ?, ?, ?)",
                    [(q.device_id, q.device, q.since, q.mismatches, q.reason) for q in scheduler.quarantined.values()],
                )
                rows += 1
            if self._in_tx:
                self.db.execute("COMMIT")
                self._in_tx = False
        except (sqlite3.Error, OSError) as exc:
            self._rollback()
            raise _write_error(exc, self.dir or MEMORY) from exc
        self._cache_puts.clear()
        self._cache_drops.clear()
        self._cache_uses.clear()
        for dag in written:
            dag.dirty.clear()
            dag.dag_dirty = False
        if quarantine:
            scheduler.quarantine_changed = False
        return rows

    def _task_row(self, dag: DagRecord, t: TaskRecord) -> tuple[Any, ...]:
        output, output_file = t.output, None
        if output is not None and len(output) > INLINE_OUTPUT_BYTES and self.dir is not None:
            output_file = self._write_output(dag.id, t.spec.id, output)
            output = None
        history = [
            [a.attempt, a.host_id, a.node_id, a.started_at, a.ended_at, a.reason.value if a.reason else None, a.error]
            for a in t.attempts
        ]
        attempts = msgpack.packb(history, use_bin_type=True)
        return (
            dag.id, t.spec.id, t.state.value, t.attempt, t.failures, t.host_losses, output, output_file,
            t.stderr, t.exit_code, t.reason.value if t.reason else None, t.error, t.started_at, t.finished_at,
            t.duration, t.not_before, t.recorded, attempts, int(t.cached),
        )  # fmt: skip

    def _file_rows(self, dag_id: str, t: TaskRecord) -> list[tuple[Any, ...]]:
        """One `task_files` row per named output; large contents go to a file first (fsynced)."""
        assert t.files is not None
        rows: list[tuple[str, str, str, bytes | None, str | None]] = []
        for name, data in t.files.items():
            if len(data) > INLINE_OUTPUT_BYTES and self.dir is not None:
                folder = self.dir / "outputs" / dag_id / "+files" / t.spec.id
                rows.append((dag_id, t.spec.id, name, None, self._write_file(folder, sha256_hex(name.encode()), data)))
            else:
                rows.append((dag_id, t.spec.id, name, data, None))
        return rows

    def _write_output(self, dag_id: str, task_id: str, data: bytes) -> str:
        assert self.dir is not None
        return self._write_file(self.dir / "outputs" / dag_id, task_id, data)

    def _write_file(self, folder: Path, name: str, data: bytes) -> str:
        """Write `folder/name` atomically and durably; returns its path relative to the state dir.

        A write that fails (ENOSPC) leaves no partial temporary file to eat the space that is left."""
        assert self.dir is not None
        folder.mkdir(parents=True, exist_ok=True)
        final = folder / name
        tmp = folder / f".{name}.tmp"
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise
        return str(final.relative_to(self.dir))

    # ------------------------------------------------------------------ reads

    def modules(self) -> dict[str, bytes]:
        return {sha: bytes(data) for sha, data in self.db.execute("SELECT sha, data FROM modules")}

    def load(self, scheduler: Scheduler, now: float, *, check: bool = True) -> int:
        """Restore every journalled DAG into the scheduler; returns how many.

        JournalError if a page or an output file cannot be read: starting with part of the journal
        would let the next prune or commit make the loss permanent. ``check`` then runs SQLite's
        ``quick_check`` over every page, after the load because the load has just read nearly all of
        them: ~0.9 s per GB of journal then, ~25 s per GB from a cold cache (docs/ARCHITECTURE.md)."""
        try:
            restored = self._load(scheduler, now)
            if check and self.existed:
                rows = [str(r[0]) for r in self.db.execute("PRAGMA quick_check(3)").fetchall()]
                if rows != ["ok"]:
                    lines = [x for r in rows for x in r.splitlines() if x and not x.startswith("***")]
                    raise damaged(self.dir or MEMORY, f"is damaged (SQLite: {'; '.join(lines)[:300]})")
            return restored
        except JournalError:
            raise
        except OSError as exc:
            what = f"points at an output it cannot read ({exc.filename}: {exc.strerror})"
            raise damaged(self.dir or MEMORY, what) from exc
        except sqlite3.DatabaseError as exc:
            raise damaged(self.dir or MEMORY, f"is damaged (SQLite: {exc})") from exc
        except Exception as exc:  # garbage SQLite cannot see: a row that decodes to nonsense
            what = f"is damaged (a row cannot be read: {type(exc).__name__}: {exc})"
            raise damaged(self.dir or MEMORY, what) from exc

    def _load(self, scheduler: Scheduler, now: float) -> int:
        self._load_cache(scheduler)  # before the DAGs: their ready tasks may be served from it
        modules = self.modules()
        count = 0
        for dag_id, blob, state, submitted_at, finished_at in self.db.execute(
            "SELECT id, spec, state, submitted_at, finished_at FROM dags ORDER BY submitted_at"
        ).fetchall():
            try:
                wire = msgpack.unpackb(_unpack_spec(blob), raw=False)
                wire["modules"] = {t["module"]: modules[t["module"]] for t in wire["tasks"]}
                spec = DagSpec.from_wire(wire, source=f"journal {dag_id}")
            except (KeyError, ValueError, Bxthre3Error, msgpack.UnpackException) as exc:
                log.error("journal: DAG %s cannot be restored (%s); skipping it", dag_id, exc)
                continue
            by_id = {t.id: t for t in spec.tasks}
            files: dict[str, dict[str, bytes]] = {}
            for task_id, name, data, data_file in self.db.execute(
                "SELECT task_id, name, data, data_file FROM task_files WHERE dag_id=?", (dag_id,)
            ).fetchall():
                if data_file is not None and self.dir is not None:
                    data = (self.dir / data_file).read_bytes()
                files.setdefault(task_id, {})[name] = bytes(data or b"")
            saved = {row[0]: self._task_record(by_id, row, files.get(row[0])) for row in self.db.execute(
                "SELECT task_id, state, attempt, failures, host_losses, output, output_file, stderr, exit_code, "
                "reason, error, started_at, finished_at, duration, not_before, recorded, attempts, cached "
                "FROM tasks WHERE dag_id=?", (dag_id,))}  # fmt: skip
            scheduler.restore_dag(dag_id, spec, submitted_at, DagState(state), finished_at, saved, now)
            count += 1
        self._load_quarantine(scheduler)
        return count

    def _load_quarantine(self, scheduler: Scheduler) -> None:
        """Quarantined devices stay out across a restart (until `bxthre3 hosts trust`)."""
        for device_id, device, since, mismatches, reason in self.db.execute(
            "SELECT device_id, device, since, mismatches, reason FROM quarantined ORDER BY since"
        ).fetchall():
            scheduler.quarantined[device_id] = QuarantineRecord(device_id, device, since, mismatches, reason)
            scheduler.mismatches[device_id] = max(scheduler.mismatches[device_id], mismatches)

    def _task_record(
        self, specs: dict[str, TaskSpec], row: tuple[Any, ...], files: dict[str, bytes] | None = None
    ) -> TaskRecord:
        (task_id, state, attempt, failures, host_losses, output, output_file, stderr, exit_code, reason, error,
         started_at, finished_at, duration, not_before, recorded, attempts, cached) = row  # fmt: skip
        if output_file is not None and self.dir is not None:
            output = (self.dir / output_file).read_bytes()
        history = [
            AttemptRecord(a, h, n, s, e, FailureReason(r) if r else None, err)
            for a, h, n, s, e, r, err in msgpack.unpackb(attempts or b"\x90", raw=False)
        ]
        return TaskRecord(
            spec=specs[task_id],
            waiting_on=0,
            state=TaskState(state),
            attempt=attempt,
            failures=failures,
            host_losses=host_losses,
            output=bytes(output) if output is not None else None,
            files=files,
            stderr=bytes(stderr or b""),
            exit_code=exit_code,
            reason=FailureReason(reason) if reason else None,
            error=error or "",
            started_at=started_at,
            finished_at=finished_at,
            duration=duration or 0.0,
            not_before=not_before or 0.0,
            recorded=recorded,
            attempts=history,
            cached=bool(cached),
        )

    # ------------------------------------------------------------------ the result cache

    def _load_cache(self, scheduler: Scheduler) -> None:
        """The cache's index (key, size, least recently used first), handed to the scheduler as its keys."""
        self._cache.clear()
        self.cache_bytes = 0
        for key, size, used in self.db.execute("SELECT key, size, used FROM cache ORDER BY used").fetchall():
            self._cache[key] = size
            self.cache_bytes += size
            self._cache_seq = max(self._cache_seq, used)
        evicted = self._evict()  # the cap may be smaller than at the last run
        scheduler.cache_keys = set(self._cache) if self.cache_cap > 0 else set()
        if evicted:
            log.info("result cache: %d entries evicted to fit --cache-size %d", len(evicted), self.cache_cap)

    def cache_keys(self) -> frozenset[str]:
        return frozenset(self._cache)

    def cache_put(self, key: str, output: bytes, files: Mapping[str, bytes] | None) -> list[str]:
        """Add an entry (written at the next commit); returns the keys evicted to stay under the cap, this one
        included when it alone is larger than the cap."""
        packed = msgpack.packb(dict(files), use_bin_type=True) if files else None
        size = len(output) + len(packed or b"")
        if key in self._cache:
            self._touch(key)
            return []
        if size > self.cache_cap:
            return [key]
        self._cache[key] = size
        self.cache_bytes += size
        self._cache_drops.discard(key)
        self._cache_puts[key] = (output, packed, size, _entry_digest(output, packed))
        self._touch(key)
        return self._evict()

    def cache_get(self, key: str) -> tuple[bytes, dict[str, bytes] | None] | None:
        """An entry's output and files, or None when it is gone or does not match its checksum (then dropped).
        Counts as a use (LRU)."""
        if key not in self._cache:
            return None
        pending = self._cache_puts.get(key)
        if pending is not None:
            output, packed, digest = pending[0], pending[1], pending[3]
        else:
            try:
                row = self.db.execute("SELECT output, files, digest FROM cache WHERE key=?", (key,)).fetchone()
            except sqlite3.Error as exc:
                log.warning("result cache: entry %s unreadable (%s)", key[:12], exc)
                row = None
            if row is None:
                self._drop(key)
                return None
            output, packed, digest = bytes(row[0]), bytes(row[1]) if row[1] is not None else None, row[2]
        if _entry_digest(output, packed) != digest:
            log.warning("result cache: entry %s does not match its checksum; dropped", key[:12])
            self._drop(key)
            return None
        try:
            files = msgpack.unpackb(packed, raw=False) if packed else None
        except (ValueError, msgpack.UnpackException):
            self._drop(key)
            return None
        self._touch(key)
        return output, files

    def cache_clear(self) -> list[str]:
        """Drop every entry (at the next commit); returns their keys."""
        keys = list(self._cache)
        for key in keys:
            self._drop(key)
        return keys

    def cache_stats(self) -> dict[str, int]:
        return {"entries": len(self._cache), "bytes": self.cache_bytes, "cap": self.cache_cap}

    def _touch(self, key: str) -> None:
        self._cache.move_to_end(key)
        self._cache_seq += 1
        self._cache_uses[key] = self._cache_seq

    def _drop(self, key: str) -> None:
        size = self._cache.pop(key, None)
        if size is not None:
            self.cache_bytes -= size
        self._cache_puts.pop(key, None)
        self._cache_uses.pop(key, None)
        self._cache_drops.add(key)

    def _evict(self) -> list[str]:
        """Drop least recently used entries until the cache fits its cap."""
        evicted: list[str] = []
        while self._cache and self.cache_bytes > self.cache_cap:
            key = next(iter(self._cache))
            self._drop(key)
            evicted.append(key)
        return evicted

    def _write_cache(self) -> int:
        """Apply the cache's changes since the last commit, inside the flush's transaction."""
        if self._cache_drops:
            self.db.executemany("DELETE FROM cache WHERE key=?", [(k,) for k in self._cache_drops])
        puts = [
            (key, output, packed, size, self._cache_uses.get(key, self._cache_seq), digest)
            for key, (output, packed, size, digest) in self._cache_puts.items()
        ]
        if puts:
            self.db.executemany("INSERT OR REPLACE INTO cache VALUES (?, ?, ?, ?, ?, ?)", puts)
        uses = [(used, key) for key, used in self._cache_uses.items() if key not in self._cache_puts]
        if uses:
            self.db.executemany("UPDATE cache SET used=? WHERE key=?", uses)
        return len(self._cache_drops) + len(puts) + len(uses)

    # ------------------------------------------------------------------ pruning

    def prune(self, scheduler: Scheduler, now: float, policy: PrunePolicy) -> list[str]:
        """Delete finished DAGs beyond the policy, their outputs, and modules no DAG uses."""
        finished = [d for d in scheduler.dags.values() if d.state is not DagState.RUNNING]
        finished.sort(key=lambda d: d.finished_at or d.submitted_at, reverse=True)
        doomed = [
            d.id
            for i, d in enumerate(finished)
            if i >= policy.keep or now - (d.finished_at or d.submitted_at) > policy.max_age_s
        ]
        if not doomed:
            return []
        try:
            self._begin()
            for dag_id in doomed:
                self.db.execute("DELETE FROM tasks WHERE dag_id=?", (dag_id,))
                self.db.execute("DELETE FROM task_files WHERE dag_id=?", (dag_id,))
                self.db.execute("DELETE FROM dags WHERE id=?", (dag_id,))
            gone = set(doomed)
            in_use = {t.module for d in scheduler.dags.values() if d.id not in gone for t in d.spec.tasks}
            for (sha,) in self.db.execute("SELECT sha FROM modules").fetchall():
                if sha not in in_use:
                    self.db.execute("DELETE FROM modules WHERE sha=?", (sha,))
            self.db.execute("COMMIT")
            self._in_tx = False
        except (sqlite3.Error, OSError) as exc:
            self._rollback()  # nothing forgotten: the DAGs stay, in memory and on disk
            raise _write_error(exc, self.dir or MEMORY) from exc
        for dag_id in doomed:
            scheduler.forget_dag(dag_id)
        if self.dir is not None:
            for dag_id in doomed:
                shutil.rmtree(self.dir / "outputs" / dag_id, ignore_errors=True)
        return doomed
