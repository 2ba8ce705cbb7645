"""The layering rules of docs/ARCHITECTURE.md, read from the source with `ast`.

Every import counts, including the lazy ones inside functions (the codebase keeps its heaviest rules
with them); only imports under ``if TYPE_CHECKING:`` are skipped, since they load nothing. The rules:

- **pure modules** (the scheduler, the DAG spec, field rules, graph checks and wire form, the wire
  protocol, liveness, the Wasm inspection and rewriting, the executor's pipe framing, the node
  manager's scaling, the controller's views) import no sockets, threads, clocks, files, subprocesses,
  ZeroMQ, SQLite, psutil, Textual or engine, and only other pure modules of bxthre3: their tests read
  "these inputs give exactly these outputs";
- **the host** (`host/*`, the executor's parent handle) never imports an engine, the scheduler,
  SQLite, OpenSSL or Textual, directly or through what it imports at load time: a host is a small
  process on a phone, killable, with no OpenSSL (docs/SECURITY.md);
- **an engine never imports the other** (the wasmtime executor once loaded pywasm3 for a dataclass);
- **every module lives in a package**: only `cli`, `__main__` and `__init__` sit at the top.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

import pytest

import bxthre3

PACKAGE_DIR = Path(bxthre3.__file__).resolve().parent

PURE = (
    "bxthre3.scheduler",
    "bxthre3.scheduler.*",
    "bxthre3.dag.spec",
    "bxthre3.dag.fields",
    "bxthre3.dag.graph",
    "bxthre3.dag.wire_form",
    "bxthre3.dag.templates",
    "bxthre3.dag.structure",
    "bxthre3.wire.protocol",
    "bxthre3.wire.liveness",
    "bxthre3.wasm.abi",
    "bxthre3.wasm.contract",
    "bxthre3.wasm.inspect",
    "bxthre3.wasm.normalize",
    "bxthre3.wasm.sandbox",
    "bxthre3.wasm.sections",
    "bxthre3.wasm.reset",
    "bxthre3.wasm.vfs",
    "bxthre3.executor.pipe_framing",
    "bxthre3.host.slots",
    "bxthre3.node.scaling",
    "bxthre3.controller.views",
    "bxthre3.controller.quarantine",
    "bxthre3.controller.rate_limit",
    "bxthre3.common.errors",
    "bxthre3.common.failures",
    "bxthre3.common.limits",
    "bxthre3.common.digests",
    "bxthre3.api.results",
    "bxthre3.backends.driver",
    "bxthre3.tui.web_access",
    "bxthre3.tui.image_decode",
)
"""Modules (fnmatch patterns) that compute and nothing else."""

IMPURE = (
    "socket", "ssl", "select", "selectors", "asyncio", "threading", "_thread", "queue", "concurrent",
    "multiprocessing", "subprocess", "signal", "time", "os", "pathlib", "shutil", "tempfile", "io", "fcntl",
    "mmap", "ctypes", "resource", "logging", "atexit", "sqlite3", "zmq", "psutil", "textual", "rich",
    "wasm3", "wasmtime",
)  # fmt: skip
"""What a pure module must not import (top-level names): I/O, threads, clocks, processes, native engines."""

PURE_ALLOWED = {"bxthre3.executor.pipe_framing": {"os"}}
"""Exceptions, each with its reason: pipe framing writes to the file descriptors it is handed (os.write,
os.writev); it opens nothing and owns no descriptor."""

HOST = ("bxthre3.host", "bxthre3.host.*", "bxthre3.executor.parent")
"""The host process's own modules: what an idle host loads."""

ENGINES = ("bxthre3.wasm.wasm3", "bxthre3.wasm.wasmtime", "wasm3", "wasmtime")
HOST_FORBIDDEN = (*ENGINES, "bxthre3.scheduler", "sqlite3", "ssl", "_ssl", "textual")

TOP_LEVEL = {"bxthre3", "bxthre3.__main__", "bxthre3.cli"}


@dataclass(frozen=True)
class Import:
    """One imported module as the importing file names it, resolved to an absolute name."""

    module: str
    line: int
    eager: bool
    """Run when the importing module loads (module level), not inside a function."""


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST, in_function: bool) -> Iterator[tuple[ast.AST, bool]]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child):
            for other in child.orelse:
                yield other, in_function
                yield from _walk(other, in_function)
            continue
        inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        yield child, inner
        yield from _walk(child, inner)


def imports_of(path: Path, root: Path) -> list[Import]:
    """Every module `path` imports (relative imports resolved; `from P import m` also counts P.m)."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    modules = {module_name(p, root) for p in root.rglob("*.py")}
    found: list[Import] = []
    for node, in_function in _walk(ast.parse(path.read_text(), str(path)), False):
        if isinstance(node, ast.Import):
            found += [Import(alias.name, node.lineno, not in_function) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append(Import(target, node.lineno, not in_function))
            for alias in node.names:
                if f"{target}.{alias.name}" in modules:
                    found.append(Import(f"{target}.{alias.name}", node.lineno, not in_function))
    return found


def _within(module: str, names: Iterable[str]) -> bool:
    """`module` is one of `names` or inside one of them (a package)."""
    return any(module == n or module.startswith(n + ".") for n in names)


def _matches(module: str, patterns: Iterable[str]) -> bool:
    return any(fnmatchcase(module, p) for p in patterns)


def _sources(root: Path) -> dict[str, Path]:
    return {module_name(p, root): p for p in sorted(root.rglob("*.py"))}


def pure_violations(root: Path, pure: Iterable[str], impure: Iterable[str], allowed: dict[str, set[str]]) -> list[str]:
    pure = tuple(pure)
    found = []
    for name, path in _sources(root).items():
        if not _matches(name, pure):
            continue
        for imp in imports_of(path, root):
            top = imp.module.partition(".")[0]
            if top == root.name:
                if not _matches(imp.module, pure) and not _is_bare_package(imp.module, root):
                    found.append(f"{name}:{imp.line} imports {imp.module}, which is not pure")
            elif top in impure and top not in allowed.get(name, set()):
                found.append(f"{name}:{imp.line} imports {imp.module}")
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("open", "input"):
                found.append(f"{name}:{node.lineno} calls {node.func.id}()")
    return found


def _is_bare_package(module: str, root: Path) -> bool:
    """`from bxthre3.wasm import abi` loads the package too: fine when its __init__ imports nothing."""
    init = root.parent.joinpath(*module.split("."), "__init__.py")
    return init.exists() and not imports_of(init, root)


def eager_closure(start: str, root: Path) -> dict[str, str]:
    """Every module loading `start` loads, by module-level imports: {module: the bxthre3 module importing it}."""
    sources = _sources(root)
    seen: dict[str, str] = {start: start}
    todo = [start]
    while todo:
        current = todo.pop()
        parts = current.split(".")
        # importing a.b.c runs a/__init__ and a/b/__init__ first
        for i in range(1, len(parts)):
            parent = ".".join(parts[:i])
            if parent in sources and parent not in seen:
                seen[parent] = current
                todo.append(parent)
        if current not in sources:
            continue
        for imp in imports_of(sources[current], root):
            if imp.eager and imp.module not in seen:
                seen[imp.module] = current
                if imp.module.partition(".")[0] == root.name:
                    todo.append(imp.module)
    return seen


def host_violations(root: Path, host: Iterable[str], forbidden: Iterable[str]) -> list[str]:
    host, forbidden = tuple(host), tuple(forbidden)
    found = []
    for name, path in _sources(root).items():
        if not _matches(name, host):
            continue
        for imp in imports_of(path, root):
            if _within(imp.module, forbidden):
                found.append(f"{name}:{imp.line} imports {imp.module}")
        for module, importer in eager_closure(name, root).items():
            if _within(module, forbidden) and importer != name:
                found.append(f"{name} loads {module} (imported by {importer})")
    return found


def engine_violations(root: Path, engines: dict[str, tuple[str, ...]]) -> list[str]:
    sources = _sources(root)
    return [
        f"{engine}:{imp.line} imports {imp.module}"
        for engine, others in engines.items()
        for imp in imports_of(sources[engine], root)
        if _within(imp.module, others)
    ]


# -- the rules, on bxthre3 -------------------------------------------------------------------------------


def test_every_rule_names_modules_that_exist() -> None:
    """A renamed module must not silently leave its rule."""
    names = set(_sources(PACKAGE_DIR))
    for pattern in (*PURE, *HOST, *PURE_ALLOWED, "bxthre3.wasm.wasm3", "bxthre3.wasm.wasmtime"):
        assert any(fnmatchcase(n, pattern) for n in names), pattern


def test_pure_modules_import_no_io_threads_clocks_or_engines() -> None:
    assert pure_violations(PACKAGE_DIR, PURE, IMPURE, PURE_ALLOWED) == []


def test_the_host_never_imports_an_engine_the_scheduler_sqlite_ssl_or_textual() -> None:
    assert host_violations(PACKAGE_DIR, HOST, HOST_FORBIDDEN) == []


def test_an_engine_never_imports_the_other() -> None:
    rules = {
        "bxthre3.wasm.wasmtime": ("bxthre3.wasm.wasm3", "wasm3"),
        "bxthre3.wasm.wasm3": ("bxthre3.wasm.wasmtime", "wasmtime"),
    }
    assert engine_violations(PACKAGE_DIR, rules) == []


def test_every_module_lives_in_a_package() -> None:
    flat = {module_name(p, PACKAGE_DIR) for p in PACKAGE_DIR.glob("*.py")} - TOP_LEVEL
    assert flat == set(), "put new modules in the package of the process they run in (docs/ARCHITECTURE.md)"


def test_the_tree_in_architecture_md_names_every_module() -> None:
    """docs/ARCHITECTURE.md opens with the tree; a module added to a package must appear on its line."""
    doc = (PACKAGE_DIR.parent / "docs" / "ARCHITECTURE.md").read_text()
    tree = doc.split("## The tree", 1)[1].split("```")[1]
    lines: dict[str, set[str]] = {}
    current = ""
    for line in tree.splitlines():
        if line.startswith(("├── ", "└── ")) and "/" in line.split()[1]:
            current = line.split()[1].rstrip("/")
        elif not line.startswith("│ "):
            current = ""
        if current:
            lines.setdefault(current, set()).update(re.findall(r"\w+", line))
    for package in sorted(p for p in PACKAGE_DIR.iterdir() if (p / "__init__.py").exists()):
        assert package.name in lines, f"the tree has no line for {package.name}/"
        missing = {m.stem for m in package.glob("*.py")} - {"__init__"} - lines[package.name]
        assert not missing, f"{package.name}/: {sorted(missing)} missing from the tree in docs/ARCHITECTURE.md"


# -- the checker finds what it must (on a small tree of its own) ---------------------------------------


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """pkg/{core, wire/__init__, wire/codec, host/loop, eng/a, eng/b}: all within the rules."""
    root = tmp_path / "pkg"
    files = {
        "__init__.py": "",
        "core.py": "from .wire import codec\nimport math\n",
        "wire/__init__.py": '"""docstring only"""\n',
        "wire/codec.py": "from __future__ import annotations\nimport struct\n",
        "host/__init__.py": "",
        "host/loop.py": "import zmq\nfrom ..wire.codec import x\n\ndef later():\n    from .. import core\n",
        "eng/__init__.py": "",
        "eng/a.py": "import wasm3\n",
        "eng/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import a\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def _pure(root: Path) -> list[str]:
    return pure_violations(root, ("pkg.core", "pkg.wire.codec"), IMPURE, {})


def _host(root: Path) -> list[str]:
    return host_violations(root, ("pkg.host.*",), ("pkg.eng.a", "wasm3", "sqlite3"))


def test_the_checker_passes_a_tree_within_the_rules(tree: Path) -> None:
    assert _pure(tree) == []
    assert _host(tree) == []
    assert engine_violations(tree, {"pkg.eng.b": ("pkg.eng.a",)}) == []  # under TYPE_CHECKING: loads nothing


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("import time\n", "pkg.core:3 imports time"),
        ("def f():\n    import socket.socketpair\n", "pkg.core:4 imports socket.socketpair"),
        ("def f():\n    from os import path\n", "pkg.core:4 imports os"),
        ("from .host import loop\n", "pkg.core:3 imports pkg.host.loop, which is not pure"),
        ("def f():\n    return open('x')\n", "pkg.core:4 calls open()"),
    ],
)
def test_a_pure_module_importing_io_is_caught(tree: Path, line: str, expected: str) -> None:
    core = tree / "core.py"
    core.write_text(core.read_text() + line)
    assert expected in _pure(tree)


def test_the_host_importing_an_engine_lazily_is_caught(tree: Path) -> None:
    loop = tree / "host" / "loop.py"
    loop.write_text(loop.read_text() + "\ndef run():\n    from ..eng import a\n")
    assert _host(tree) == ["pkg.host.loop:8 imports pkg.eng.a"]


def test_the_host_loading_sqlite_through_another_module_is_caught(tree: Path) -> None:
    codec = tree / "wire" / "codec.py"
    codec.write_text(codec.read_text() + "import sqlite3\n")
    assert _host(tree) == ["pkg.host.loop loads sqlite3 (imported by pkg.wire.codec)"]
    # a lazy import in a module the host loads does not load it at start: only the direct rule sees it
    codec.write_text("def f():\n    import sqlite3\n")
    assert _host(tree) == []


def test_an_engine_importing_the_other_is_caught(tree: Path) -> None:
    (tree / "eng" / "b.py").write_text("def run():\n    from .a import Result\n")
    assert engine_violations(tree, {"pkg.eng.b": ("pkg.eng.a",)}) == ["pkg.eng.b:2 imports pkg.eng.a"]


def test_imports_resolve_relative_names_and_modules_named_in_from(tree: Path) -> None:
    found = imports_of(tree / "host" / "loop.py", tree)
    assert [(i.module, i.eager) for i in found] == [
        ("zmq", True),
        ("pkg.wire.codec", True),
        ("pkg", False),
        ("pkg.core", False),
    ]
