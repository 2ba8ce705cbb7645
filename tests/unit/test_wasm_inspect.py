"""The pure-Python WebAssembly reader: what it lists, what it refuses, and that hostile
bytes only ever give a ModuleError."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from bxthre3.common.errors import ModuleError
from bxthre3.common.limits import MAX_MODULE_BYTES
from bxthre3.wasm.inspect import (
    Export,
    ExternKind,
    Import,
    MemoryLimits,
    check_wasi_command,
    inspect_module,
)
from bxthre3.wasm.normalize import uleb

MODULES = Path(__file__).resolve().parents[1] / "data" / "dags" / "modules"
HEADER = b"\x00asm\x01\x00\x00\x00"


# -- a tiny assembler for hand-made modules ------------------------------------------


def name(s: str) -> bytes:
    raw = s.encode()
    return uleb(len(raw)) + raw


def vec(items: list[bytes]) -> bytes:
    return uleb(len(items)) + b"".join(items)


def section(section_id: int, payload: bytes) -> bytes:
    return bytes([section_id]) + uleb(len(payload)) + payload


def func_import(module: str, field: str, type_index: int = 0) -> bytes:
    return name(module) + name(field) + b"\x00" + uleb(type_index)


def func_export(field: str, index: int = 0) -> bytes:
    return name(field) + b"\x00" + uleb(index)


def module(*sections: bytes) -> bytes:
    return HEADER + b"".join(sections)


TYPE_VOID = section(1, vec([b"\x60\x00\x00"]))  # one type: () -> ()


def wasi_command(*imports: tuple[str, str]) -> bytes:
    """A module importing `imports` (all functions) and exporting `_start`."""
    return module(
        TYPE_VOID,
        section(2, vec([func_import(m, f) for m, f in imports])),
        section(3, vec([uleb(0)])),
        section(5, vec([b"\x01" + uleb(2) + uleb(16)])),
        section(7, vec([func_export("_start", len(imports))])),
        section(10, vec([uleb(2) + b"\x00\x0b"])),
    )


# -- what it reads -------------------------------------------------------------------


def test_reads_the_fixture_command() -> None:
    data = (MODULES / "ok.wasm").read_bytes()
    info = check_wasi_command(data, name="ok.wasm")
    assert info.size == len(data)
    assert Import("wasi_snapshot_preview1", "fd_write", ExternKind.FUNCTION) in info.imports
    assert Export("_start", ExternKind.FUNCTION) in info.exports
    assert info.memory is not None and info.memory.min_pages >= 1 and not info.memory.imported


def test_reads_imports_exports_and_memory_limits() -> None:
    info = inspect_module(wasi_command(("wasi_snapshot_preview1", "proc_exit")), name="m")
    assert info.imports == (Import("wasi_snapshot_preview1", "proc_exit", ExternKind.FUNCTION),)
    assert info.exports == (Export("_start", ExternKind.FUNCTION),)
    assert info.memory == MemoryLimits(2, 16, imported=False)
    assert info.export_kind("_start") is ExternKind.FUNCTION
    assert info.export_kind("nope") is None


def test_reads_an_imported_memory() -> None:
    imported = name("env") + name("memory") + b"\x02" + b"\x00" + uleb(3)
    info = inspect_module(module(section(2, vec([imported]))), name="m")
    assert info.memory == MemoryLimits(3, None, imported=True)
    assert info.imports[0].kind is ExternKind.MEMORY


def test_skips_custom_and_unknown_content_sections() -> None:
    custom = section(0, name("producers") + b"anything at all")
    info = inspect_module(module(custom, TYPE_VOID, custom), name="m")
    assert info.imports == () and info.exports == () and info.memory is None


def test_empty_module_is_readable_but_not_a_command() -> None:
    assert inspect_module(HEADER, name="m").exports == ()
    with pytest.raises(ModuleError, match="no '_start' function export"):
        check_wasi_command(HEADER, name="m")


# -- what it refuses -----------------------------------------------------------------


def test_not_wasm_says_what_the_file_starts_with() -> None:
    data = (MODULES / "not_wasm.wasm").read_bytes()
    with pytest.raises(ModuleError) as err:
        inspect_module(data, name="not_wasm.wasm")
    assert "not a WebAssembly module (starts with 'This is '" in str(err.value)
    assert str(err.value).startswith("not_wasm.wasm: ")


def test_binary_garbage_is_shown_in_hex() -> None:
    with pytest.raises(ModuleError, match=r"starts with 7f 45 4c 46"):
        inspect_module(b"\x7fELF\x02\x01\x01\x00rest", name="a.out")


def test_empty_file() -> None:
    with pytest.raises(ModuleError, match="empty file"):
        inspect_module(b"", name="m")


def test_unsupported_version() -> None:
    with pytest.raises(ModuleError, match="unsupported WebAssembly version 2 "):
        inspect_module(b"\x00asm\x02\x00\x00\x00", name="m")


def test_component_model_binary_is_named_as_such() -> None:
    with pytest.raises(ModuleError, match="unsupported WebAssembly version: this is a component"):
        inspect_module(b"\x00asm\x0d\x00\x01\x00", name="component.wasm")


def test_missing_version() -> None:
    with pytest.raises(ModuleError, match="truncated"):
        inspect_module(b"\x00asm\x01", name="m")


def test_section_past_end() -> None:
    with pytest.raises(ModuleError, match="runs past the end"):
        inspect_module(HEADER + b"\x01\x10\x00", name="m")


def test_leb128_overrun() -> None:
    with pytest.raises(ModuleError, match="LEB128"):
        inspect_module(HEADER + b"\x01" + b"\xff" * 6, name="m")


def test_leb128_too_large_for_u32() -> None:
    with pytest.raises(ModuleError, match="too large"):
        inspect_module(HEADER + b"\x01\xff\xff\xff\xff\x7f", name="m")


def test_vector_count_larger_than_section() -> None:
    with pytest.raises(ModuleError, match="does not fit"):
        inspect_module(module(section(2, uleb(1_000_000))), name="m")


def test_sections_out_of_order() -> None:
    with pytest.raises(ModuleError, match="out of order"):
        inspect_module(module(section(7, vec([])), section(2, vec([]))), name="m")


def test_stray_bytes_in_a_section() -> None:
    with pytest.raises(ModuleError, match="stray bytes"):
        inspect_module(module(section(7, vec([]) + b"\x00")), name="m")


def test_bad_utf8_name() -> None:
    bad = b"\x02\xff\xfe" + name("x") + b"\x00\x00"
    with pytest.raises(ModuleError, match="UTF-8"):
        inspect_module(module(section(2, vec([bad]))), name="m")


def test_over_the_size_limit() -> None:
    with pytest.raises(ModuleError, match="over the limit"):
        inspect_module(HEADER + bytes(MAX_MODULE_BYTES), name="huge.wasm")


def test_not_bytes() -> None:
    with pytest.raises(ModuleError, match="not bytes"):
        inspect_module("text", name="m")  # type: ignore[arg-type]


# -- the WASI command check ------------------------------------------------------------


def test_fixture_with_a_non_wasi_import_is_refused_naming_it() -> None:
    data = (MODULES / "bad_imports.wasm").read_bytes()
    with pytest.raises(ModuleError) as err:
        check_wasi_command(data, name="bad_imports.wasm")
    assert "unsupported imports: env.evil;" in str(err.value)


def test_every_offending_import_is_named() -> None:
    data = wasi_command(
        ("wasi_snapshot_preview1", "fd_write"),
        ("env", "evil"),
        ("wasi_snapshot_preview1", "sock_open"),
        ("wasi_unstable", "fd_read"),
    )
    with pytest.raises(ModuleError) as err:
        check_wasi_command(data, name="m")
    message = str(err.value)
    for offender in ("env.evil", "wasi_snapshot_preview1.sock_open", "wasi_unstable.fd_read"):
        assert offender in message
    assert "wasi_snapshot_preview1.fd_write" not in message
    assert "\n" not in message


PREVIEW1_FUNCTIONS = """
    args_get args_sizes_get environ_get environ_sizes_get clock_res_get clock_time_get fd_advise fd_allocate
    fd_close fd_datasync fd_fdstat_get fd_fdstat_set_flags fd_fdstat_set_rights fd_filestat_get
    fd_filestat_set_size fd_filestat_set_times fd_pread fd_prestat_get fd_prestat_dir_name fd_pwrite fd_read
    fd_readdir fd_renumber fd_seek fd_sync fd_tell fd_write path_create_directory path_filestat_get
    path_filestat_set_times path_link path_open path_readlink path_remove_directory path_rename path_symlink
    path_unlink_file poll_oneoff proc_exit proc_raise sched_yield random_get sock_accept sock_recv sock_send
    sock_shutdown
""".split()
"""wasi_snapshot_preview1 as its witx defines it (46 functions; sock_accept came last)."""


def test_every_preview1_function_is_accepted_at_submission() -> None:
    assert len(PREVIEW1_FUNCTIONS) == 46
    data = wasi_command(*(("wasi_snapshot_preview1", name) for name in PREVIEW1_FUNCTIONS))
    info = check_wasi_command(data, name="m")
    assert sorted(imp.name for imp in info.imports) == sorted(PREVIEW1_FUNCTIONS)


def test_non_function_wasi_import_is_refused() -> None:
    imported = name("wasi_snapshot_preview1") + name("fd_write") + b"\x02\x00\x01"
    with pytest.raises(ModuleError, match=r"wasi_snapshot_preview1\.fd_write \(memory\)"):
        check_wasi_command(module(section(2, vec([imported]))), name="m")


def test_reactor_fixture_has_no_start() -> None:
    data = (MODULES / "no_start.wasm").read_bytes()
    with pytest.raises(ModuleError, match="no '_start' export: this is a WASI reactor"):
        check_wasi_command(data, name="no_start.wasm")


def test_start_exported_as_a_memory_is_refused() -> None:
    data = module(section(5, vec([b"\x00\x01"])), section(7, vec([name("_start") + b"\x02\x00"])))
    with pytest.raises(ModuleError, match="as a memory, not a function"):
        check_wasi_command(data, name="m")


def test_valid_hand_made_command_passes() -> None:
    check_wasi_command(wasi_command(("wasi_snapshot_preview1", "fd_write")), name="m")


# -- hostile bytes -------------------------------------------------------------------


def _only_module_error(data: bytes) -> None:
    try:
        check_wasi_command(data, name="fuzz")
    except ModuleError:
        pass


def test_random_bytes_only_raise_module_error() -> None:
    rng = random.Random(1234)
    for _ in range(2000):
        size = rng.randrange(0, 64)
        body = bytes(rng.randrange(256) for _ in range(size))
        _only_module_error(body)
        _only_module_error(HEADER + body)


def test_truncations_of_a_real_module_only_raise_module_error() -> None:
    data = (MODULES / "ok.wasm").read_bytes()
    rng = random.Random(99)
    cuts = set(range(0, 200)) | {rng.randrange(len(data)) for _ in range(300)}
    for cut in sorted(cuts):
        with pytest.raises(ModuleError):
            check_wasi_command(data[:cut], name="cut")


def test_mutations_of_a_real_module_only_raise_module_error() -> None:
    data = (MODULES / "ok.wasm").read_bytes()
    hand_made = wasi_command(("wasi_snapshot_preview1", "fd_write"), ("env", "x"))
    rng = random.Random(7)
    for _ in range(1500):
        source = bytearray(rng.choice((data, hand_made)))
        # Mutate mostly the header and the import/export area, where the reader looks.
        hot = min(len(source), 400)
        for _ in range(rng.randrange(1, 6)):
            position = rng.randrange(hot)
            source[position] = rng.randrange(256)
        if rng.random() < 0.3:
            del source[rng.randrange(len(source)) :]
        _only_module_error(bytes(source))


def test_refused_imports_name_the_build_flag_that_avoids_them() -> None:
    memory = name("env") + name("memory") + b"\x02\x00\x01"
    spawn = func_import("wasi", "thread-spawn")
    undefined = func_import("env", "compute")
    with pytest.raises(ModuleError) as err:
        check_wasi_command(module(TYPE_VOID, section(2, vec([memory, spawn, undefined]))), name="m")
    message = str(err.value)
    assert "\n" not in message
    assert "env.memory: build without -Wl,--import-memory" in message
    assert (
        "wasi.thread-spawn: built for wasm32-wasi-threads; build for --target=wasm32-wasi without -pthread" in message
    )
    assert "env.compute: a function the linker left undefined (-Wl,--allow-undefined" in message
