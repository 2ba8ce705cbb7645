"""`bxthre3 validate`: load and check a DAG file without a cluster, with a note for each module that
only wasmtime hosts can run.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..common.errors import EXIT_OK


def _run_validate(args: argparse.Namespace) -> int:
    from ..dag.examples import dag_file
    from ..dag.yaml_loader import load_dag

    spec = load_dag(dag_file(args.dag), params=dict(args.params))
    size = sum(len(m) for m in spec.modules.values())
    print(f"{args.dag}: OK — DAG '{spec.name}', {len(spec.tasks)} tasks, {len(spec.modules)} modules ({size:,} bytes)")
    for note in _engine_notes(spec):
        print(f"{args.dag}: note: {note}")
    return EXIT_OK


def _engine_notes(spec: Any) -> list[str]:
    """Modules only wasmtime hosts can run: OK would otherwise promise what a Wasm3 host refuses."""
    from ..common.errors import printable
    from ..wasm.normalize import WASM3, normalize, refusal

    notes = []
    for digest, data in spec.modules.items():
        problem = refusal(normalize(data, name=digest[:12]).features, engine=WASM3)
        if problem:
            names = sorted({t.module_name for t in spec.tasks if t.module == digest})
            label = ", ".join(printable(n) for n in names) or digest[:12]
            notes.append(f"module {label} runs on wasmtime hosts only: it {problem}")
    return notes
