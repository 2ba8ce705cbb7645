"""The controller's side of the result cache, without sockets: ServeCached answered from the store, in a loop.

A chain of thousands of served tasks releases one task per answer; answering by recursion would overflow
Python's stack, so `Controller._apply` answers them iteratively."""

from __future__ import annotations

import hashlib

from bxthre3.controller.server import Controller
from bxthre3.dag.spec import DagSpec, InputKind, TaskInput, TaskSpec
from bxthre3.scheduler import DagState, DagSubmitted
from bxthre3.scheduler.cache_key import cache_key
from bxthre3.scheduler.core import prepare_dag

MODULE = b"\x00asm\x01\x00\x00\x00"
SHA = hashlib.sha256(MODULE).hexdigest()


def test_a_long_chain_is_served_whole_iteratively_and_a_missing_link_runs() -> None:
    n = 3000
    tasks = [TaskSpec(id="t0", module=SHA, module_name="m.wasm")]
    tasks += [
        TaskSpec(id=f"t{i}", module=SHA, module_name="m.wasm", inputs=(TaskInput(InputKind.OUTPUT, f"t{i - 1}"),),
                 depends_on=(f"t{i - 1}",))
        for i in range(1, n)
    ]  # fmt: skip
    spec = DagSpec(name="chain", tasks=tuple(tasks), modules={SHA: MODULE})
    controller = Controller(host="127.0.0.1", port=0)
    try:
        controller.open_state()
        store = controller.store
        assert store is not None and controller.config.result_cache
        for i in range(n):
            key = cache_key(f"t{i}", SHA, (), (b"out",) if i else (), None, None, False)
            if i != n - 1:  # the last link is missing: it must run
                store.cache_put(key, b"out", None)
            controller.scheduler.cache_keys.add(key)  # the scheduler believes the last one is there too
        controller._apply(controller.scheduler.handle(DagSubmitted("d", spec, 1.0, prepare_dag("d", spec, 1.0))))
        dag = controller.scheduler.dags["d"]
        assert sum(t.cached for t in dag.tasks.values()) == n - 1
        last = dag.tasks[f"t{n - 1}"]
        assert last.state.value == "ready" and not last.cached, "the missing entry is queued to run"
        assert dag.state is DagState.RUNNING and controller.scheduler.cache_hits == n - 1
    finally:
        controller.close()
