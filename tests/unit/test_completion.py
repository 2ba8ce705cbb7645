"""`bxthre3 completion`: the generated bash script really completes (bash runs it); zsh and fish parse theirs."""

from __future__ import annotations

import argparse
import shutil
import subprocess
from pathlib import Path

import pytest

from bxthre3.cli import build_parser
from bxthre3.commands.completion import script


@pytest.fixture(scope="module")
def bash_script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("completion") / "bxthre3.bash"
    path.write_text(script(build_parser(), "bash"))
    return path


def complete(bash_script: Path, line: str, cwd: Path | None = None) -> list[str]:
    """What bash offers for the last word of ``line`` (split as bash would; `=` is a word of its own)."""
    words = line.replace("=", " = ").split(" ")
    program = (
        f"source {bash_script}\n"
        f"COMP_WORDS=({' '.join(_quote(w) for w in words)})\n"
        f"COMP_CWORD={len(words) - 1}\n"
        "_bxthre3\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    bash = shutil.which("bash") or "/bin/bash"
    done = subprocess.run([bash, "--norc", "--noprofile", "-c", program], capture_output=True, text=True,
                          timeout=10, cwd=cwd)  # fmt: skip
    assert done.returncode == 0 and not done.stderr, done.stderr
    return sorted(w for w in done.stdout.split("\n") if w)


def _quote(word: str) -> str:
    return "'" + word.replace("'", "'\\''") + "'"


def test_bash_completes_subcommands_flags_and_choices(bash_script: Path) -> None:
    top = complete(bash_script, "bxthre3 ")
    assert {"controller", "node-manager", "run", "submit", "completion", "dag"} <= set(top)
    assert complete(bash_script, "bxthre3 ru") == ["run"]
    assert complete(bash_script, "bxthre3 node-manager --ram") == ["--ram-per-node"]
    assert complete(bash_script, "bxthre3 run --engine ") == ["auto", "wasm3", "wasmtime"]
    assert complete(bash_script, "bxthre3 host --engine=wasm") == ["wasm3", "wasmtime"]
    assert complete(bash_script, "bxthre3 completion ") == ["bash", "fish", "zsh"]
    assert complete(bash_script, "bxthre3 dag m") == ["mandelbrot", "matmul"]
    assert "--max-iter" in complete(bash_script, "bxthre3 dag mandelbrot --")
    assert complete(bash_script, "bxthre3 --v") == ["--version"]


def test_bash_completes_dag_files_and_paths(bash_script: Path, tmp_path: Path) -> None:
    for name in ("fanout.yaml", "other.yml", "notes.txt"):
        (tmp_path / name).write_text("x")
    (tmp_path / "dags").mkdir()
    assert complete(bash_script, "bxthre3 run ", tmp_path) == ["dags", "fanout.yaml", "other.yml"]
    # a flag's value is skipped: the DAG is still the next word
    assert complete(bash_script, "bxthre3 run --hosts 3 --json f", tmp_path) == ["fanout.yaml"]
    assert complete(bash_script, "bxthre3 run fanout.yaml ", tmp_path) == [], "run takes one DAG"
    assert complete(bash_script, "bxthre3 dag mandelbrot -o no", tmp_path) == ["notes.txt"]
    assert complete(bash_script, "bxthre3 run --log-dir ", tmp_path) == ["dags"]
    assert complete(bash_script, "bxthre3 submit --controller ", tmp_path) == [], "an address: nothing to guess"


def test_script_follows_the_parser_it_is_given() -> None:
    parser = argparse.ArgumentParser(prog="bxthre3")
    sub = parser.add_subparsers()
    sub.add_parser("brand-new").add_argument("--colour", choices=["red", "blue"])
    text = script(parser, "bash")
    assert "'brand-new|--colour') echo 'red blue'" in text
    assert "controller" not in text


@pytest.mark.parametrize("shell,check", [("zsh", ["zsh", "-n"]), ("fish", ["fish", "--no-execute"])])
def test_zsh_and_fish_scripts_parse(shell: str, check: list[str], tmp_path: Path) -> None:
    if shutil.which(check[0]) is None:
        pytest.skip(f"{check[0]} is not installed")
    path = tmp_path / f"bxthre3.{shell}"
    path.write_text(script(build_parser(), shell))
    done = subprocess.run([*check, str(path)], capture_output=True, text=True, timeout=10)
    assert done.returncode == 0 and not done.stderr, done.stderr


def test_zsh_walks_the_words_like_bash(tmp_path: Path) -> None:
    """zsh offers candidates its own way (compadd, _files); the tables and the walker it shares with bash
    must still give the same answers under zsh's rules."""
    if shutil.which("zsh") is None:
        pytest.skip("zsh is not installed")
    path = tmp_path / "_bxthre3"
    path.write_text(script(build_parser(), "zsh"))
    program = (
        f"compdef() {{ :; }}; source {path}\n"  # compdef exists only after compinit: not needed here
        "_bxthre3_walk run --engine; _bxthre3_kind ''\n"
        "_bxthre3_walk dag; _bxthre3_kind m\n"
        "_bxthre3_walk run --hosts 3; _bxthre3_kind ''\n"
        "_bxthre3_walk run x.yaml; _bxthre3_kind ''; echo end\n"
    )
    done = subprocess.run(["zsh", "-f", "-c", program], capture_output=True, text=True, timeout=10)
    assert done.stdout.splitlines() == ["auto wasm3 wasmtime", "mandelbrot matmul pwhash", "@dag", "end"], done.stderr


def test_fish_completes_with_its_script(tmp_path: Path) -> None:
    if shutil.which("fish") is None:
        pytest.skip("fish is not installed")
    path = tmp_path / "bxthre3.fish"
    path.write_text(script(build_parser(), "fish"))

    def words(line: str) -> list[str]:
        done = subprocess.run(["fish", "--no-config", "-c", f"source {path}; complete -C'{line}'"],
                              capture_output=True, text=True, timeout=10)  # fmt: skip
        assert done.returncode == 0, done.stderr
        return [w.split("\t")[0] for w in done.stdout.splitlines()]

    assert words("bxthre3 run --engine ") == ["auto", "wasm3", "wasmtime"]
    assert words("bxthre3 dag m") == ["mandelbrot", "matmul"]
    assert words("bxthre3 completion ") == ["bash", "fish", "zsh"]
