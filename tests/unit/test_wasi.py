"""The WASI shim function by function, against a bytearray memory, and every import through both engines."""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator

import pytest

from bxthre3.common import limits
from bxthre3.common.failures import FailureReason
from bxthre3.wasm import abi, vfs, wasi
from bxthre3.wasm import choice as engines
from bxthre3.wasm.normalize import sleb, uleb
from tests.conftest import ENGINES

# -- the shim against a plain bytearray ------------------------------------------------------

MEMORY_BYTES = 64 * 1024
SCRATCH = 32 * 1024
"""Where tests put paths and buffers; below it, outputs the shim writes."""


class Memory:
    """A linear memory for the shim, with helpers to place arguments and read results."""

    def __init__(self, size: int = MEMORY_BYTES) -> None:
        self.memory = bytearray(size)
        self._next = SCRATCH

    def get_memory(self, index: int) -> memoryview:
        return memoryview(self.memory)

    def put(self, data: bytes) -> tuple[int, int]:
        """Copy `data` into scratch space: (pointer, length)."""
        pointer = self._next
        self.memory[pointer : pointer + len(data)] = data
        self._next += len(data) + 8
        return pointer, len(data)

    def iovec(self, *buffers: bytes | int) -> tuple[int, int]:
        """An iovec array over new buffers (bytes to write, or an int: that many bytes to read into)."""
        pairs = []
        for buffer in buffers:
            pointer, length = self.put(buffer if isinstance(buffer, bytes) else bytes(buffer))
            pairs.append((pointer, length))
        array, _ = self.put(b"".join(struct.pack("<II", p, n) for p, n in pairs))
        return array, len(pairs)

    def u32(self, pointer: int) -> int:
        return int(struct.unpack_from("<I", self.memory, pointer)[0])

    def u64(self, pointer: int) -> int:
        return int(struct.unpack_from("<Q", self.memory, pointer)[0])

    def read(self, pointer: int, length: int) -> bytes:
        return bytes(self.memory[pointer : pointer + length])


class Shim:
    """A shim bound to a Memory; attribute access calls a WASI function through the trampolines."""

    def __init__(self, **kwargs: object) -> None:
        options: dict[str, object] = {"args": ["p"], "env": {}, "stdin": b"stdin bytes"}
        options.update(kwargs)
        self.shim = wasi.WasiShim(**options)  # type: ignore[arg-type]
        self.mem = Memory()
        self.shim.bind(self.mem)
        self.fn = wasi.forwarders()

    def __getattr__(self, name: str) -> object:
        return self.fn[name]

    def path(self, text: str | bytes) -> tuple[int, int]:
        return self.mem.put(text.encode() if isinstance(text, str) else text)

    def open(
        self,
        path: str | bytes,
        *,
        dirfd: int = 4,
        oflags: int = 0,
        rights: int = wasi.FILE_RIGHTS_OUT,
        fdflags: int = 0,
    ) -> int:
        """path_open; the new fd, or minus the errno. Directories inherit all rights, as wasi-libc asks."""
        pointer, length = self.path(path)
        inheriting = wasi.FILE_RIGHTS_OUT | wasi.DIR_RIGHTS_OUT
        if oflags & wasi.O_DIRECTORY and rights == wasi.FILE_RIGHTS_OUT:
            rights = wasi.DIR_RIGHTS_OUT
        errno = self.fn["path_open"](dirfd, 1, pointer, length, oflags, rights, inheriting, fdflags, 0)
        return -errno if errno else self.mem.u32(0)

    def write(self, fd: int, data: bytes) -> int:
        iovs, count = self.mem.iovec(data)
        errno = self.fn["fd_write"](fd, iovs, count, 0)
        return -errno if errno else self.mem.u32(0)

    def read(self, fd: int, size: int) -> bytes | int:
        iovs, count = self.mem.iovec(size)
        errno = self.fn["fd_read"](fd, iovs, count, 0)
        if errno:
            return -errno
        pointer = self.mem.u32(iovs)
        return self.mem.read(pointer, self.mem.u32(0))

    def call(self, name: str, *args: object) -> int:
        """Call with path arguments given as strings (each becomes pointer, length)."""
        flat: list[int] = []
        for arg in args:
            if isinstance(arg, (str, bytes)):
                flat.extend(self.path(arg))
            else:
                assert isinstance(arg, int)
                flat.append(arg)
        return int(self.fn[name](*flat))

    def filestat(self, fd: int) -> tuple[int, ...]:
        assert self.fn["fd_filestat_get"](fd, 0) == 0
        return struct.unpack_from("<QQBxxxxxxxQQQQQ", self.mem.memory, 0)

    def path_stat(self, path: str, dirfd: int = 4) -> tuple[int, ...] | int:
        errno = self.call("path_filestat_get", dirfd, 0, path, 0)
        return -errno if errno else struct.unpack_from("<QQBxxxxxxxQQQQQ", self.mem.memory, 0)

    def fdstat(self, fd: int) -> tuple[int, int, int, int]:
        assert self.fn["fd_fdstat_get"](fd, 0) == 0
        return struct.unpack_from("<BxHxxxxQQ", self.mem.memory, 0)  # type: ignore[return-value]

    def seek(self, fd: int, offset: int, whence: int) -> int:
        errno = self.fn["fd_seek"](fd, offset, whence, 0)
        return -errno if errno else self.mem.u64(0)

    def listing(self, fd: int, buffer: int = 4096, cookie: int = 0) -> list[tuple[int, int, int, str]]:
        pointer, _ = self.mem.put(bytes(buffer))
        assert self.fn["fd_readdir"](fd, pointer, buffer, cookie, 0) == 0
        used = self.mem.u32(0)
        data = self.mem.read(pointer, used)
        entries = []
        while len(data) >= 24:
            next_cookie, ino, length, filetype = struct.unpack_from("<QQIBxxx", data)
            if len(data) < 24 + length:
                break
            entries.append((next_cookie, ino, filetype, data[24 : 24 + length].decode()))
            data = data[24 + length :]
        return entries

    @property
    def files(self) -> dict[str, bytes]:
        return self.shim.files


@pytest.fixture
def shim() -> Iterator[Shim]:
    shim = Shim(files={"a.txt": b"alpha", "sub/b.bin": b"\x00\x01\x02"}, max_stdout=1000)
    yield shim
    shim.shim.unbind()


CREATE = wasi.O_CREAT
RW = wasi.FILE_RIGHTS_OUT


# -- stdio ------------------------------------------------------------------------------------


def test_stdio_alone_builds_no_descriptor_table_or_filesystem() -> None:
    """The VFS costs nothing for tasks that do not touch files."""
    s = Shim()
    assert s.write(1, b"out") == 3
    assert s.write(2, b"err") == 3
    assert s.read(0, 5) == b"stdin"
    assert s.fdstat(1)[0] == wasi.FILETYPE_UNKNOWN
    assert s.fn["fd_prestat_get"](3, 0) == 0
    assert s.fn["fd_prestat_get"](5, 0) == wasi.EBADF
    assert s.seek(0, -4, 1) == -wasi.ESPIPE  # wasi-libc giving back buffered stdin at exit
    assert s.call("fd_tell", 1, 0) == wasi.ESPIPE
    assert s.shim._fds is None and s.shim._vfs is None
    assert (s.shim.stdout, s.shim.stderr, s.files) == (b"out", b"err", {})


def test_stdio_looks_like_pipes_so_libc_buffers_as_natively() -> None:
    s = Shim()
    for fd, right in ((0, wasi.RIGHT_FD_READ), (1, wasi.RIGHT_FD_WRITE), (2, wasi.RIGHT_FD_WRITE)):
        filetype, flags, rights, inheriting = s.fdstat(fd)
        assert filetype == wasi.FILETYPE_UNKNOWN  # not a character device: isatty() is false
        assert rights & right and not rights & (wasi.RIGHT_FD_SEEK | wasi.RIGHT_FD_TELL)
        assert (flags, inheriting) == (0, 0)
    assert s.seek(0, 0, 1) == -wasi.ESPIPE
    assert s.seek(1, 5, 0) == -wasi.ESPIPE
    assert s.call("fd_tell", 1, 0) == wasi.ESPIPE
    assert s.call("fd_pread", 0, *s.mem.iovec(4), 0, 0) == wasi.ESPIPE
    assert s.call("fd_pwrite", 1, *s.mem.iovec(b"x"), 0, 0) == wasi.ESPIPE
    assert s.call("fd_advise", 1, 0, 0, 0) == wasi.ESPIPE
    assert s.call("fd_allocate", 1, 0, 1) == wasi.ESPIPE
    assert s.call("fd_filestat_set_size", 1, 0) == wasi.EINVAL
    assert s.call("fd_sync", 1) == wasi.EINVAL
    assert s.call("fd_datasync", 1) == wasi.EINVAL
    assert s.write(0, b"x") == -wasi.EBADF
    assert s.read(1, 1) == -wasi.EBADF
    assert s.filestat(1)[2] == wasi.FILETYPE_UNKNOWN
    # After the table exists (any descriptor call), stdio behaves the same.
    assert s.fdstat(1)[0] == wasi.FILETYPE_UNKNOWN and s.shim._fds is not None
    assert s.write(1, b"ok") == 2 and s.read(0, 100) == b"stdin bytes"


def test_stdio_can_be_closed_and_renumbered() -> None:
    s = Shim()
    fd = s.open("log", oflags=CREATE)
    assert fd == 5
    assert s.call("fd_renumber", fd, 1) == 0  # dup2(fd, 1): stdout now goes to the file
    assert s.write(1, b"into the file") == 13
    assert s.call("fd_close", fd) == wasi.EBADF
    assert s.files == {"log": b"into the file"} and s.shim.stdout == b""
    assert s.call("fd_close", 0) == 0
    assert s.read(0, 1) == -wasi.EBADF
    assert s.open("next", oflags=CREATE) == 0  # the lowest free number, as POSIX
    assert s.call("fd_renumber", 9, 1) == wasi.EBADF
    assert s.call("fd_renumber", 1, 9) == wasi.EBADF
    assert s.call("fd_renumber", 1, 1) == 0


def test_stdout_and_out_files_share_the_output_budget() -> None:
    s = Shim(max_stdout=10)
    fd = s.open("f", oflags=CREATE)
    assert s.write(fd, b"123456") == 6
    assert s.write(1, b"1234") == 4
    with pytest.raises(wasi.OutputLimitExceeded, match="output exceeded 10 bytes"):
        s.write(fd, b"x")
    assert s.files == {"f": b"123456"}


def test_truncating_and_unlinking_give_bytes_back() -> None:
    s = Shim(max_stdout=10)
    fd = s.open("f", oflags=CREATE)
    assert s.write(fd, b"0123456789") == 10
    assert s.call("fd_filestat_set_size", fd, 4) == 0
    assert s.write(1, b"abcdef") == 6
    assert s.call("path_unlink_file", 4, "f") == 0
    with pytest.raises(wasi.OutputLimitExceeded):
        s.write(fd, b"x")  # unlinked but open: its 4 bytes still count
    assert s.call("fd_close", fd) == 0
    assert s.write(1, b"abcd") == 4
    with pytest.raises(wasi.OutputLimitExceeded):
        s.write(1, b"x")
    assert s.shim.stdout == b"abcdefabcd" and s.files == {}


def test_unlinked_file_bytes_stop_counting_when_closed() -> None:
    s = Shim(max_stdout=10)
    fd = s.open("f", oflags=CREATE)
    assert s.write(fd, b"0123456789") == 10
    assert s.call("path_unlink_file", 4, "f") == 0
    assert s.call("fd_close", fd) == 0
    assert s.write(1, b"0123456789") == 10
    assert s.files == {}


# -- preopens and paths -------------------------------------------------------------------------


def test_preopens_are_in_and_out(shim: Shim) -> None:
    for fd, name in ((3, b"/in"), (4, b"/out")):
        assert shim.call("fd_prestat_get", fd, 0) == 0
        assert struct.unpack_from("<BxxxI", shim.mem.memory, 0) == (0, len(name))
        pointer, _ = shim.mem.put(bytes(8))
        assert shim.call("fd_prestat_dir_name", fd, pointer, len(name)) == 0
        assert shim.mem.read(pointer, len(name)) == name
        assert shim.call("fd_prestat_dir_name", fd, pointer, len(name) - 1) == wasi.ENAMETOOLONG
        assert shim.fdstat(fd)[0] == wasi.FILETYPE_DIRECTORY
    assert shim.call("fd_prestat_get", 5, 0) == wasi.EBADF
    assert shim.call("fd_prestat_get", 1, 0) == wasi.EBADF
    # A preopen moved by fd_renumber is still one; a closed one is gone.
    fd = shim.open("f", oflags=CREATE)
    assert shim.call("fd_renumber", 4, fd) == 0
    assert shim.call("fd_prestat_get", fd, 0) == 0 and shim.call("fd_prestat_get", 4, 0) == wasi.EBADF
    assert shim.call("fd_close", 3) == 0
    assert shim.call("fd_prestat_get", 3, 0) == wasi.EBADF


def test_in_is_readable_with_implied_directories(shim: Shim) -> None:
    fd = shim.open("a.txt", dirfd=3, rights=wasi.RIGHT_FD_READ | wasi.RIGHT_FD_SEEK)
    assert shim.read(fd, 100) == b"alpha"
    assert shim.read(fd, 100) == b""
    sub = shim.open("sub", dirfd=3, oflags=wasi.O_DIRECTORY, rights=wasi.DIR_RIGHTS_IN)
    fd = shim.open("b.bin", dirfd=sub, rights=wasi.RIGHT_FD_READ)
    assert shim.read(fd, 100) == b"\x00\x01\x02"
    assert [e[3] for e in shim.listing(3)] == [".", "..", "a.txt", "sub"]
    stat = shim.path_stat("sub/b.bin", dirfd=3)
    assert isinstance(stat, tuple) and stat[2] == wasi.FILETYPE_REGULAR_FILE and stat[4] == 3
    assert stat[5:] == (0, 0, 0)  # input files are at the logical clock's zero


def test_in_is_read_only_by_its_rights(shim: Shim) -> None:
    _, _, rights, inheriting = shim.fdstat(3)
    assert not rights & (wasi.RIGHT_PATH_CREATE_FILE | wasi.RIGHT_PATH_UNLINK_FILE | wasi.RIGHT_PATH_RENAME_SOURCE)
    assert not inheriting & wasi.RIGHT_FD_WRITE
    assert shim.open("new", dirfd=3, oflags=CREATE, rights=wasi.RIGHT_FD_READ) == -wasi.ENOTCAPABLE
    assert shim.open("a.txt", dirfd=3, oflags=wasi.O_TRUNC, rights=wasi.RIGHT_FD_READ) == -wasi.ENOTCAPABLE
    assert shim.open("a.txt", dirfd=3, rights=wasi.RIGHT_FD_WRITE) == -wasi.ENOTCAPABLE
    assert shim.call("path_create_directory", 3, "d") == wasi.ENOTCAPABLE
    assert shim.call("path_unlink_file", 3, "a.txt") == wasi.ENOTCAPABLE
    assert shim.call("path_remove_directory", 3, "sub") == wasi.ENOTCAPABLE
    assert shim.call("path_rename", 3, "a.txt", 4, "a.txt") == wasi.ENOTCAPABLE
    assert shim.call("path_rename", 4, "x", 3, "x") == wasi.ENOTCAPABLE
    assert shim.call("path_filestat_set_times", 3, 0, "a.txt", 0, 0, 8) == wasi.ENOTCAPABLE
    assert shim.call("path_symlink", "a", 3, "l") == wasi.ENOTCAPABLE
    assert shim.call("path_link", 3, 0, "a.txt", 4, "l") == wasi.ENOTCAPABLE
    # As wasi-libc does: masked rights open read-only; writing is then EBADF.
    fd = shim.open("a.txt", dirfd=3, rights=RW & wasi.FILE_RIGHTS_IN)
    assert shim.write(fd, b"x") == -wasi.EBADF
    assert shim.call("fd_filestat_set_size", fd, 0) == wasi.ENOTCAPABLE
    assert shim.call("fd_allocate", fd, 0, 10) == wasi.ENOTCAPABLE
    assert shim.call("fd_filestat_set_times", fd, 0, 0, 8) == wasi.ENOTCAPABLE
    assert shim.read(fd, 10) == b"alpha"


@pytest.mark.parametrize(
    ("path", "errno"),
    [
        ("/etc/passwd", wasi.ENOTCAPABLE),
        ("..", wasi.ENOTCAPABLE),
        ("../in/a.txt", wasi.ENOTCAPABLE),
        ("d/../../x", wasi.ENOTCAPABLE),
        (b"a\0b", wasi.EINVAL),
        (b"\xff\xfe", vfs.EILSEQ),
        ("", vfs.ENOENT),
        ("missing/x", vfs.ENOENT),
        ("f/x", wasi.ENOTDIR),
        ("f/", wasi.ENOTDIR),
        ("n" * 256, wasi.ENAMETOOLONG),
        ("d/" * 600, wasi.ENAMETOOLONG),
    ],
)
def test_hostile_paths_cannot_escape(shim: Shim, path: str | bytes, errno: int) -> None:
    assert shim.call("path_create_directory", 4, "d") == 0
    assert shim.open("f", oflags=CREATE) > 0
    assert shim.open(path, oflags=CREATE) == -errno


def test_dot_and_dotdot_stay_inside(shim: Shim) -> None:
    assert shim.call("path_create_directory", 4, "d") == 0
    fd = shim.open("./d/../d/./f", oflags=CREATE)
    assert fd > 0 and shim.write(fd, b"ok") == 2
    d = shim.open("d", oflags=wasi.O_DIRECTORY)
    assert shim.open("..", dirfd=d) == -wasi.ENOTCAPABLE  # not above the directory it starts from
    assert shim.open("f", dirfd=d, rights=wasi.RIGHT_FD_READ) > 0
    assert shim.files == {"d/f": b"ok"}


# -- files in /out -------------------------------------------------------------------------------


def test_create_write_read_seek_tell(shim: Shim) -> None:
    fd = shim.open("f", oflags=CREATE)
    assert shim.write(fd, b"hello") == 5
    assert shim.call("fd_tell", fd, 0) == 0 and shim.mem.u64(0) == 5
    assert shim.seek(fd, 1, 0) == 1
    assert shim.write(fd, b"E") == 1
    assert shim.seek(fd, -2, 2) == 3
    assert shim.read(fd, 10) == b"lo"
    assert shim.seek(fd, -1, 1) == 4
    assert shim.seek(fd, -10, 1) == -wasi.EINVAL
    assert shim.seek(fd, 0, 7) == -wasi.EINVAL
    assert shim.seek(fd, 8, 0) == 8
    assert shim.write(fd, b"!") == 1  # a gap reads as zeros
    assert shim.files == {"f": b"hEllo\0\0\0!"}


def test_open_flags_creat_excl_trunc_directory(shim: Shim) -> None:
    fd = shim.open("f", oflags=CREATE | wasi.O_EXCL)
    assert shim.write(fd, b"data") == 4
    assert shim.open("f", oflags=CREATE | wasi.O_EXCL) == -wasi.EEXIST
    assert shim.open("missing") == -vfs.ENOENT
    assert shim.open("f", oflags=wasi.O_DIRECTORY) == -wasi.ENOTDIR
    assert shim.open("new", oflags=CREATE | wasi.O_DIRECTORY) == -wasi.EINVAL
    assert shim.open("new/", oflags=CREATE) == -wasi.EISDIR
    assert shim.open(".", rights=wasi.RIGHT_FD_WRITE) == -wasi.EISDIR
    assert shim.open(".", oflags=wasi.O_TRUNC, rights=wasi.RIGHT_FD_READ) == -wasi.EISDIR
    assert shim.open("f", oflags=wasi.O_TRUNC) > 0
    assert shim.files == {"f": b""}
    assert shim.open("f", oflags=0x10) == -wasi.EINVAL
    assert shim.open("f", fdflags=0x20) == -wasi.EINVAL
    assert shim.open("f", dirfd=1) == -wasi.ENOTDIR
    assert shim.open("f", dirfd=99) == -wasi.EBADF


def test_append_by_path_open_and_by_set_flags(shim: Shim) -> None:
    fd = shim.open("log", oflags=CREATE, fdflags=wasi.FDFLAGS_APPEND)
    assert shim.write(fd, b"a") == 1
    assert shim.seek(fd, 0, 0) == 0
    assert shim.write(fd, b"b") == 1
    assert shim.fdstat(fd)[1] == wasi.FDFLAGS_APPEND
    other = shim.open("log")
    assert shim.write(other, b"X") == 1  # overwrites at 0: not in append mode
    assert shim.call("fd_fdstat_set_flags", other, wasi.FDFLAGS_APPEND) == 0
    assert shim.write(other, b"c") == 1
    assert shim.call("fd_pwrite", other, *shim.mem.iovec(b"d"), 0, 0) == 0  # appends, as on Linux
    assert shim.call("fd_fdstat_set_flags", other, 0x40) == wasi.EINVAL
    assert shim.files == {"log": b"Xbcd"}


def test_pread_pwrite_leave_the_position(shim: Shim) -> None:
    fd = shim.open("f", oflags=CREATE)
    assert shim.write(fd, b"abcdef") == 6
    iovs, count = shim.mem.iovec(3)
    assert shim.call("fd_pread", fd, iovs, count, 2, 0) == 0
    assert shim.mem.read(shim.mem.u32(iovs), shim.mem.u32(0)) == b"cde"
    assert shim.call("fd_pwrite", fd, *shim.mem.iovec(b"XY"), 9, 0) == 0
    assert shim.call("fd_tell", fd, 0) == 0 and shim.mem.u64(0) == 6
    assert shim.files == {"f": b"abcdef\0\0\0XY"}
    assert shim.call("fd_pread", 4, *shim.mem.iovec(3), 0, 0) == wasi.EISDIR


def test_set_size_allocate_and_stat(shim: Shim) -> None:
    fd = shim.open("f", oflags=CREATE)
    assert shim.call("fd_filestat_set_size", fd, 3) == 0
    assert shim.call("fd_allocate", fd, 2, 5) == 0
    assert shim.call("fd_allocate", fd, 0, 1) == 0  # never shrinks
    assert shim.filestat(fd)[4] == 7
    assert shim.call("fd_filestat_set_size", fd, 1) == 0
    dev, ino, filetype, nlink, size, *_ = shim.filestat(fd)
    assert (dev, filetype, nlink, size) == (vfs.Vfs.OUT_DEVICE, wasi.FILETYPE_REGULAR_FILE, 1, 1)
    assert shim.call("fd_filestat_set_size", 4, 0) == wasi.EISDIR
    assert shim.files == {"f": b"\0"}


def test_timestamps_are_a_logical_clock(shim: Shim) -> None:
    first = shim.open("a", oflags=CREATE)
    second = shim.open("b", oflags=CREATE)
    a_mtime, b_mtime = shim.filestat(first)[6], shim.filestat(second)[6]
    assert 0 < a_mtime < b_mtime and a_mtime % vfs.SECOND_NS == 0
    assert shim.write(first, b"x") == 1
    assert shim.filestat(first)[6] > b_mtime
    assert shim.call("fd_filestat_set_times", first, 5, 7, 1 | 4) == 0
    assert shim.filestat(first)[5:7] == (5, 7)
    assert shim.call("path_filestat_set_times", 4, 0, "b", 0, 0, 8) == 0  # MTIM_NOW: the next tick
    assert shim.filestat(second)[6] > a_mtime
    assert shim.call("fd_filestat_set_times", first, 0, 0, 1 | 2) == wasi.EINVAL
    # The same program makes the same stamps, run after run.
    again = Shim(files={"a.txt": b"alpha", "sub/b.bin": b"\x00\x01\x02"})
    assert again.filestat(again.open("a", oflags=CREATE))[6] == a_mtime


def test_close_renumber_and_emfile(shim: Shim) -> None:
    fd = shim.open("f", oflags=CREATE)
    assert shim.call("fd_close", fd) == 0
    assert shim.call("fd_close", fd) == wasi.EBADF
    assert shim.write(fd, b"x") == -wasi.EBADF
    opened = [shim.open("f") for _ in range(wasi.MAX_OPEN_FDS - 5)]
    assert all(fd > 0 for fd in opened)
    assert shim.open("f") == -wasi.EMFILE
    assert shim.call("fd_close", opened[0]) == 0
    assert shim.open("f") == opened[0]


def test_fd_fdstat_set_rights_only_drops(shim: Shim) -> None:
    fd = shim.open("f", oflags=CREATE, rights=wasi.RIGHT_FD_READ | wasi.RIGHT_FD_WRITE)
    _, _, rights, _ = shim.fdstat(fd)
    assert rights == wasi.RIGHT_FD_READ | wasi.RIGHT_FD_WRITE
    assert shim.call("fd_fdstat_set_rights", fd, wasi.RIGHT_FD_READ, 0) == 0
    assert shim.write(fd, b"x") == -wasi.EBADF
    assert shim.call("fd_fdstat_set_rights", fd, wasi.RIGHT_FD_READ | wasi.RIGHT_FD_WRITE, 0) == wasi.ENOTCAPABLE
    assert shim.call("fd_fdstat_set_rights", 99, 0, 0) == wasi.EBADF


def test_sync_and_advise_are_accepted_on_files(shim: Shim) -> None:
    fd = shim.open("f", oflags=CREATE)
    assert shim.call("fd_sync", fd) == 0
    assert shim.call("fd_datasync", fd) == 0
    assert shim.call("fd_sync", 4) == 0
    assert shim.call("fd_advise", fd, 0, 10, 5) == 0
    assert shim.call("fd_advise", fd, 0, 10, 6) == wasi.EINVAL
    assert shim.call("fd_sync", 99) == wasi.EBADF


# -- directories ------------------------------------------------------------------------------


def test_mkdir_rmdir_unlink(shim: Shim) -> None:
    assert shim.call("path_create_directory", 4, "d") == 0
    assert shim.call("path_create_directory", 4, "d") == wasi.EEXIST
    assert shim.call("path_create_directory", 4, ".") == wasi.EEXIST
    assert shim.call("path_create_directory", 4, "x/y") == vfs.ENOENT
    assert shim.open("d/f", oflags=CREATE) > 0
    assert shim.call("path_remove_directory", 4, "d") == vfs.ENOTEMPTY
    assert shim.call("path_remove_directory", 4, "d/f") == wasi.ENOTDIR
    assert shim.call("path_unlink_file", 4, "d") == wasi.EISDIR
    assert shim.call("path_unlink_file", 4, "d/f/") == wasi.ENOTDIR
    assert shim.call("path_unlink_file", 4, "d/f") == 0
    assert shim.call("path_unlink_file", 4, "d/f") == vfs.ENOENT
    assert shim.call("path_remove_directory", 4, ".") == wasi.EINVAL
    assert shim.call("path_remove_directory", 4, "d") == 0
    assert shim.call("path_remove_directory", 4, "d") == vfs.ENOENT
    assert shim.files == {}


def test_removed_directory_open_as_fd_refuses_new_entries(shim: Shim) -> None:
    assert shim.call("path_create_directory", 4, "d") == 0
    d = shim.open("d", oflags=wasi.O_DIRECTORY)
    assert shim.call("path_remove_directory", 4, "d") == 0
    assert shim.open("f", dirfd=d, oflags=CREATE) == -vfs.ENOENT
    assert shim.filestat(d)[3] == 0  # no links left


def test_rename_semantics(shim: Shim) -> None:
    assert shim.call("path_create_directory", 4, "a") == 0
    assert shim.call("path_create_directory", 4, "b") == 0
    fd = shim.open("a/f", oflags=CREATE)
    assert shim.write(fd, b"F") == 1
    assert shim.open("b/g", oflags=CREATE) > 0
    assert shim.call("path_rename", 4, "a/f", 4, "b/g") == 0  # replaces a file, across directories
    assert shim.write(fd, b"2") == 1  # the descriptor follows the file
    assert shim.call("path_rename", 4, "a/f", 4, "x") == vfs.ENOENT
    assert shim.call("path_rename", 4, "b/g", 4, "a") == wasi.EISDIR
    assert shim.call("path_rename", 4, "a", 4, "b/g") == wasi.ENOTDIR
    assert shim.call("path_rename", 4, "a", 4, "a/inside") == wasi.EINVAL
    assert shim.call("path_rename", 4, "a", 4, "b") == vfs.ENOTEMPTY
    assert shim.call("path_rename", 4, "b", 4, "c") == 0  # a directory with its contents
    assert shim.call("path_rename", 4, "c/g", 4, "c/g") == 0
    assert shim.call("path_rename", 4, ".", 4, "z") == wasi.EINVAL
    assert shim.call("path_rename", 4, "a", 4, "n" * 256) == wasi.ENAMETOOLONG
    sub = shim.open("c", oflags=wasi.O_DIRECTORY)
    assert shim.call("path_rename", sub, "g", 4, "top") == 0  # between two directory descriptors
    assert shim.files == {"top": b"F2"}
    assert shim.path_stat("a")[2] == wasi.FILETYPE_DIRECTORY  # type: ignore[index]


def test_rename_refuses_to_make_a_path_too_long(shim: Shim) -> None:
    assert shim.call("path_create_directory", 4, "d") == 0
    assert shim.open("d/" + "f" * 250, oflags=CREATE) > 0
    name = "e" * 250
    path = ""
    for _ in range(3):
        path = f"{path}/{name}" if path else name
        assert shim.call("path_create_directory", 4, path) == 0
    # d holds a 250-byte name: below `path` (752 bytes) it may take a name of up to 20 bytes.
    assert shim.call("path_rename", 4, "d", 4, path + "/" + "d" * 21) == wasi.ENAMETOOLONG
    assert shim.call("path_rename", 4, "d", 4, path + "/" + "d" * 20) == 0
    assert len(next(iter(shim.files))) == limits.MAX_PATH_BYTES


def test_readdir_cookies_dot_entries_and_small_buffers(shim: Shim) -> None:
    for name in ("b", "a", "c"):
        assert shim.open(name, oflags=CREATE) > 0
    assert shim.call("path_create_directory", 4, "dir") == 0
    entries = shim.listing(4)
    assert [(cookie, name) for cookie, _, _, name in entries] == [
        (1, "."),
        (2, ".."),
        (3, "b"),
        (4, "a"),
        (5, "c"),
        (6, "dir"),
    ]  # fmt: skip  (creation order)
    types = {name: filetype for _, _, filetype, name in entries}
    assert types["dir"] == types["."] == wasi.FILETYPE_DIRECTORY and types["a"] == wasi.FILETYPE_REGULAR_FILE
    assert [e[3] for e in shim.listing(4, cookie=4)] == ["c", "dir"]  # what follows the entry whose d_next is 4
    assert shim.listing(4, cookie=6) == [] and shim.listing(4, cookie=1 << 40) == []
    # Cookies belong to entries: removing some mid-listing shifts nothing.
    assert shim.call("path_unlink_file", 4, "b") == 0
    assert shim.call("path_unlink_file", 4, "a") == 0
    assert [(c, n) for c, _, _, n in shim.listing(4, cookie=4)] == [(5, "c"), (6, "dir")]
    assert shim.call("path_rename", 4, "c", 4, "c2") == 0  # a renamed entry moves to the end
    assert [n for *_, n in shim.listing(4)] == [".", "..", "dir", "c2"]
    # A buffer that cuts an entry comes back full, so libc retries with a bigger one.
    pointer, _ = shim.mem.put(bytes(30))
    assert shim.call("fd_readdir", 4, pointer, 30, 0, 0) == 0
    assert shim.mem.u32(0) == 30
    assert shim.call("fd_readdir", shim.open("c2"), pointer, 30, 0, 0) == wasi.ENOTDIR
    assert shim.call("fd_readdir", 1, pointer, 30, 0, 0) == wasi.ENOTDIR


def test_links_are_not_supported(shim: Shim) -> None:
    assert shim.open("f", oflags=CREATE) > 0
    assert shim.call("path_symlink", "f", 4, "l") == vfs.EPERM
    assert shim.call("path_symlink", "x", 4, "f") == wasi.EEXIST
    assert shim.call("path_link", 4, 0, "f", 4, "l") == vfs.EPERM
    assert shim.call("path_link", 4, 0, "nope", 4, "l") == vfs.ENOENT
    assert shim.call("path_link", 4, 0, "f", 4, "f") == wasi.EEXIST
    assert shim.call("path_readlink", 4, "f", 0, 0, 0) == wasi.EINVAL
    assert shim.call("path_readlink", 4, "nope", 0, 0, 0) == vfs.ENOENT
    assert shim.files == {"f": b""}


def test_faults_are_efault(shim: Shim) -> None:
    assert shim.call("path_open", 4, 0, MEMORY_BYTES - 2, 10, 1, RW, RW, 0, 0) == wasi.EFAULT
    assert shim.call("path_open", 4, 0, *shim.path("f"), 1, RW, RW, 0, MEMORY_BYTES) == wasi.EFAULT
    assert shim.call("fd_readdir", 4, MEMORY_BYTES - 4, 8, 0, 0) == wasi.EFAULT
    assert shim.call("fd_filestat_get", 4, MEMORY_BYTES - 8) == wasi.EFAULT
    assert shim.files == {"f": b""}  # created before the result could not be stored, then closed


def test_input_files_are_placed_on_first_use_and_bad_paths_refused() -> None:
    for files in ({"../x": b""}, {"/abs": b""}, {"a": b"", "a/b": b""}, {"": b""}, {"a//b": b""}):
        s = Shim(files=files)
        assert s.write(1, b"stdio needs no filesystem") == 25
        assert s.shim._vfs is None
        with pytest.raises(ValueError, match="input file path"):
            s.call("fd_close", 9)  # anything past stdio and the preopen scan builds it


# -- polling, signals, sockets -------------------------------------------------------------------


def _subscription(userdata: int, tag: int, ident: int, timeout: int = 0, flags: int = 0) -> bytes:
    return struct.pack("<QBxxxxxxxIxxxxQQHxxxxxx", userdata, tag, ident, timeout, 0, flags)


def _poll(s: Shim, *subscriptions: bytes) -> list[tuple[int, int, int, int, int]]:
    pointer, _ = s.mem.put(b"".join(subscriptions))
    events, _ = s.mem.put(bytes(32 * len(subscriptions)))
    assert s.call("poll_oneoff", pointer, events, len(subscriptions), 0) == 0
    return [struct.unpack_from("<QHBxxxxxQHxxxxxx", s.mem.memory, events + 32 * i) for i in range(s.mem.u32(0))]


def test_poll_oneoff_clock_sleeps_and_fds_are_ready() -> None:
    s = Shim(stdin=b"abc")
    started = time.monotonic()
    assert _poll(s, _subscription(7, 0, 1, 50_000_000)) == [(7, 0, 0, 0, 0)]
    assert time.monotonic() - started >= 0.05
    absolute = time.monotonic_ns() + 20_000_000
    assert _poll(s, _subscription(8, 0, 1, absolute, flags=1)) == [(8, 0, 0, 0, 0)]
    assert time.monotonic_ns() >= absolute
    assert _poll(s, _subscription(9, 0, 0, 1_000_000)) == [(9, 0, 0, 0, 0)]  # realtime, relative
    # fd subscriptions are answered at once, without waiting for the clock.
    started = time.monotonic()
    events = _poll(s, _subscription(1, 0, 1, 10**12), _subscription(2, 1, 0), _subscription(3, 2, 1))
    assert time.monotonic() - started < 1.0
    assert events == [(2, 0, 1, 3, 0), (3, 0, 2, s.shim._budget.room(), 0)]
    assert s.read(0, 3) == b"abc"
    assert _poll(s, _subscription(4, 1, 0)) == [(4, 0, 1, 0, 1)]  # end of stdin: hangup
    events = _poll(s, _subscription(5, 1, 99), _subscription(6, 0, 2, 0))  # a closed fd, the CPU clock
    assert events == [(5, wasi.EBADF, 1, 0, 0), (6, wasi.EINVAL, 0, 0, 0)]
    assert s.call("poll_oneoff", 0, 1024, 0, 0) == wasi.EINVAL
    pointer, _ = s.mem.put(_subscription(1, 9, 0))
    assert s.call("poll_oneoff", pointer, 0, 1, 0) == wasi.EINVAL


@pytest.mark.parametrize("timeout", [60 * 10**9, (1 << 64) - 1])
def test_poll_oneoff_ends_the_run_at_the_task_deadline(timeout: int) -> None:
    s = Shim(timeout_s=0.2)
    started = time.monotonic()
    with pytest.raises(wasi.DeadlineExceeded):
        _poll(s, _subscription(1, 0, 1, timeout))
    assert 0.15 <= time.monotonic() - started < 1.0


def test_proc_raise_traps_and_sockets_do_not_exist() -> None:
    s = Shim()
    assert s.call("proc_raise", 0) == 0
    assert s.call("proc_raise", 99) == wasi.EINVAL
    with pytest.raises(wasi.ProcRaise) as raised:
        s.call("proc_raise", 6)
    assert raised.value.signal == 6
    assert s.call("sched_yield") == 0
    for fd, errno in ((1, wasi.ENOTSOCK), (4, wasi.ENOTSOCK), (99, wasi.EBADF)):
        assert s.call("sock_accept", fd, 0, 0) == errno
        assert s.call("sock_recv", fd, 0, 0, 0, 0, 0) == errno
        assert s.call("sock_send", fd, 0, 0, 0, 0) == errno
        assert s.call("sock_shutdown", fd, 0) == errno


# -- the VFS on its own -------------------------------------------------------------------------


def test_vfs_output_lists_regular_files_only_sorted() -> None:
    fs = vfs.Vfs({}, vfs.OutputBudget(100))
    fs.mkdir(fs.out_root, b"empty")
    fs.mkdir(fs.out_root, b"d")
    file = fs.open(fs.out_root, b"d/x", create=True, exclusive=False, directory=False, truncate=False)
    assert isinstance(file, vfs.File)
    fs.write(file, 0, b"xyz")
    assert fs.output_files() == {"d/x": b"xyz"}
    assert fs.out_entries == 3 and fs.budget.used == 3
    with pytest.raises(vfs.VfsError) as error:  # the second line of defence behind /in's rights
        fs.write(vfs.File(99, b"", writable=False, stamp=0), 0, b"x")
    assert error.value.errno == vfs.EROFS


# -- every import, through both engines ----------------------------------------------------------


def _vec(items: list[bytes]) -> bytes:
    return uleb(len(items)) + b"".join(items)


def _section(section_id: int, payload: bytes) -> bytes:
    return bytes([section_id]) + uleb(len(payload)) + payload


def _name(text: str) -> bytes:
    return uleb(len(text)) + text.encode()


_VALTYPE = {"i": b"\x7f", "I": b"\x7e"}


def calling_module(function: str, args: tuple[int, ...], data: bytes = b"") -> bytes:
    """A command whose _start calls `function(*args)` and exits with what it returned."""
    signature = wasi.SIGNATURES[function]
    result, params = signature[0], signature[2:-1]
    target = b"\x60" + _vec([_VALTYPE[p] for p in params]) + (b"\x00" if result == "v" else b"\x01\x7f")
    types = [target, b"\x60\x01\x7f\x00", b"\x60\x00\x00"]
    imports = [_name(abi.WASI_MODULE) + _name(function) + b"\x00\x00"]
    if function != "proc_exit":
        imports.append(_name(abi.WASI_MODULE) + _name("proc_exit") + b"\x00\x01")
    start = len(imports)
    body = b"".join((b"\x41" if p == "i" else b"\x42") + sleb(a) for p, a in zip(params, args, strict=True))
    body += b"\x10\x00"
    if function != "proc_exit":
        body += b"\x10\x01"
    code = _vec([]) + body + b"\x0b"
    return (
        b"\0asm\x01\0\0\0"
        + _section(1, _vec(types))
        + _section(2, _vec(imports))
        + _section(3, _vec([uleb(2)]))
        + _section(5, _vec([b"\x00\x01"]))
        + _section(7, _vec([_name("_start") + b"\x00" + uleb(start), _name("memory") + b"\x02\x00"]))
        + _section(10, _vec([uleb(len(code)) + code]))
        + (_section(11, _vec([b"\x00\x41" + sleb(P) + b"\x0b" + uleb(len(data)) + data])) if data else b"")
    )


P = 1024
"""Where each module's data (a path, a subscription) sits."""
B = 2048
"""A free buffer."""

CALLS: dict[str, tuple[tuple[int, ...], bytes, int]] = {
    "args_get": ((B, B + 64), b"", 0),
    "args_sizes_get": ((B, B + 4), b"", 0),
    "environ_get": ((B, B + 64), b"", 0),
    "environ_sizes_get": ((B, B + 4), b"", 0),
    "clock_res_get": ((1, B), b"", 0),
    "clock_time_get": ((0, 1, B), b"", 0),
    "fd_advise": ((99, 0, 0, 0), b"", wasi.EBADF),
    "fd_allocate": ((1, 0, 1), b"", wasi.ESPIPE),
    "fd_close": ((99,), b"", wasi.EBADF),
    "fd_datasync": ((1,), b"", wasi.EINVAL),
    "fd_fdstat_get": ((1, B), b"", 0),
    "fd_fdstat_set_flags": ((99, 0), b"", wasi.EBADF),
    "fd_fdstat_set_rights": ((1, 0, 0), b"", 0),
    "fd_filestat_get": ((1, B), b"", 0),
    "fd_filestat_set_size": ((1, 0), b"", wasi.EINVAL),
    "fd_filestat_set_times": ((1, 0, 0, 0), b"", wasi.ENOTCAPABLE),
    "fd_pread": ((0, B, 0, 0, B + 64), b"", wasi.ESPIPE),
    "fd_prestat_get": ((3, B), b"", 0),
    "fd_prestat_dir_name": ((4, B, 4), b"", 0),
    "fd_pwrite": ((1, B, 0, 0, B + 64), b"", wasi.ESPIPE),
    "fd_read": ((0, B, 0, B + 64), b"", 0),
    "fd_readdir": ((3, B, 256, 0, B + 512), b"", 0),
    "fd_renumber": ((99, 1), b"", wasi.EBADF),
    "fd_seek": ((1, 0, 0, B), b"", wasi.ESPIPE),
    "fd_sync": ((99,), b"", wasi.EBADF),
    "fd_tell": ((0, B), b"", wasi.ESPIPE),
    "fd_write": ((1, B, 0, B + 64), b"", 0),
    "path_create_directory": ((4, P, 3), b"dir", 0),
    "path_filestat_get": ((3, 0, P, 3, B), b"dir", vfs.ENOENT),
    "path_filestat_set_times": ((3, 0, P, 1, 0, 0, 0), b".", wasi.ENOTCAPABLE),
    "path_link": ((4, 0, P, 1, 4, P + 1, 1), b".x", vfs.EPERM),
    "path_open": ((4, 0, P, 1, wasi.O_CREAT, RW, RW, 0, B), b"f", 0),
    "path_readlink": ((4, P, 1, B, 64, B + 64), b".", wasi.EINVAL),
    "path_remove_directory": ((4, P, 1), b"x", vfs.ENOENT),
    "path_rename": ((3, P, 1, 4, P, 1), b"a", wasi.ENOTCAPABLE),
    "path_symlink": ((P, 1, 4, P + 1, 1), b"ab", vfs.EPERM),
    "path_unlink_file": ((4, P, 2), b"..", wasi.ENOTCAPABLE),
    "poll_oneoff": ((P, B, 1, B + 64), _subscription(1, 0, 1, 1_000_000), 0),
    "proc_exit": ((7,), b"", 7),
    "proc_raise": ((6,), b"", -1),
    "random_get": ((B, 16), b"", 0),
    "sched_yield": ((), b"", 0),
    "sock_accept": ((1, 0, B), b"", wasi.ENOTSOCK),
    "sock_recv": ((99, B, 0, 0, B + 8, B + 16), b"", wasi.EBADF),
    "sock_send": ((1, B, 0, 0, B + 8), b"", wasi.ENOTSOCK),
    "sock_shutdown": ((1, 0), b"", wasi.ENOTSOCK),
}
"""For every preview-1 function: arguments, data at P, and the exit code (its errno; -1: a trap)."""


def test_calls_cover_every_preview1_function() -> None:
    assert set(CALLS) == set(wasi.SIGNATURES) == set(abi.SUPPORTED_WASI_IMPORTS)
    assert len(CALLS) == 46


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("function", sorted(CALLS))
def test_every_function_links_and_answers_on_both_engines(engine: str, function: str) -> None:
    args, data, expected = CALLS[function]
    result = engines.runner(engine)(calling_module(function, args, data), args=(), stdin=b"", env={})
    if expected == -1:
        assert (result.reason, result.error) == (FailureReason.TRAP, "trap: raised signal 6")
    elif expected == 0:
        assert result.reason is None, result
    else:
        assert (result.reason, result.exit_code) == (FailureReason.EXIT_CODE, expected), result
    if function in ("path_create_directory", "path_open"):
        assert result.files == ({"f": b""} if function == "path_open" else {})


@pytest.mark.parametrize("engine", ENGINES)
def test_a_bad_input_path_is_an_internal_error_not_a_crash(engine: str) -> None:
    result = engines.runner(engine)(
        calling_module("fd_close", (9,)), args=(), stdin=b"", env={}, files={"../escape": b"x"}
    )
    assert result.reason is FailureReason.INTERNAL
    assert "input file path '../escape' is not a plain relative path" in result.error
