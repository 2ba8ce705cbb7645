"""What a controller keeps per task of a big DAG: a DAG read from the wire shares its repeated strings."""

from __future__ import annotations

import msgpack

from bxthre3.dag.spec import DagSpec, InputKind, TaskInput, TaskSpec
from tests.unit.test_dag_model import OK, OK_SHA


def test_tasks_read_from_the_wire_share_one_module_hash_and_name() -> None:
    sha = OK_SHA
    tasks = tuple(
        TaskSpec(id=f"t{i}", module=sha, module_name="noop.wasm", inputs=(TaskInput(InputKind.LITERAL, str(i)),))
        for i in range(3)
    )
    wire = msgpack.unpackb(msgpack.packb(DagSpec("d", tasks, {sha: OK}).to_wire(), use_bin_type=True), raw=False)
    read = DagSpec.from_wire(wire)
    assert [t.module for t in read.tasks] == [sha] * 3 and [t.args for t in read.tasks] == [("0",), ("1",), ("2",)]
    assert read.tasks[0].module is read.tasks[1].module is read.tasks[2].module
    assert read.tasks[0].module_name is read.tasks[2].module_name
