"""`./bootstrap.sh test` on the oldest and newest supported Python: the real script and the real bash on a
pretend machine (see test_bootstrap.Machine), its interpreters stubs under a private $PYENV_ROOT; plus one
look, through the script's own function, for the interpreters this machine really has."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.integration.test_bootstrap import BOOTSTRAP, REPO, TEST_DEBS, Machine, actions, debian_with

VERSIONS = {"3.10": "3.10.13", "3.13": "3.13.0"}


@pytest.fixture
def machine(tmp_path: Path) -> Machine:
    """Everything of the main install in place (venv, stamp, link, test packages): only the Pythons vary."""
    m = Machine(tmp_path)
    m.installed()
    debian_with(m, set(TEST_DEBS))
    m.env["PYENV_ROOT"] = str(tmp_path / "pyenv")
    m.env["CI"] = "true"
    return m


def add_python(machine: Machine, short: str) -> Path:
    """An interpreter `pythonX.Y` under $PYENV_ROOT/versions/X.Y.Z that passes the script's version check."""
    path = Path(machine.env["PYENV_ROOT"]) / "versions" / VERSIONS[short] / "bin" / f"python{short}"
    path.parent.mkdir(parents=True)
    path.write_text('#!/bin/sh\n[ "$1" = -c ] && exit 0\necho "stub: $*" >&2\nexit 3\n')
    path.chmod(0o755)
    return path


def venv_of(machine: Machine, short: str) -> Path:
    return Path(f"{machine.venv}-py{short}")


def installed_venv(machine: Machine, short: str, python: Path) -> None:
    """A venv as a previous run left it (stamp of these pins and this interpreter); its python logs its
    arguments (and $PIP_USE_PEP517) and exits with $UNIT_RC for tests/unit, $INSTALL_RC for `-m install`,
    $PIP_RC for `pip install`."""
    venv = venv_of(machine, short)
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text(
        f'#!/bin/sh\necho "py{short} PIP_USE_PEP517=${{PIP_USE_PEP517:-}} $*" >> "$STUB_LOG"\n'
        'case "$*" in *"-m install"*) exit "${INSTALL_RC:-0}" ;; *tests/unit*) exit "${UNIT_RC:-0}" ;;\n'
        '  *"pip install"*) exit "${PIP_RC:-0}" ;; esac\n'
    )
    (venv / "bin" / "python").chmod(0o755)
    pins = (REPO / "pyproject.toml").read_bytes() + (REPO / "constraints.txt").read_bytes()
    stamp = subprocess.run(["cksum"], input=pins, capture_output=True, check=True).stdout.rstrip(b"\n")
    (venv / ".bxthre3-installed").write_bytes(stamp + f" newest=0 python={python}".encode())


def subset(venv: Path) -> list[str]:
    return [
        f"{venv}/bin/python -m pytest -q -p no:cacheprovider -m not one_python tests/unit",
        f"{venv}/bin/python -m pytest -q -p no:cacheprovider -m install tests",
    ]


def test_the_fast_subset_runs_first_on_the_oldest_and_newest_python(machine: Machine) -> None:
    py310, py313 = add_python(machine, "3.10"), add_python(machine, "3.13")
    machine.stub("python3.10", "exit 127")  # a pyenv shim of a version not selected: passed over
    proc = machine.run("test", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    done = actions(proc)
    expected: list[str] = []
    for short, py in (("3.10", py310), ("3.13", py313)):
        venv = venv_of(machine, short)
        expected += [
            f"{py} -m venv {venv}",
            f"{venv}/bin/python -m pip install --quiet --disable-pip-version-check --constraint {REPO}/constraints.txt "
            f"-e {REPO}[test]",
            f"{venv}/bin/python -m pip install --quiet --disable-pip-version-check --only-binary wasmtime "
            f"--constraint {REPO}/constraints.txt -e {REPO}[wasmtime]",
            f"record {venv}/.bxthre3-installed",
            *subset(venv),
        ]
    start = done.index(expected[0])
    assert done[start : start + len(expected)] == expected
    assert done[start + len(expected) :] == [
        f"{machine.venv}/bin/python -m ruff check bxthre3 tests benchmarks",
        f"{machine.venv}/bin/python -m ruff format --check bxthre3 tests benchmarks",
        f"env BXTHRE3_REQUIRE_TOOLCHAINS=1 {machine.venv}/bin/python -m pytest ",
    ], "then lint and the whole suite, as before"
    assert not venv_of(machine, "3.10").exists(), "--dry-run created nothing"


def test_installed_venvs_are_reused_and_an_empty_list_skips_the_step(machine: Machine) -> None:
    py310 = add_python(machine, "3.10")
    installed_venv(machine, "3.10", py310)
    proc = machine.run("test", "--dry-run", BXTHRE3_PYTHONS="3.10")
    assert proc.returncode == 0, proc.stderr
    assert [a for a in actions(proc) if "py3.10" in a] == subset(venv_of(machine, "3.10"))

    proc = machine.run("test", "--dry-run", BXTHRE3_PYTHONS="")
    assert proc.returncode == 0, proc.stderr
    assert not any("-py3." in a for a in actions(proc)) and "Python" not in proc.stderr


def test_a_missing_python_is_skipped_with_one_line_or_fails_when_required(machine: Machine) -> None:
    add_python(machine, "3.10")
    proc = machine.run("test", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "bootstrap: Python 3.13 not found: skipping its fast subset" in proc.stderr
    assert any("py3.10/bin/python -m pytest" in a for a in actions(proc))

    proc = machine.run("test", "--dry-run", BXTHRE3_REQUIRE_PYTHONS="1")
    assert proc.returncode == 1
    [error] = [line for line in proc.stderr.splitlines() if "error" in line]
    assert error.startswith("bootstrap: error: Python 3.13 not found (python3.13 on PATH or ")
    assert "Traceback" not in proc.stderr and not any("pytest" in a for a in actions(proc))

    proc = machine.run("test", "--dry-run", BXTHRE3_PYTHONS="3.10 three")
    assert proc.returncode == 1
    assert "bootstrap: error: BXTHRE3_PYTHONS: 'three' is not a Python version like 3.10" in proc.stderr


@pytest.mark.parametrize(
    ("unit_rc", "install_rc", "error"),
    [
        (0, 5, None),  # nothing marked install: not a failure
        (1, 0, "bootstrap: error: Python 3.10: tests/unit failed"),
        (0, 1, "bootstrap: error: Python 3.10: the tests marked install failed (exit 1)"),
    ],
)
def test_a_failing_subset_stops_the_run_before_the_whole_suite(
    machine: Machine, unit_rc: int, install_rc: int, error: str | None
) -> None:
    for short in VERSIONS:
        installed_venv(machine, short, add_python(machine, short))
    proc = machine.run("test", UNIT_RC=str(unit_rc), INSTALL_RC=str(install_rc))  # for real: the stubs run
    ran = (machine.root / "stub.log").read_text().splitlines()
    if error is None:
        assert proc.returncode == 0, proc.stderr
        assert [line.split()[0] for line in ran] == ["py3.10", "py3.10", "py3.13", "py3.13"]
        # 3.10's own pip builds pywasm3's wheel (the install test's `pip wheel`) only with PEP 517.
        assert all(line.split()[1] == "PIP_USE_PEP517=1" for line in ran)
    else:
        assert proc.returncode == 1 and proc.stderr.splitlines()[-1] == error
        assert all(line.startswith("py3.10") for line in ran), "3.13 and the whole suite never started"


def test_this_machines_interpreters_are_found_past_pyenv_shims() -> None:
    """The real lookup on this machine (CI's image has 3.10 and 3.13 under ~/.pyenv, and pyenv shims of
    versions not selected, which fail, on PATH). Skipped where an interpreter is missing."""
    for short in VERSIONS:
        proc = subprocess.run(
            ["bash", "-c", f'source "$1"; find_python {short}', "bash", str(BOOTSTRAP)],
            capture_output=True, text=True, timeout=30, env={**os.environ}, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        if proc.returncode != 0:
            pytest.skip(f"no Python {short} on this machine")
        found = proc.stdout.strip()
        version = subprocess.run([found, "--version"], capture_output=True, text=True, timeout=30).stdout
        assert version.startswith(f"Python {short}."), (found, version)


def test_a_failed_install_names_the_python_and_how_to_skip_the_step(machine: Machine) -> None:
    installed_venv(machine, "3.10", add_python(machine, "3.10"))
    (venv_of(machine, "3.10") / ".bxthre3-installed").write_text("pins of another day")
    proc = machine.run("test", BXTHRE3_PYTHONS="3.10", PIP_RC="1")
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[-1] == (
        f"bootstrap: error: Python 3.10: installing into {venv_of(machine, '3.10')} failed (pip said why above; "
        'BXTHRE3_PYTHONS="" skips this step)'
    )
    assert "pytest" not in (machine.root / "stub.log").read_text()
