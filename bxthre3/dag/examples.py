"""The example DAGs and their modules, bundled in the package so a pip or pipx install runs them.

In a checkout, ``bxthre3/data/dags`` and ``bxthre3/data/wasm_modules`` are symlinks to the repository's
``dags/`` and ``wasm_modules/`` (one copy, edited where it always was); building the wheel or sdist follows
them, so an installed bxthre3 holds real files there. The DAG loader searches :func:`modules_dir` last, so
a DAG written anywhere (``bxthre3 dag mandelbrot -o /elsewhere/m.yaml``) still finds the bundled modules,
and ``bxthre3 run hello_fanout`` names a bundled DAG when no such file exists.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from bxthre3.common.errors import DagError

DATA = Path(__file__).resolve().parents[1] / "data"
MODULE_PATH_ENV = "BXTHRE3_MODULE_PATH"
"""Directories (os.pathsep-separated) searched for a DAG's modules after the DAG's own directory."""


def dags_dir() -> Path:
    """Where the bundled example DAGs are."""
    return DATA / "dags"


def modules_dir() -> Path:
    """Where the bundled example modules are: the last place a module is looked for."""
    return DATA / "wasm_modules"


@dataclass(frozen=True)
class Example:
    """One bundled DAG: what `bxthre3 run NAME` accepts, its file, and its one-line description."""

    name: str
    path: Path
    description: str


def _description(path: Path) -> str:
    """The DAG's `description:` field, first line; empty when it has none or the file does not parse."""
    import yaml  # lazy: the CLI builds its parser with this module imported

    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return ""
    text = doc.get("description") if isinstance(doc, dict) else None
    if not text:
        return ""
    line = str(text).strip().splitlines()[0]
    params = doc.get("params")
    if "$" in line and isinstance(params, dict):  # shown with the params' defaults
        from bxthre3.dag.templates import TemplateError, substitute

        try:
            scope: dict[str, str] = {}
            for name, value in params.items():
                scope[str(name)] = substitute(str(value), scope)
            line = substitute(line, scope)
        except TemplateError:
            pass
    return line


def examples() -> list[Example]:
    """Every bundled DAG, by name."""
    found = sorted(dags_dir().glob("*.yaml")) if dags_dir().is_dir() else []
    return [Example(p.stem, p, _description(p)) for p in found]


def find(name: str) -> Path | None:
    """The bundled DAG called `name` (``hello_fanout`` or ``hello_fanout.yaml``), or None.

    Only a bare name qualifies: anything with a directory part is a path the user meant literally.
    """
    if not name or "/" in name or "\\" in name or name.startswith("."):
        return None
    stem = name[: -len(".yaml")] if name.endswith(".yaml") else name
    path = dags_dir() / f"{stem}.yaml"
    return path if path.is_file() else None


def dag_file(arg: Path) -> Path:
    """What `run`/`submit`/`validate` load for their DAG argument: the file when it exists, else the bundled
    example of that name. A bare name that is neither gets an error saying where the examples are listed."""
    if arg.exists():
        return arg
    bundled = find(str(arg))
    if bundled is not None:
        return bundled
    if len(arg.parts) == 1 and arg.suffix not in (".yaml", ".yml"):
        raise DagError("DAG file not found, and no bundled example has that name (`bxthre3 examples` lists them)",
                       file=str(arg))  # fmt: skip
    return arg  # the loader says "not found" with the path


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add `examples` to the `bxthre3` command line."""
    p = subparsers.add_parser("examples", help="list the example DAGs bundled with bxthre3 (bxthre3 run NAME runs one)")
    p.set_defaults(handler=_run_examples)


def _run_examples(args: argparse.Namespace) -> int:
    found = examples()
    if not found:
        print(f"bxthre3: no bundled examples in {dags_dir()} (a damaged install?)", file=sys.stderr)
        return 2
    width = max(len(e.name) for e in found)
    for e in found:
        print(f"{e.name:<{width}}  {e.description}".rstrip())
    print(f"run one: bxthre3 run NAME (or submit NAME); files in {dags_dir()}", file=sys.stderr)
    return 0
