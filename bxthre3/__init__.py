"""Bxthre3: pool spare devices into one cluster that runs DAGs of WebAssembly tasks.

The Python API (docs/API.md): `Dag`, `Client`, `LocalCluster`, imported on first use so that
``import bxthre3`` (which every host and CLI process does) stays cheap.
"""

__version__ = "0.1.0"

TYPE_CHECKING = False  # not `from typing import ...`: typing alone would triple the cost of `import bxthre3`
if TYPE_CHECKING:
    from typing import Any

    from bxthre3.api.client import Client, DagHandle
    from bxthre3.api.cluster import LocalCluster
    from bxthre3.api.dag import Dag, Task
    from bxthre3.api.results import DagResults, DagStatus, TaskResult

_LAZY = {
    "Dag": "bxthre3.api.dag",
    "Task": "bxthre3.api.dag",
    "Client": "bxthre3.api.client",
    "DagHandle": "bxthre3.api.client",
    "LocalCluster": "bxthre3.api.cluster",
    "DagResults": "bxthre3.api.results",
    "DagStatus": "bxthre3.api.results",
    "TaskResult": "bxthre3.api.results",
}

__all__ = ["Client", "Dag", "DagHandle", "DagResults", "DagStatus", "LocalCluster", "Task", "TaskResult", "__version__"]


def __getattr__(name: str) -> "Any":
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'bxthre3' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
