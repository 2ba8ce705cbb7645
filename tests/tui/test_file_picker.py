"""PathSuggester on a real temporary directory, and FilePickerScreen driven by Pilot."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest
from textual.app import App, ComposeResult
from textual.widgets import DirectoryTree, Label

from bxthre3.tui import file_picker
from bxthre3.tui.file_picker import FilePickerScreen, PathSuggester


def suggest(root: Path, value: str) -> str | None:
    return asyncio.run(PathSuggester(root).get_suggestion(value))


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """dags/{hello.yaml,hello_fanout.yml}  data.csv  notes.txt  .secret.yaml  .hidden/x.yaml  run.yaml  run.txt"""
    (tmp_path / "dags").mkdir()
    (tmp_path / "dags" / "hello.yaml").write_text("name: hello\n")
    (tmp_path / "dags" / "hello_fanout.yml").write_text("name: fanout\n")
    (tmp_path / "data.csv").write_text("")
    (tmp_path / "notes.txt").write_text("")
    (tmp_path / ".secret.yaml").write_text("")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "x.yaml").write_text("")
    (tmp_path / "run.yaml").write_text("")
    (tmp_path / "run.txt").write_text("")
    return tmp_path


# --- PathSuggester --------------------------------------------------------------------------------


def test_unique_file_is_completed(tree: Path) -> None:
    assert suggest(tree, "no") == "notes.txt"  # a non-YAML file still completes when nothing better matches
    assert suggest(tree, "dags/hello_") == "dags/hello_fanout.yml"


def test_directory_gets_a_trailing_slash(tree: Path) -> None:
    assert suggest(tree, "da") == "dags/"  # "data.csv" also matches but directories rank first
    assert suggest(tree, "dag") == "dags/"


def test_two_matches_complete_to_their_common_prefix(tree: Path) -> None:
    assert suggest(tree, "dags/h") == "dags/hello"
    assert suggest(tree, "dags/hello") is None  # nothing longer is common to both


def test_no_match_or_missing_directory_gives_none(tree: Path) -> None:
    assert suggest(tree, "zzz") is None
    assert suggest(tree, "nowhere/a") is None
    assert suggest(tree, "notes.txt/a") is None  # a file is not a directory
    assert suggest(tree, "") is None


def test_hidden_entries_only_when_a_dot_is_typed(tree: Path) -> None:
    assert suggest(tree, "s") is None  # ".secret.yaml" does not start with "s"
    assert suggest(tree, ".s") == ".secret.yaml"
    assert suggest(tree, ".h") == ".hidden/"
    assert suggest(tree, ".hidden/") == ".hidden/x.yaml"


def test_yaml_ranks_ahead_of_other_files(tree: Path) -> None:
    # "run.yaml" and "run.txt" both match: other files are dropped when a YAML file or directory
    # matches, so the YAML file is the unique completion instead of the common prefix "run.".
    assert suggest(tree, "r") == "run.yaml"
    assert suggest(tree, "run.t") == "run.txt"  # still completable when it is the only match


def test_absolute_and_home_paths(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = Path("/")  # the root is ignored for an absolute path
    assert suggest(elsewhere, f"{tree}/dags/hello.") == f"{tree}/dags/hello.yaml"
    monkeypatch.setenv("HOME", str(tree))
    assert suggest(elsewhere, "~/dags/hello_f") == "~/dags/hello_fanout.yml"  # the typed "~" is kept


def test_case_sensitive(tree: Path) -> None:
    assert suggest(tree, "DA") is None


def test_permission_denied_gives_none(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root ignores directory permissions")
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "dag.yaml").write_text("")
    locked.chmod(0)
    try:
        assert suggest(tmp_path, "locked/d") is None
    finally:
        locked.chmod(0o755)


def test_the_scan_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Ten files share the prefix "f", so a full scan finds no completion longer than "f"; with the
    # bound lowered to one entry only one file is seen, and it becomes the unique completion.
    for i in range(10):
        (tmp_path / f"f{i}.yaml").touch()
    assert suggest(tmp_path, "f") is None
    monkeypatch.setattr(file_picker, "MAX_ENTRIES", 1)
    assert suggest(tmp_path, "f") in {f"f{i}.yaml" for i in range(10)}


# --- FilePickerScreen -----------------------------------------------------------------------------


class PickerApp(App[None]):
    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root
        self.results: list[Path | None] = []

    def compose(self) -> ComposeResult:
        yield Label("underneath")

    def on_mount(self) -> None:
        self.push_screen(FilePickerScreen(self.root), self.results.append)


async def wait_for_tree(pilot, app: PickerApp) -> DirectoryTree:
    tree = app.screen.query_one("#file-tree", DirectoryTree)
    deadline = time.monotonic() + 2
    while not tree.root.children:
        assert time.monotonic() < deadline, "the tree never loaded"
        await pilot.pause(0.02)
    return tree


def labels(tree: DirectoryTree) -> list[str]:
    return [str(node.label) for node in tree.root.children]


def test_tree_shows_directories_and_yaml_only(tree: Path) -> None:
    async def run() -> None:
        app = PickerApp(tree)
        async with app.run_test(size=(80, 24)) as pilot:
            picker_tree = await wait_for_tree(pilot, app)
            assert labels(picker_tree) == ["dags", "run.yaml"]  # no .txt, .csv, hidden dir or hidden file
            assert app.screen.query_one("#file-picker").border_title == "Pick a DAG file"

    asyncio.run(run())


def test_enter_on_a_yaml_file_dismisses_with_its_path(tree: Path) -> None:
    async def run() -> None:
        app = PickerApp(tree)
        async with app.run_test(size=(80, 24)) as pilot:
            picker_tree = await wait_for_tree(pilot, app)
            await pilot.press("down", "enter")  # root → dags, open it
            deadline = time.monotonic() + 2
            while not picker_tree.root.children[0].children:
                assert time.monotonic() < deadline, "dags/ never loaded"
                await pilot.pause(0.02)
            assert [str(n.label) for n in picker_tree.root.children[0].children] == ["hello.yaml", "hello_fanout.yml"]
            await pilot.press("down", "enter")
            await pilot.pause()
            assert app.results == [(tree / "dags" / "hello.yaml").resolve()]
            assert not isinstance(app.screen, FilePickerScreen)

    asyncio.run(run())


def test_escape_dismisses_with_none(tree: Path) -> None:
    async def run() -> None:
        app = PickerApp(tree)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for_tree(pilot, app)
            await pilot.press("escape")
            await pilot.pause()
            assert app.results == [None]
            assert not isinstance(app.screen, FilePickerScreen)

    asyncio.run(run())


def test_backspace_goes_to_the_parent_directory(tree: Path) -> None:
    async def run() -> None:
        app = PickerApp(tree / "dags")
        async with app.run_test(size=(80, 24)) as pilot:
            picker_tree = await wait_for_tree(pilot, app)
            assert labels(picker_tree) == ["hello.yaml", "hello_fanout.yml"]
            await pilot.press("backspace")
            await pilot.pause()
            assert Path(picker_tree.path) == tree.resolve()
            picker_tree = await wait_for_tree(pilot, app)
            assert labels(picker_tree) == ["dags", "run.yaml"]
            assert str(app.screen.query_one("#file-picker-dir", Label).render()) == str(tree.resolve())

    asyncio.run(run())
