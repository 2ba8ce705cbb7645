"""The `activity` and `structure` reply shapes, as the TUI reads them.

The controller side (`bxthre3/controller/views.py`, documented in docs/JSON.md) is being written at the
same time as these views, so the agreed shapes are written out here too. TypedDicts compare by their
keys, not by where they are defined, so the controller's `ActivityView` type-checks wherever this one is
expected; once both are on one branch this module becomes a re-export of `controller.views`.
"""

from __future__ import annotations

from typing import TypedDict


class SegmentView(TypedDict):
    """One attempt on one host, in the task stream."""

    dag_id: str
    task_id: str
    start_ago_s: float
    end_ago_s: float | None
    """None while it runs."""
    state: str


class HostActivity(TypedDict):
    busy: list[float]
    """Per bucket, oldest first: mean fraction of its slots busy (0..1)."""
    segments: list[SegmentView]
    """Its latest <= 200 attempts overlapping the window, oldest first."""


class ActivityView(TypedDict):
    window_s: float
    bucket_s: float
    throughput: list[int]
    """Finished attempts per bucket, oldest first; the last bucket is the current second."""
    tasks_per_s: float
    """The one rate figure (the same as `status()["totals"]["tasks_per_s"]`)."""
    hosts: dict[str, HostActivity]


class GroupView(TypedDict):
    name: str
    stage: int
    total: int
    counts: dict[str, int]


class StructureView(TypedDict):
    dag_id: str
    name: str
    stages: int
    groups: list[GroupView]
    edges: list[tuple[int, int]]
