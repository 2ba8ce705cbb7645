"""The wheel is the product: build the sdist and, from it, the wheel; install the wheel alone into a fresh
venv outside the checkout; run the bundled examples from an empty directory.

Run alone with ``pytest -m install``. Dependencies are installed from a wheelhouse built once per
(constraints.txt, Python, platform) under ``~/.cache/bxthre3/install-test`` (``$XDG_CACHE_HOME``
honoured), so a second run needs no network and no compiler; the first fetches through pip's own cache.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from bxthre3.common import paths
from tests.conftest import REPO
from tests.integration.test_workloads import mandel_pixels

pytestmark = [pytest.mark.install, pytest.mark.timeout(300)]

PIP_TIMEOUT_S = 240.0
RUN_TIMEOUT_S = 60.0


def _run(cmd: list[str], *, timeout: float = PIP_TIMEOUT_S, **kw: object) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, **kw)  # type: ignore[call-overload]
    assert proc.returncode == 0, f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc


def _pip(*args: str, python: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    target = ["--python", str(python)] if python else []
    return _run([sys.executable, "-m", "pip", *target, "--disable-pip-version-check", "-q", *args], env=env)


def _source_tree(dest: Path) -> Path:
    """The checkout's tracked and new (not ignored) files, symlinks kept: builds write build/ and
    *.egg-info into their source tree, and tests never write into the checkout."""
    try:
        listed = subprocess.run(
            ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            capture_output=True, timeout=30,
        )  # fmt: skip
    except FileNotFoundError:  # no git on this machine
        listed = subprocess.CompletedProcess([], 1, b"", b"")
    if listed.returncode != 0:  # an unpacked sdist, not a git checkout
        ignore = shutil.ignore_patterns(".git", ".venv*", "build", "*.egg-info", "__pycache__", "logs")
        shutil.copytree(REPO, dest, symlinks=True, ignore=ignore)
        return dest
    for name in filter(None, listed.stdout.decode().split("\0")):
        src, dst = REPO / name, dest / name
        if not src.is_symlink() and not src.exists():
            continue  # deleted in the work tree, not yet committed
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst, follow_symlinks=False)
    return dest


def _cache_atomically(final: Path, fill: Callable[[Path], object]) -> None:
    """Fill a private directory, then rename it into place: runs sharing the cache (several checkouts on
    one machine) never see a half-built one; the loser of a race drops its copy."""
    final.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    try:
        fill(scratch)
        os.rename(scratch, final)
    except OSError:
        if not final.exists():
            raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


BUILD_BACKEND = "setuptools>=70.1,<81"
"""What builds the sdist and wheel (70.1+ builds wheels without the `wheel` package), kept between runs:
pip's build isolation would install it afresh into a temporary environment for every build."""


def _build_env() -> dict[str, str]:
    """An environment whose PYTHONPATH holds :data:`BUILD_BACKEND`, installed once under the cache."""
    tag = hashlib.sha256(f"{BUILD_BACKEND} {sys.version_info[:2]}".encode()).hexdigest()[:16]
    backend = paths.cache_home() / "install-test" / f"backend-{tag}"
    if not backend.exists():
        _cache_atomically(backend, lambda d: _pip("install", "--target", str(d), BUILD_BACKEND))
    return {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "PYTHONPATH": str(backend)}


def _build_sdist(src: Path, out: Path) -> Path:
    code = f"from setuptools.build_meta import build_sdist; print(build_sdist({str(out)!r}))"
    name = _run([sys.executable, "-c", code], cwd=src, env=_build_env()).stdout.strip().splitlines()[-1]
    return out / name


def _requirements(wheel: Path, extra: str | None = None) -> list[str]:
    """The wheel's own dependencies (Requires-Dist without extras), or those of one of its extras, from its METADATA."""
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        lines = z.read(meta).decode().splitlines()
    wanted = []
    for line in lines:
        if not line.startswith("Requires-Dist:"):
            continue
        requirement, _, marker = line.split(":", 1)[1].strip().partition(";")
        if (extra is None and "extra ==" not in marker) or (extra is not None and f'extra == "{extra}"' in marker):
            wanted.append(requirement.strip() if extra is not None else line.split(":", 1)[1].strip())
    return sorted(wanted)


def _wheelhouse(wheel: Path, extra: str | None = None) -> Path:
    """Wheels of the dependencies (or of one extra's) at the pinned versions, built once per (pins,
    requirements, Python, machine) and kept between runs, so the fresh venv installs offline."""
    requirements = _requirements(wheel, extra)
    constraints = (REPO / "constraints.txt").read_bytes()
    ident = constraints + "\n".join(requirements).encode() + f"{sys.version_info[:2]}{platform.machine()}".encode()
    house = paths.cache_home() / "install-test" / f"wheels-{hashlib.sha256(ident).hexdigest()[:16]}"
    if not house.exists():
        pins = ("-c", str(REPO / "constraints.txt"))
        _cache_atomically(house, lambda d: _pip("wheel", "--use-pep517", "-w", str(d), *pins, *requirements))
    return house


def _names(archive: Path) -> set[str]:
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as z:
            return set(z.namelist())
    with tarfile.open(archive) as t:
        top = t.getnames()[0].split("/")[0]
        return {m.name[len(top) + 1 :] for m in t.getmembers() if m.isfile()}


def test_wheel_and_sdist_install_and_run_the_examples_from_anywhere(tmp_path: Path) -> None:
    src = _source_tree(tmp_path / "src")
    sdist = _build_sdist(src, tmp_path / "dist")
    held = _names(sdist)
    for name in (
        "LICENSE", "README.md", "constraints.txt", "bootstrap.sh", "pyproject.toml", "MANIFEST.in",
        "dags/hello_fanout.yaml", "dags/images/scene.pgm", "wasm_modules/init.wasm", "wasm_modules/src/init.c",
        "wasm_modules/build.sh", "docs/ARCHITECTURE.md", "termux/README.md", "termux/boot/start-bxthre3",
        "tests/conftest.py", "tests/unit/test_examples.py", "tests/data/modules/spin.wasm",
        "bxthre3/data/dags/hello_fanout.yaml", "bxthre3/data/wasm_modules/mandel_tile.wasm",  # real files, not links
    ):  # fmt: skip
        assert name in held, f"the sdist lacks {name}"

    # The wheel is built from the sdist, as pip does for a user without a wheel.
    _pip("wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(sdist), env=_build_env())
    (wheel,) = (tmp_path / "dist").glob("bxthre3-*.whl")
    held = _names(wheel)
    for name in ("bxthre3/data/dags/mandelbrot.yaml", "bxthre3/data/dags/images/palette.txt",
                 "bxthre3/data/wasm_modules/greet_1.wasm", "bxthre3/tui/app.tcss"):  # fmt: skip
        assert name in held, f"the wheel lacks {name}"
    assert any(n.endswith("LICENSE") and ".dist-info/" in n for n in held), "the wheel carries no LICENSE"
    assert not any(n.startswith(("tests/", "dags/")) for n in held)

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    _pip("install", "--no-compile", "--no-index", "--find-links", str(_wheelhouse(wheel)),
         "-c", str(REPO / "constraints.txt"), str(wheel), python=python)  # fmt: skip

    home, work = tmp_path / "home", tmp_path / "empty"
    home.mkdir()
    work.mkdir()
    env = {"PATH": f"{venv / 'bin'}{os.pathsep}/usr/bin{os.pathsep}/bin", "HOME": str(home), "LANG": "C.UTF-8"}

    def bxthre3(*args: str) -> subprocess.CompletedProcess[str]:
        return _run(["bxthre3", *args], timeout=RUN_TIMEOUT_S, cwd=work, env=env)

    where = _run([str(python), "-c", "import bxthre3; print(bxthre3.__file__)"], cwd=work, env=env).stdout
    assert where.startswith(str(venv)), f"imported from {where}, not from the installed wheel"
    listed = bxthre3("examples").stdout
    assert any(line.startswith("hello_fanout ") and "seed DAG" in line for line in listed.splitlines()), listed

    hello = bxthre3("run", "hello_fanout")
    assert "Hello, Bxthre3!" in hello.stdout and "Hola, Bxthre3!" in hello.stdout

    bxthre3(
        "dag", "mandelbrot", "--width", "40", "--height", "24", "--tiles", "2x2", "--max-iter", "64", "-o", "m.yaml"
    )
    bxthre3("run", "m.yaml", "--out", "img/")
    image = (work / "img" / "image.pgm").read_bytes()
    assert image == b"P5\n40 24\n255\n" + mandel_pixels(40, 24, 64)

    # The bundled DAG with its sizes as params, and the Python API with the bundled modules, from anywhere.
    bxthre3("run", "mandelbrot", "-p", "width=40", "-p", "height=24", "-p", "cols=2", "-p", "rows=2",
            "-p", "max_iter=64", "--out", "params/")  # fmt: skip
    assert (work / "params" / "image.pgm").read_bytes() == image
    script = (
        "from bxthre3 import Dag, LocalCluster\n"
        "dag = Dag('api')\n"
        "init = dag.task('init', 'init.wasm', args=['Wheel'])\n"
        "greet = dag.task('greet', 'greet_1.wasm', stdin=[init])\n"
        "with LocalCluster(hosts=1) as cluster:\n"
        "    run = cluster.client().submit(dag)\n"
        "    assert run.wait().ok\n"
        "    print(run.results()[greet].text, end='')\n"
    )
    api = _run([str(python), "-c", script], timeout=RUN_TIMEOUT_S, cwd=work, env=env)
    assert api.stdout == "Hello, Wheel!\n", api

    # --backend: without the extra, one line naming it; with it, the bundled DAG on a Dask LocalCluster.
    missing = subprocess.run(["bxthre3", "run", "hello_fanout", "--backend", "dask:local"], capture_output=True,
                             text=True, timeout=RUN_TIMEOUT_S, cwd=work, env=env)  # fmt: skip
    assert missing.returncode != 0 and missing.stderr.strip().count("\n") == 0, missing.stderr
    assert "pip install 'bxthre3[dask]'" in missing.stderr
    houses = ("--find-links", str(_wheelhouse(wheel)), "--find-links", str(_wheelhouse(wheel, "dask")))
    _pip("install", "--no-compile", "--no-index", *houses, "-c", str(REPO / "constraints.txt"), f"{wheel}[dask]",
         python=python)  # fmt: skip
    on_dask = bxthre3("run", "hello_fanout", "--backend", "dask:local")
    assert "Hello, Bxthre3!\nHola, Bxthre3!" in on_dask.stdout, on_dask
