"""A DAG's shape for people: its tasks gathered into named groups, laid out in stages.

A 100,000-task DAG cannot be drawn task by task, but it is nearly always a few families of tasks (every
`tile[...]` of a `for_each`, `render-0` .. `render-999`) wired stage after stage. This module finds those
families once per DAG (DAGs never change once submitted) in O(tasks + edges); the controller then counts
task states per group on each request in one pass (`group_counts`).

Rules (docs/JSON.md, `structure`):

- A task's group name is its id without its instance part: a `[...]` suffix removed (`tile[r=0,c=1]` ->
  `tile`, the ids `for_each` makes), else every run of digits replaced by `*` (`render-17` -> `render-*`,
  `tile_r0_c1` -> `tile_r*_c*`, the ids `bxthre3 dag mandelbrot` writes), else the id itself.
- A task's stage is its longest-path depth: 0 without upstream tasks, else 1 + the largest stage of its
  upstream tasks. A group is a (name, stage) pair, so it never spans stages, and every edge between groups
  goes from a lower stage to a higher one.
- Bounded: with more than `MAX_STAGES` stages, consecutive stages are banded (a group's `stage` is then
  its band's first stage); with more than `MAX_GROUPS` groups, the smallest of each stage (band) are
  merged into one `… N more` group per stage, so a view never has more than `MAX_GROUPS` groups.

Pure: no I/O.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .spec import DagSpec

MAX_GROUPS = 200
"""Most groups a structure has: beyond, the smallest of each stage are merged."""

MAX_STAGES = 100
"""Most stages shown apart: a longer DAG (a chain) has its stages banded."""

_DIGITS = "0123456789"
_DIGIT_RUN = re.compile("[0-9]+")


def group_name(task_id: str) -> str:
    """`tile[r=0,c=1]` -> `tile`, `tile_r0_c1` -> `tile_r*_c*`, `render-17` -> `render-*`, `prepare` ->
    `prepare` (see the module doc). Runs once per task of a DAG (100,000 tasks: ~0.1 s, once)."""
    if task_id.endswith("]"):
        cut = task_id.rfind("[")
        if cut > 0:
            return task_id[:cut]
    if not task_id.isalpha() and any(c in _DIGITS for c in task_id):
        return _DIGIT_RUN.sub("*", task_id)
    return task_id


@dataclass(frozen=True, slots=True)
class Group:
    name: str
    stage: int
    total: int


@dataclass(frozen=True, slots=True)
class DagStructure:
    """A DAG's groups, the group of each task (in the DAG's task order) and the edges between groups."""

    stages: int
    """Stages of the DAG (its longest path, in tasks), before any banding."""
    groups: tuple[Group, ...]
    """By stage, then first appearance in the DAG (a merged `… N more` group last in its stage)."""
    task_group: tuple[int, ...]
    """Index into `groups` of each task, in the order of `DagSpec.tasks`."""
    edges: tuple[tuple[int, int], ...]
    """(from group, to group), deduplicated, sorted."""


def task_stages(spec: DagSpec) -> list[int]:
    """Each task's longest-path depth, in `spec.tasks` order, in O(tasks + edges).

    Most DAG files list a task after its upstream tasks: one pass then does. Otherwise Kahn's algorithm.
    The DAG was validated (no cycle, every dependency known); a task a cycle would leave unplaced gets
    stage 0 rather than an exception, so a view never fails on a DAG it is shown."""
    tasks = spec.tasks
    seen: dict[str, int] = {}
    stage: list[int] = []
    try:
        for t in tasks:
            deps = t.depends_on
            s = 1 + max(map(seen.__getitem__, deps)) if deps else 0
            seen[t.id] = s
            stage.append(s)
        return stage
    except KeyError:
        pass  # an upstream task listed later (or unknown)
    index = {t.id: i for i, t in enumerate(tasks)}
    waiting = [0] * len(tasks)
    dependents: list[list[int]] = [[] for _ in tasks]
    for i, t in enumerate(tasks):
        for dep in set(t.depends_on):
            j = index.get(dep)
            if j is not None:
                dependents[j].append(i)
                waiting[i] += 1
    stage = [0] * len(tasks)
    frontier = [i for i, n in enumerate(waiting) if n == 0]
    while frontier:
        i = frontier.pop()
        next_stage = stage[i] + 1
        for k in dependents[i]:
            if stage[k] < next_stage:
                stage[k] = next_stage
            waiting[k] -= 1
            if waiting[k] == 0:
                frontier.append(k)
    return stage


def dag_structure(spec: DagSpec, max_groups: int = MAX_GROUPS, max_stages: int = MAX_STAGES) -> DagStructure:
    """Group and stage every task of `spec` (see the module doc for the rules and the bounds)."""
    tasks = spec.tasks
    stage = task_stages(spec)
    stages = max(stage, default=-1) + 1
    if stages > max_stages:  # band consecutive stages: each band is labelled by its first stage
        width = -(-stages // max_stages)
        shown = [s - s % width for s in stage]
    else:
        shown = stage
    # Groups in first-appearance order, then sorted by stage (a stable sort keeps appearance within one).
    key_index: dict[tuple[str, int], int] = {}
    add = key_index.setdefault
    raw_group = [add(k, len(key_index)) for k in zip(map(group_name, (t.id for t in tasks)), shown, strict=True)]
    keys = list(key_index)
    totals = Counter(raw_group)
    order = sorted(range(len(keys)), key=lambda g: keys[g][1])
    final = _bounded(keys, totals, order, max_groups)
    groups: list[Group] = []
    remap = [0] * len(keys)
    for entry in final:
        for g in entry[2]:
            remap[g] = len(groups)
        groups.append(Group(entry[0], entry[1], sum(totals[g] for g in entry[2])))
    task_group = tuple(remap[g] for g in raw_group)
    edge_set: set[tuple[int, int]] = set()
    group_of = {t.id: g for t, g in zip(tasks, task_group, strict=True)}.get
    for t, to in zip(tasks, task_group, strict=True):
        if t.depends_on:
            for frm in set(map(group_of, t.depends_on)):
                if frm is not None and frm != to:
                    edge_set.add((frm, to))
    return DagStructure(stages, tuple(groups), task_group, tuple(sorted(edge_set)))


def _bounded(
    keys: list[tuple[str, int]], totals: Counter[int], order: list[int], max_groups: int
) -> list[tuple[str, int, list[int]]]:
    """(name, stage, raw groups it stands for) in display order, at most `max_groups` of them: the largest
    groups are kept; the others of each stage merge into one `… N more` group (ties: earlier first)."""
    if len(order) <= max_groups:
        return [(keys[g][0], keys[g][1], [g]) for g in order]
    stage_count = len({keys[g][1] for g in order})
    keep_n = max(0, max_groups - stage_count)
    by_size = sorted(order, key=lambda g: (-totals[g], g))
    kept = set(by_size[:keep_n])
    out: list[tuple[str, int, list[int]]] = []
    rest: list[int] = []
    for pos, g in enumerate(order):
        s = keys[g][1]
        if g in kept:
            out.append((keys[g][0], s, [g]))
        else:
            rest.append(g)
        end_of_stage = pos + 1 == len(order) or keys[order[pos + 1]][1] != s
        if end_of_stage and rest:
            if len(rest) == 1:
                out.append((keys[rest[0]][0], s, rest))
            else:
                out.append((f"… {len(rest)} more", s, rest))
            rest = []
    return out


def group_counts(structure: DagStructure, states: Iterable[Any], cached: Iterable[bool]) -> list[dict[str, int]]:
    """Tasks per state in each group, from each task's state (a str, or an enum of str values) and cached
    flag in the DAG's task order; a cached success counts as `cached`, not `succeeded`. Only non-zero
    counts appear. The pass over the tasks runs in C (`Counter` over `zip`): 100,000 tasks take ~10 ms."""
    counts: list[dict[str, int]] = [{} for _ in structure.groups]
    for (g, state, was_cached), n in Counter(zip(structure.task_group, states, cached, strict=True)).items():
        name = "cached" if was_cached else str(getattr(state, "value", state))
        bucket = counts[g]
        bucket[name] = bucket.get(name, 0) + n
    return counts
