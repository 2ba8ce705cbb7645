"""The in-memory filesystem a task sees: a read-only `/in` and a writable `/out`.

Pure logic, no I/O and no WebAssembly: :mod:`bxthre3.wasm.wasi` maps WASI calls onto it and
handles descriptors, rights and linear memory. Keeping the tree here lets its rules
(path resolution, POSIX error cases, limits) be tested without a module.

Why in memory: a task must not reach the device it runs on, its outputs must come back
to the controller as bytes anyway, and both engines must behave identically, which one
Python implementation guarantees. Errors are raised as :class:`VfsError` carrying a WASI
errno; the shim returns it to the module.

Rules worth knowing (docs/protocol.md "Module ABI" has the user-facing version):

- Paths are relative to a directory (the WASI way; wasi-libc turns `/out/x` into `x`
  relative to the `/out` preopen). An absolute path, or `..` climbing above the
  directory the path starts from, is ENOTCAPABLE; a NUL byte is EINVAL; invalid UTF-8
  is EILSEQ; a path longer than ``MAX_PATH_BYTES`` or a component longer than
  ``MAX_NAME_BYTES`` is ENAMETOOLONG.
- No links: `link` is EPERM and `symlink` is EPERM (what Linux answers on a filesystem
  without them, such as vfat), `readlink` of an existing entry is EINVAL (not a link).
- Timestamps are a logical clock, so outputs are reproducible: everything in `/in` and
  both roots are at 0 (1970-01-01T00:00:00Z); each change under `/out` is stamped one
  second after the previous change, so "newer than" comparisons still work.
- Directory listings are `.`, `..`, then entries in the order they were created (a renamed entry
  moves to the end), which is deterministic too. Each entry keeps its readdir cookie for life, so a
  listing continued after entries were added or removed (`rm -r` unlinks while it reads) neither skips
  nor repeats the others.
- Bytes of live files under `/out` count against the task's output budget, shared with
  stdout; entries (files and directories) under `/out` are capped at ``max_entries``.
  Both end the run (:class:`OutputLimitExceeded`), as stdout's cap always did.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from bxthre3.common import limits

# WASI errno values used by the filesystem.
EEXIST = 20
EILSEQ = 25
EINVAL = 28
EISDIR = 31
ENAMETOOLONG = 37
ENOENT = 44
ENOTDIR = 54
ENOTEMPTY = 55
EPERM = 63
EROFS = 69
ENOTCAPABLE = 76

SECOND_NS = 1_000_000_000
"""One tick of the logical clock that stamps changes under /out."""


class VfsError(Exception):
    """A filesystem call failed with this WASI errno (returned to the module, never raised out)."""

    def __init__(self, errno: int) -> None:
        super().__init__(errno)
        self.errno = errno


class OutputLimitExceeded(Exception):
    """The task's output (stdout plus files under /out) passed a limit: the run stops at once.

    Control flow between the shim and the engine only; it never leaves `run_module`.
    The message says which limit, in words for the task's error line.
    """


class OutputBudget:
    """Bytes of output one run may still produce: stdout and every live file under /out share it."""

    __slots__ = ("limit", "used")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def room(self) -> int:
        return self.limit - self.used

    def charge(self, size: int) -> None:
        """Account `size` more bytes, or raise without accounting them when they do not fit."""
        if self.used + size > self.limit:
            raise OutputLimitExceeded(self.message())
        self.used += size

    def message(self) -> str:
        return f"output exceeded {self.limit} bytes (stdout plus files under /out)"


class File:
    """A regular file. `opens` counts descriptors on it: an unlinked file lives while one is open."""

    __slots__ = ("ino", "data", "writable", "atim", "mtim", "ctim", "linked", "opens")

    def __init__(self, ino: int, data: bytes | bytearray, *, writable: bool, stamp: int) -> None:
        self.ino = ino
        self.data = bytearray(data)
        self.writable = writable
        self.atim = self.mtim = self.ctim = stamp
        self.linked = True
        self.opens = 0


class Directory:
    """A directory: entries by name, and its parent for `..` (None for a root).

    Each entry gets a slot number when it is added, increasing, never reused: its readdir
    cookie. `entries` keeps insertion order, which is therefore slot order.
    """

    __slots__ = ("ino", "entries", "slots", "next_slot", "parent", "writable", "atim", "mtim", "ctim", "removed")

    def __init__(self, ino: int, parent: Directory | None, *, writable: bool, stamp: int) -> None:
        self.ino = ino
        self.entries: dict[str, Node] = {}
        self.slots: dict[str, int] = {}
        self.next_slot = 0
        self.parent = parent
        self.writable = writable
        self.atim = self.mtim = self.ctim = stamp
        self.removed = False

    def add(self, name: str, node: Node) -> None:
        """Add an entry (the name must be free) in the next slot."""
        self.entries[name] = node
        self.slots[name] = self.next_slot
        self.next_slot += 1

    def remove(self, name: str) -> Node:
        del self.slots[name]
        return self.entries.pop(name)


Node = File | Directory


class Vfs:
    """One task's `/in` (from its input files, read-only) and `/out` (initially empty).

    Every method takes paths as the module passed them (bytes, relative to a directory)
    and raises :class:`VfsError` with the errno POSIX would give. Rights are the
    shim's business; this class also refuses to change `/in` (EROFS) as a second line.
    """

    IN_DEVICE = 1
    OUT_DEVICE = 2

    def __init__(
        self,
        inputs: Mapping[str, bytes],
        budget: OutputBudget,
        *,
        max_entries: int = limits.MAX_OUTPUT_FILES,
        max_path_bytes: int = limits.MAX_PATH_BYTES,
        max_name_bytes: int = limits.MAX_NAME_BYTES,
    ) -> None:
        self.budget = budget
        self.max_entries = max_entries
        self.max_path_bytes = max_path_bytes
        self.max_name_bytes = max_name_bytes
        self._next_ino = 1
        self._clock = 0
        self.out_entries = 0
        """Files and directories under /out now (not counting /out itself)."""
        self.in_root = Directory(self._ino(), None, writable=False, stamp=0)
        self.out_root = Directory(self._ino(), None, writable=True, stamp=0)
        for path in sorted(inputs):
            self._add_input(path, inputs[path])

    def _ino(self) -> int:
        ino = self._next_ino
        self._next_ino += 1
        return ino

    def tick(self) -> int:
        """The next logical timestamp (ns): one second after the previous change."""
        self._clock += SECOND_NS
        return self._clock

    def _add_input(self, path: str, data: bytes) -> None:
        """Place one input file, creating the directories its path implies."""
        parts = path.split("/")
        if not path or any(p in ("", ".", "..") or "\0" in p for p in parts):
            raise ValueError(f"input file path {path!r} is not a plain relative path")
        directory = self.in_root
        for part in parts[:-1]:
            child = directory.entries.get(part)
            if child is None:
                child = Directory(self._ino(), directory, writable=False, stamp=0)
                directory.add(part, child)
            elif not isinstance(child, Directory):
                raise ValueError(f"input file path {path!r} runs through the file {part!r}")
            directory = child
        if parts[-1] in directory.entries:
            raise ValueError(f"input file path {path!r} is also a directory")
        directory.add(parts[-1], File(self._ino(), data, writable=False, stamp=0))

    # -- paths ---------------------------------------------------------------------

    def _components(self, raw: bytes) -> tuple[list[str], bool]:
        """Split a path into components; also whether it ends with '/' (then it names a directory)."""
        if len(raw) > self.max_path_bytes:
            raise VfsError(ENAMETOOLONG)
        if b"\0" in raw:
            raise VfsError(EINVAL)
        if not raw:
            raise VfsError(ENOENT)
        if raw.startswith(b"/"):
            raise VfsError(ENOTCAPABLE)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise VfsError(EILSEQ) from None
        parts = [p for p in text.split("/") if p]
        for part in parts:
            if len(part.encode("utf-8")) > self.max_name_bytes:
                raise VfsError(ENAMETOOLONG)
        return parts, text.endswith("/")

    def resolve(self, base: Directory, raw: bytes) -> tuple[Directory, str | None, bool]:
        """Walk `raw` from `base` up to its last component.

        Returns (directory, name, trailing_slash): `name` is the last component to look
        up in `directory`, or None when the path names `directory` itself (it ends in
        `.` or `..`). `..` never climbs above `base`: that would escape the capability.
        """
        parts, trailing = self._components(raw)
        stack = [base]
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            if part == ".":
                continue
            if part == "..":
                if len(stack) == 1:
                    raise VfsError(ENOTCAPABLE)
                stack.pop()
                continue
            if last:
                return stack[-1], part, trailing
            child = stack[-1].entries.get(part)
            if child is None:
                raise VfsError(ENOENT)
            if not isinstance(child, Directory):
                raise VfsError(ENOTDIR)
            stack.append(child)
        return stack[-1], None, trailing

    def lookup(self, base: Directory, raw: bytes) -> Node:
        """The existing node `raw` names (ENOENT when missing, ENOTDIR for 'file/')."""
        directory, name, trailing = self.resolve(base, raw)
        if name is None:
            return directory
        node = directory.entries.get(name)
        if node is None:
            raise VfsError(ENOENT)
        if trailing and not isinstance(node, Directory):
            raise VfsError(ENOTDIR)
        return node

    def path_of(self, directory: Directory) -> str:
        """`directory`'s path below its root ('' for a root)."""
        names: list[str] = []
        while directory.parent is not None:
            parent = directory.parent
            names.append(next(n for n, child in parent.entries.items() if child is directory))
            directory = parent
        return "/".join(reversed(names))

    def _check_new_path(self, directory: Directory, name: str, below: int = 0) -> None:
        """ENAMETOOLONG when `directory/name` (plus `below` bytes of descendants) passes the cap."""
        prefix = self.path_of(directory)
        length = len(prefix.encode("utf-8")) + (1 if prefix else 0) + len(name.encode("utf-8")) + below
        if length > self.max_path_bytes:
            raise VfsError(ENAMETOOLONG)

    def _writable(self, directory: Directory) -> None:
        if not directory.writable:
            raise VfsError(EROFS)
        if directory.removed:
            raise VfsError(ENOENT)

    def _count_entry(self) -> None:
        if self.out_entries >= self.max_entries:
            raise OutputLimitExceeded(f"more than {self.max_entries} files and directories under /out")
        self.out_entries += 1

    def _touch(self, node: Node) -> None:
        node.mtim = node.ctim = self.tick()

    # -- files -----------------------------------------------------------------------

    def open(
        self, base: Directory, raw: bytes, *, create: bool, exclusive: bool, directory: bool, truncate: bool
    ) -> Node:
        """The node for path_open's oflags (O_CREAT, O_EXCL, O_DIRECTORY, O_TRUNC)."""
        parent, name, trailing = self.resolve(base, raw)
        node: Node | None = parent if name is None else parent.entries.get(name)
        if node is None:
            if not create:
                raise VfsError(ENOENT)
            if directory:
                raise VfsError(EINVAL)  # O_CREAT|O_DIRECTORY creates nothing on Linux
            if trailing:
                raise VfsError(EISDIR)
            assert name is not None
            self._writable(parent)
            self._check_new_path(parent, name)
            self._count_entry()
            node = File(self._ino(), b"", writable=True, stamp=self.tick())
            parent.add(name, node)
            self._touch(parent)
            return node
        if create and exclusive:
            raise VfsError(EEXIST)
        if isinstance(node, Directory):
            if truncate:
                raise VfsError(EISDIR)
            return node
        if directory or trailing:
            raise VfsError(ENOTDIR)
        if truncate:
            self.resize(node, 0)
        return node

    def resize(self, file: File, size: int) -> None:
        """Truncate or extend (with zeros) `file`, charging growth to the output budget."""
        if not file.writable:
            raise VfsError(EROFS)
        old = len(file.data)
        if size > old:
            self.budget.charge(size - old)
            file.data.extend(bytes(size - old))
        elif size < old:
            del file.data[size:]
            self._refund(file, old - size)
        self._touch(file)

    def _refund(self, file: File, size: int) -> None:
        if file.linked or file.opens:
            self.budget.used -= size

    def write(self, file: File, offset: int, data: bytes | memoryview) -> None:
        """Write `data` at `offset` (zero-filling any gap), charging growth first."""
        if not file.writable:
            raise VfsError(EROFS)
        end = offset + len(data)
        old = len(file.data)
        if end > old:
            self.budget.charge(end - old)
            if offset > old:
                file.data.extend(bytes(offset - old))
        file.data[offset:end] = data
        self._touch(file)

    def release(self, file: File) -> None:
        """A descriptor on `file` was closed; an unlinked file's bytes stop counting with the last."""
        file.opens -= 1
        if not file.opens and not file.linked and file.writable:
            self.budget.used -= len(file.data)

    def _drop(self, node: Node) -> None:
        """`node` left the tree (unlink, rmdir, or replaced by a rename)."""
        self.out_entries -= 1
        if isinstance(node, File):
            node.linked = False
            if not node.opens:
                self.budget.used -= len(node.data)
        else:
            node.removed = True

    # -- directories -------------------------------------------------------------------

    def mkdir(self, base: Directory, raw: bytes) -> None:
        parent, name, _ = self.resolve(base, raw)
        if name is None or name in parent.entries:
            raise VfsError(EEXIST)
        self._writable(parent)
        self._check_new_path(parent, name)
        self._count_entry()
        parent.add(name, Directory(self._ino(), parent, writable=True, stamp=self.tick()))
        self._touch(parent)

    def rmdir(self, base: Directory, raw: bytes) -> None:
        parent, name, _ = self.resolve(base, raw)
        if name is None:
            raise VfsError(EINVAL)  # rmdir(".") and rmdir("..")
        node = parent.entries.get(name)
        if node is None:
            raise VfsError(ENOENT)
        if not isinstance(node, Directory):
            raise VfsError(ENOTDIR)
        if node.entries:
            raise VfsError(ENOTEMPTY)
        self._writable(parent)
        parent.remove(name)
        self._drop(node)
        self._touch(parent)

    def unlink(self, base: Directory, raw: bytes) -> None:
        parent, name, trailing = self.resolve(base, raw)
        if name is None:
            raise VfsError(EISDIR)
        node = parent.entries.get(name)
        if node is None:
            raise VfsError(ENOENT)
        if isinstance(node, Directory):
            raise VfsError(EISDIR)
        if trailing:
            raise VfsError(ENOTDIR)
        self._writable(parent)
        parent.remove(name)
        self._drop(node)
        self._touch(parent)

    def rename(self, old_base: Directory, old_raw: bytes, new_base: Directory, new_raw: bytes) -> None:
        """POSIX rename(2): replaces a file with a file, an empty directory with a directory."""
        old_parent, old_name, old_trailing = self.resolve(old_base, old_raw)
        new_parent, new_name, new_trailing = self.resolve(new_base, new_raw)
        if old_name is None or new_name is None:
            raise VfsError(EINVAL)  # renaming "." or ".." (Linux says EBUSY for some; EINVAL is POSIX's)
        node = old_parent.entries.get(old_name)
        if node is None:
            raise VfsError(ENOENT)
        if isinstance(node, File) and (old_trailing or new_trailing):
            raise VfsError(ENOTDIR)
        self._writable(old_parent)
        self._writable(new_parent)
        target = new_parent.entries.get(new_name)
        if target is node:
            return
        if isinstance(node, Directory):
            ancestor: Directory | None = new_parent
            while ancestor is not None:  # moving a directory into itself
                if ancestor is node:
                    raise VfsError(EINVAL)
                ancestor = ancestor.parent
            if target is not None:
                if not isinstance(target, Directory):
                    raise VfsError(ENOTDIR)
                if target.entries:
                    raise VfsError(ENOTEMPTY)
            self._check_new_path(new_parent, new_name, self._deepest(node))
        else:
            if isinstance(target, Directory):
                raise VfsError(EISDIR)
            self._check_new_path(new_parent, new_name)
        old_parent.remove(old_name)
        if target is not None:
            new_parent.remove(new_name)
            self._drop(target)
        new_parent.add(new_name, node)
        if isinstance(node, Directory):
            node.parent = new_parent
        node.ctim = self.tick()
        self._touch(old_parent)
        self._touch(new_parent)

    def _deepest(self, directory: Directory) -> int:
        """Bytes the longest path below `directory` adds to its own ('/' included)."""
        deepest = 0
        for name, child in directory.entries.items():
            length = 1 + len(name.encode("utf-8"))
            if isinstance(child, Directory):
                length += self._deepest(child)
            deepest = max(deepest, length)
        return deepest

    def listing(self, directory: Directory, cookie: int = 0) -> Iterator[tuple[int, str, Node]]:
        """(next cookie, name, node) from `cookie` on: `.` (cookie 0), `..` (1), then the entries.

        An entry in slot s is listed from cookie s + 2 and its next cookie is s + 3: cookies
        belong to entries, not positions, so removing one never shifts the others.
        """
        if cookie == 0:
            yield 1, ".", directory
        if cookie <= 1:
            yield 2, "..", directory.parent or directory
        slots = directory.slots
        for name, node in directory.entries.items():
            slot = slots[name]
            if slot + 2 >= cookie:
                yield slot + 3, name, node

    # -- links ---------------------------------------------------------------------------

    def link(self, old_base: Directory, old_raw: bytes, new_base: Directory, new_raw: bytes) -> None:
        """Hard links are not supported: EPERM, after the checks that come first on Linux."""
        self.lookup(old_base, old_raw)
        parent, name, _ = self.resolve(new_base, new_raw)
        if name is None or name in parent.entries:
            raise VfsError(EEXIST)
        raise VfsError(EPERM)

    def symlink(self, base: Directory, raw: bytes) -> None:
        """Symbolic links are not supported: EPERM (EEXIST first when the name is taken)."""
        parent, name, _ = self.resolve(base, raw)
        if name is None or name in parent.entries:
            raise VfsError(EEXIST)
        raise VfsError(EPERM)

    def readlink(self, base: Directory, raw: bytes) -> None:
        """Nothing here is a symbolic link: EINVAL for any existing entry."""
        self.lookup(base, raw)
        raise VfsError(EINVAL)

    # -- results ---------------------------------------------------------------------

    def output_files(self) -> dict[str, bytes]:
        """Every regular file under /out: relative '/'-path -> contents (directories are implied)."""
        return dict(self._walk(self.out_root, ""))

    def _walk(self, directory: Directory, prefix: str) -> Iterator[tuple[str, bytes]]:
        for name, node in sorted(directory.entries.items()):
            if isinstance(node, File):
                yield prefix + name, bytes(node.data)
            else:
                yield from self._walk(node, prefix + name + "/")
