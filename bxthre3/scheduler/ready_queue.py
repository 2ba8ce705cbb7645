"""The queue of ready tasks: one queue per DAG, each bucketed by the memory its tasks need.

One FIFO would let a task that no free host can fit block every task behind it; one
bucket per distinct memory need (there are few) keeps FIFO order among the tasks a given
host *can* run, at the cost of comparing a handful of bucket heads.

One queue per DAG lets the scheduler choose *which DAG* goes next (priority, aging, fair
share: see `Scheduler._rank`); within a DAG the order stays FIFO. Without a ranking (or with
one DAG queued) `pop_for` takes the oldest task overall, as a single FIFO would.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from operator import itemgetter
from typing import Any

Buckets = dict[int, deque[tuple[int, str]]]


class ReadyQueue:
    def __init__(self) -> None:
        self._dags: dict[str, Buckets] = {}
        """dag id -> memory need -> deque of (sequence number, task id); no empty DAG kept."""
        self._dag_len: dict[str, int] = {}
        self._next = 0
        self._front = 0
        self._len = 0

    def __len__(self) -> int:
        return self._len

    def __bool__(self) -> bool:
        return self._len > 0

    @property
    def dag_count(self) -> int:
        """How many DAGs have at least one queued task."""
        return len(self._dags)

    def dag_ids(self) -> list[str]:
        """The DAGs with at least one queued task."""
        return list(self._dags)

    def queued(self, dag_id: str) -> int:
        """How many tasks of `dag_id` are queued."""
        return self._dag_len.get(dag_id, 0)

    def push(self, dag_id: str, task_id: str, memory: int = 0, *, front: bool = False) -> None:
        """Queue a task; ``front`` puts it ahead of its DAG's queued tasks, and of other DAGs' where their
        rank ties (requeued after a lost host)."""
        buckets = self._dags.get(dag_id)
        if buckets is None:
            buckets = self._dags[dag_id] = {}
        bucket = buckets.setdefault(memory, deque())
        if front:
            self._front -= 1
            bucket.appendleft((self._front, task_id))
        else:
            self._next += 1
            bucket.append((self._next, task_id))
        self._dag_len[dag_id] = self._dag_len.get(dag_id, 0) + 1
        self._len += 1

    def push_many(self, dag_id: str, tasks: Sequence[tuple[str, int]]) -> None:
        """Queue (task id, memory) pairs in this order, as `push` would one by one.

        A new DAG queues up to 100,000 tasks at once on the controller's loop: one memory need
        (the usual case) fills its bucket at C speed (~5 ms instead of ~170 ms)."""
        if not tasks:
            return
        start = self._next + 1
        self._next += len(tasks)
        self._len += len(tasks)
        self._dag_len[dag_id] = self._dag_len.get(dag_id, 0) + len(tasks)
        buckets = self._dags.setdefault(dag_id, {})
        memories = set(map(itemgetter(1), tasks))
        if len(memories) == 1:
            bucket = buckets.setdefault(memories.pop(), deque())
            bucket.extend(zip(range(start, start + len(tasks)), map(itemgetter(0), tasks), strict=True))
            return
        for seq, (task_id, memory) in enumerate(tasks, start):
            buckets.setdefault(memory, deque()).append((seq, task_id))

    def pop_for(self, ram_mb: int, rank: Callable[[str], Any] | None = None) -> tuple[str, str, int] | None:
        """The next task needing at most ``ram_mb``: (dag id, task id, memory).

        ``rank(dag_id)`` orders the DAGs (smallest first; ties go to the DAG whose head task is
        oldest); without it, or with one DAG queued, the oldest task overall goes first."""
        best: deque[tuple[int, str]] | None = None
        best_memory = 0
        best_dag = ""
        if rank is None or len(self._dags) == 1:
            for dag_id, buckets in self._dags.items():  # per result on the hot path: kept inline
                for memory, bucket in buckets.items():
                    if bucket and memory <= ram_mb and (best is None or bucket[0][0] < best[0][0]):
                        best, best_memory, best_dag = bucket, memory, dag_id
        else:
            best_key: Any = None
            for dag_id, buckets in self._dags.items():
                head: deque[tuple[int, str]] | None = None
                head_memory = 0
                for memory, bucket in buckets.items():
                    if bucket and memory <= ram_mb and (head is None or bucket[0][0] < head[0][0]):
                        head, head_memory = bucket, memory
                if head is None:
                    continue
                key = (rank(dag_id), head[0][0])
                if best is None or key < best_key:
                    best, best_memory, best_dag, best_key = head, head_memory, dag_id, key
        if best is None:
            return None
        _, task_id = best.popleft()
        self._len -= 1
        left = self._dag_len[best_dag] - 1
        if left:
            self._dag_len[best_dag] = left
        else:
            del self._dag_len[best_dag], self._dags[best_dag]
        return best_dag, task_id, best_memory

    def discard_dag(self, dag_id: str) -> None:
        """Drop every entry of one DAG (it was cancelled). Dispatch would skip them, but only once a host is
        free: until then they count as queued."""
        self._dags.pop(dag_id, None)
        self._len -= self._dag_len.pop(dag_id, 0)

    def waiting_above(self, ram_mb: int) -> dict[int, int]:
        """Memory need -> number of queued tasks that need more than ``ram_mb``."""
        counts: dict[int, int] = {}
        for buckets in self._dags.values():
            for memory, bucket in buckets.items():
                if bucket and memory > ram_mb:
                    counts[memory] = counts.get(memory, 0) + len(bucket)
        return dict(sorted(counts.items()))

    def __iter__(self) -> Iterator[tuple[str, str]]:
        """All queued (dag id, task id) in the order they were queued (for tests and views; O(n log n))."""
        entries = sorted(
            (seq, dag_id, task_id) for dag_id, b in self._dags.items() for q in b.values() for seq, task_id in q
        )
        return ((dag_id, task_id) for _, dag_id, task_id in entries)
