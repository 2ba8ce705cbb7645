"""A DAG's groups and stages (`dag/structure.py`) and the `structure` view: names, stages, edges, bounds,
and the cost on a 100,000-task DAG."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bxthre3.controller import views
from bxthre3.dag.spec import DagSpec, TaskSpec
from bxthre3.dag.structure import MAX_GROUPS, dag_structure, group_counts, group_name, task_stages
from bxthre3.dag.yaml_loader import load_dag
from bxthre3.scheduler import DagSubmitted
from tests.unit.test_scheduler import Scheduler, assigns, join, ok

REPO = Path(__file__).resolve().parents[2]


def spec(*tasks: tuple[str, tuple[str, ...]]) -> DagSpec:
    return DagSpec(
        name="s", tasks=tuple(TaskSpec(id=i, module="0" * 64, module_name="m.wasm", depends_on=d) for i, d in tasks),
        modules={},
    )  # fmt: skip


@pytest.mark.parametrize(
    ("task_id", "name"),
    [
        ("tile[r=0,c=1]", "tile"),
        ("tile[i=7]", "tile"),
        ("render-17", "render-*"),
        ("frame_0042", "frame_*"),
        ("v1.2", "v*.*"),
        ("prepare", "prepare"),
        ("x17", "x*"),
        ("tile_r0_c1", "tile_r*_c*"),  # what `bxthre3 dag mandelbrot` writes
        ("-1", "-*"),
        ("[a]", "[a]"),  # nothing before the brackets
        ("a[1]-2", "a[*]-*"),
    ],
)
def test_group_names(task_id: str, name: str) -> None:
    assert group_name(task_id) == name


def test_for_each_ids_from_the_yaml_loader_group_by_template(tmp_path: Path) -> None:
    """The loader's real `for_each` ids (see dag/templates.py), not ones written here by hand."""
    examples = sorted((REPO / "dags").glob("*.yaml"))
    with_for_each = [p for p in examples if "for_each" in p.read_text()]
    assert with_for_each, "a bundled DAG uses for_each"
    loaded = load_dag(with_for_each[0])
    found = dag_structure(loaded)
    instanced = [t.id for t in loaded.tasks if t.id.endswith("]")]
    assert instanced, f"{with_for_each[0].name} makes [...] ids"
    names = {g.name for g in found.groups}
    assert all(group_name(i) in names and "[" not in group_name(i) for i in instanced)
    assert sum(g.total for g in found.groups) == len(loaded.tasks)
    assert len(found.groups) < len(loaded.tasks)


def test_stages_are_longest_path_depths_in_any_file_order() -> None:
    s = spec(("c", ("a", "b")), ("a", ()), ("b", ("a",)), ("d", ()))  # listed before its upstream tasks
    assert task_stages(s) == [2, 0, 1, 0]
    found = dag_structure(s)
    assert [(g.name, g.stage) for g in found.groups] == [("a", 0), ("d", 0), ("b", 1), ("c", 2)]
    assert found.stages == 3
    assert found.edges == ((0, 2), (0, 3), (2, 3))


def test_numbered_tasks_group_per_stage_and_edges_are_deduplicated() -> None:
    tasks = [("prepare", ())]
    tasks += [(f"render-{i}", ("prepare",)) for i in range(50)]
    tasks += [(f"encode-{i}", (f"render-{i}",)) for i in range(50)]
    tasks += [("report", tuple(f"encode-{i}" for i in range(50)))]
    found = dag_structure(spec(*tasks))
    assert [(g.name, g.stage, g.total) for g in found.groups] == [
        ("prepare", 0, 1), ("render-*", 1, 50), ("encode-*", 2, 50), ("report", 3, 1),
    ]  # fmt: skip
    assert found.edges == ((0, 1), (1, 2), (2, 3))


def _letters(i: int) -> str:
    """A number spelled in letters (digits would make one group: `solo1`, `solo2` -> `solo*`)."""
    return "".join(chr(ord("a") + int(d)) for d in str(i))


def test_more_than_200_groups_merge_the_smallest_of_each_stage() -> None:
    tasks = [(f"big{_letters(i)}-{j}", ()) for i in range(20) for j in range(10)]  # 20 groups of 10 at stage 0
    tasks += [(f"solo{_letters(i)}", ()) for i in range(300)]  # 300 groups of 1 at stage 0
    tasks += [(f"next{_letters(i)}", ("biga-0",)) for i in range(300)]  # 300 groups of 1 at stage 1
    found = dag_structure(spec(*tasks))
    assert len(found.groups) <= MAX_GROUPS
    assert sum(g.total for g in found.groups) == len(tasks)
    assert all(g.total == 10 for g in found.groups[:20]), "the largest groups are kept"
    merged = [g for g in found.groups if g.name.startswith("… ")]
    assert [g.stage for g in merged] == [0, 1]
    assert merged[0].name.endswith(" more") and found.groups[-1] is merged[1], "a merged group ends its stage"
    assert max(found.task_group) == len(found.groups) - 1


def test_a_long_chain_is_banded_into_at_most_100_stages() -> None:
    found = dag_structure(spec(*((f"step-{i}", (f"step-{i - 1}",) if i else ()) for i in range(1000))))
    assert found.stages == 1000
    assert len(found.groups) == 100 and {g.name for g in found.groups} == {"step-*"}
    assert [g.stage for g in found.groups[:3]] == [0, 10, 20] and all(g.total == 10 for g in found.groups)
    assert found.edges == tuple((i, i + 1) for i in range(99))


def test_counts_split_cached_from_succeeded() -> None:
    found = dag_structure(spec(("a-1", ()), ("a-2", ()), ("a-3", ()), ("b", ("a-1",))))
    counts = group_counts(found, ["succeeded", "succeeded", "failed", "pending"], [True, False, False, False])
    assert counts == [{"cached": 1, "succeeded": 1, "failed": 1}, {"pending": 1}]


def test_the_structure_view_counts_match_the_tasks() -> None:
    s = Scheduler()
    s.handle(DagSubmitted("d1", spec(("prep", ()), *((f"t-{i}", ("prep",)) for i in range(4))), 0.0))
    [a] = assigns(join(s, "h1", slots=2))
    ok(s, a, b"")
    view = views.structure_view(s.dags["d1"], dag_structure(s.dags["d1"].spec))
    assert view == {
        "dag_id": "d1",
        "name": "s",
        "stages": 2,
        "groups": [
            {"name": "prep", "stage": 0, "total": 1, "counts": {"succeeded": 1}},
            {"name": "t-*", "stage": 1, "total": 4, "counts": {"running": 2, "ready": 2}},
        ],
        "edges": [(0, 1)],
    }


def test_100000_tasks_are_grouped_once_and_counted_fast() -> None:
    n = 100_000
    tasks = [("prepare", ())]
    tasks += [(f"tile[i={i}]", ("prepare",)) for i in range(n - 2)]
    tasks += [("merge", tuple(f"tile[i={i}]" for i in range(n - 2)))]
    s = Scheduler()
    s.validate_every = 10**9  # a check walks every task: not the point here
    s.handle(DagSubmitted("big", spec(*tasks), 0.0))
    dag = s.dags["big"]
    # This thread's CPU time, best of several: the machine (and other threads) may be busy.
    started = time.thread_time()
    found = dag_structure(dag.spec)
    grouped = time.thread_time() - started
    best = float("inf")
    for _ in range(5):
        started = time.thread_time()
        view = views.structure_view(dag, found)
        best = min(best, time.thread_time() - started)
    print(f"grouping 100,000 tasks: {grouped * 1000:.0f} ms once; each structure view: {best * 1000:.1f} ms")
    assert [(g["name"], g["total"], g["counts"]) for g in view["groups"]] == [
        ("prepare", 1, {"ready": 1}), ("tile", n - 2, {"pending": n - 2}), ("merge", 1, {"pending": 1}),
    ]  # fmt: skip
    assert best < 0.1, f"a structure view of 100,000 tasks took {best * 1000:.0f} ms (goal: 50; ~20 measured)"
    assert grouped < 1.5, f"grouping 100,000 tasks took {grouped:.2f} s"
