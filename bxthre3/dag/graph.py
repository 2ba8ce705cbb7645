"""The graph rules of a DAG: duplicate ids, unknown dependencies, cycles, upstream outputs. Pure.

Both doors in (`dag.yaml_loader`, `dag.wire_form`) end in :func:`validate_graph`, so the controller
never holds a DAG the client would have refused, and the graph rules live in one place.
"""

from __future__ import annotations

from collections import deque

from bxthre3.common.errors import DagError
from bxthre3.dag.fields import _show, did_you_mean
from bxthre3.dag.spec import DagSpec, InputKind, TaskInput


def validate_graph(spec: DagSpec) -> None:
    """Check the cross-references of a DAG; raise DagError at the first problem.

    Duplicate ids, unknown or self dependencies, missing modules, cycles (printed as
    "a -> b -> a", read "a depends on b"), and `output_of_x` inputs whose task is
    unknown or not upstream. Iterative and linear in tasks + edges, so a
    100,000-task chain is fine; the upstream check costs an extra bitwise OR per
    edge over the tasks that are referenced indirectly (see `_check_upstream`).
    """
    src = spec.source
    index: dict[str, int] = {}
    for i, task in enumerate(spec.tasks):
        if task.id in index:
            raise DagError(
                f"duplicate task id {task.id!r} (also task #{index[task.id] + 1})",
                file=src,
                task=task.id,
                field="id",
            )
        index[task.id] = i
    for task in spec.tasks:
        seen: set[str] = set()
        for dep in task.depends_on:
            if dep == task.id:
                raise DagError("a task cannot depend on itself", file=src, task=task.id, field="depends_on")
            if dep not in index:
                raise DagError(
                    f"depends on unknown task {_show(dep)}{did_you_mean(dep, index)}",
                    file=src,
                    task=task.id,
                    field="depends_on",
                )
            if dep in seen:
                raise DagError(f"{dep!r} is listed twice", file=src, task=task.id, field="depends_on")
            seen.add(dep)
        if task.module not in spec.modules:
            raise DagError(
                f"module {_show(task.module_name)} (sha256 {task.module[:12]}...) is not among the DAG's modules",
                file=src,
                task=task.id,
                field="module",
            )
        for item in task.sources:
            if item.kind is not InputKind.OUTPUT:
                continue
            if item.value == task.id:
                raise DagError(
                    f"input {_show(item.text)}: a task cannot read its own output",
                    file=src,
                    task=task.id,
                    field=task.field_of(item),
                )
            if item.value not in index:
                raise DagError(
                    f"input {_show(item.text)} reads unknown task {_show(item.value)}{did_you_mean(item.value, index)}",
                    file=src,
                    task=task.id,
                    field=task.field_of(item),
                )
    order = _kahn(spec, index)
    _check_upstream(spec, index, order)


def topological_order(spec: DagSpec) -> list[str]:
    """Task ids, every task after all its dependencies; ties keep file order.

    Raises DagError on a cycle or an unknown dependency (call validate_graph first
    for the full set of checks).
    """
    index: dict[str, int] = {}
    for i, task in enumerate(spec.tasks):
        index.setdefault(task.id, i)
    for task in spec.tasks:
        for dep in task.depends_on:
            if dep not in index:
                raise DagError(
                    f"depends on unknown task {_show(dep)}",
                    file=spec.source,
                    task=task.id,
                    field="depends_on",
                )
    return [spec.tasks[i].id for i in _kahn(spec, index)]


def _kahn(spec: DagSpec, index: dict[str, int]) -> list[int]:
    """Kahn's algorithm over task indices; on a cycle raise DagError printing one."""
    n = len(spec.tasks)
    waiting = [0] * n
    dependents: list[list[int]] = [[] for _ in range(n)]
    for i, task in enumerate(spec.tasks):
        deps = {index[d] for d in task.depends_on}
        waiting[i] = len(deps)
        for d in deps:
            dependents[d].append(i)
    ready = deque(i for i in range(n) if waiting[i] == 0)
    order: list[int] = []
    while ready:
        i = ready.popleft()
        order.append(i)
        for j in dependents[i]:
            waiting[j] -= 1
            if waiting[j] == 0:
                ready.append(j)
    if len(order) < n:
        cycle = _find_cycle(spec, index, waiting)
        raise DagError(
            "dependency cycle: " + _cycle_text([spec.tasks[i].id for i in cycle]) + " (each task depends on the next)",
            file=spec.source,
            task=spec.tasks[cycle[0]].id,
            field="depends_on",
        )
    return order


def _cycle_text(ids: list[str], keep: int = 8) -> str:
    """'a -> b -> a' (``ids`` ends where it starts), shortened in the middle when long."""
    ring = ids
    if len(ring) <= 2 * keep + 1:
        return " -> ".join(ring)
    hidden = len(ring) - 2 * keep
    return " -> ".join(ring[:keep]) + f" -> ... {hidden} more ... -> " + " -> ".join(ring[-keep:])


def _find_cycle(spec: DagSpec, index: dict[str, int], waiting: list[int]) -> list[int]:
    """One cycle among the tasks Kahn could not order, first task in file order first.

    Every such task still waits on another such task, so following those edges from
    any of them must come back to a task already on the path.
    """
    stuck = [w > 0 for w in waiting]
    start = next(i for i, s in enumerate(stuck) if s)
    position: dict[int, int] = {}
    path: list[int] = []
    current = start
    while current not in position:
        position[current] = len(path)
        path.append(current)
        current = next(index[d] for d in spec.tasks[current].depends_on if stuck[index[d]])
    cycle = path[position[current] :]
    first = cycle.index(min(cycle))
    cycle = cycle[first:] + cycle[:first]
    return [*cycle, cycle[0]]


def _check_upstream(spec: DagSpec, index: dict[str, int], order: list[int]) -> None:
    """Every `output_of_x` input must name a task upstream of its reader.

    A direct dependency is checked in O(1). For the rest, each task referenced
    indirectly gets one bit, and each task's "upstream referenced tasks" set is an
    int bitmask ORed from its dependencies in topological order. Masks are shared
    when a merge adds nothing and dropped once their last dependent has read them,
    so a long chain holds one at a time. Worst case (many live tasks with distinct
    ancestor sets) costs tasks x referenced-tasks bits; the frame and task limits
    bound that.
    """
    indirect: list[tuple[int, TaskInput]] = []
    bit_of: dict[int, int] = {}
    for i, task in enumerate(spec.tasks):
        direct = set(task.depends_on)
        for item in task.sources:
            if item.kind is InputKind.OUTPUT and item.value not in direct:
                target = index[item.value]
                indirect.append((i, item))
                bit_of.setdefault(target, len(bit_of))
    if not indirect:
        return
    queries: dict[int, list[TaskInput]] = {}
    for reader, item in indirect:
        queries.setdefault(reader, []).append(item)
    unread = [0] * len(spec.tasks)
    dep_lists: list[list[int]] = []
    for task in spec.tasks:
        deps = [index[d] for d in task.depends_on]
        dep_lists.append(deps)
        for d in deps:
            unread[d] += 1
    up: dict[int, int] = {}  # task -> bits of itself (if referenced) and its ancestors
    for i in order:
        mask = 0
        for d in dep_lists[i]:
            theirs = up[d]
            if not mask:
                mask = theirs  # share the object: a chain holds one mask, not n copies
            elif theirs and theirs is not mask:
                merged = mask | theirs
                if merged == theirs:
                    mask = theirs
                elif merged != mask:
                    mask = merged
            unread[d] -= 1
            if unread[d] == 0:
                del up[d]
        for item in queries.get(i, ()):
            target_id = item.value
            if not mask >> bit_of[index[target_id]] & 1:
                task = spec.tasks[i]
                raise DagError(
                    f"input {_show(item.text)} reads task {target_id!r}, "
                    f"which is not upstream of this task: add {target_id!r} to depends_on",
                    file=spec.source,
                    task=task.id,
                    field=task.field_of(item),
                )
        if unread[i]:
            bit = bit_of.get(i)
            up[i] = mask if bit is None else mask | (1 << bit)
