"""The result cache's key: what a task's output is a function of. Pure.

A task's output depends on its module, its argv, the bytes it reads on stdin (in the parts they came
in: the host tells the task their sizes), its `/in` files, its memory limit (a task may fail or
behave differently near it) and whether it runs seeded (`verify` >= 2: deterministic clocks and
random bytes). The key is sha256 over all of them, each part length-prefixed, so no two different
inputs give the same bytes to hash (`tests/unit/test_cache_key.py` checks that with hypothesis).
Timeouts, retries and the engine are left out: they decide whether a task succeeds, not what a
successful run writes (both engines run the same WASI shim on the same module bytes).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

CACHE_KEY_VERSION = b"bxthre3-cache-key-1"
"""Changed whenever what goes into a key changes: old entries then simply never match."""


def cache_key(
    module_sha: str,
    args: Sequence[str],
    stdin_parts: Sequence[bytes],
    files: Mapping[str, bytes] | None,
    memory: int | None,
    deterministic: bool,
) -> str:
    """The hex sha256 naming a task's output in the cache (see the module docstring)."""
    h = hashlib.sha256()

    def part(data: bytes) -> None:
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)

    part(CACHE_KEY_VERSION)
    part(module_sha.encode())
    part(str(len(args)).encode())
    for arg in args:
        part(arg.encode("utf-8", "surrogatepass"))
    part(str(len(stdin_parts)).encode())
    for data in stdin_parts:
        part(data)
    names = sorted(files or ())
    part(str(len(names)).encode())
    for name in names:
        part(name.encode("utf-8", "surrogatepass"))
        part((files or {})[name])
    part(b"" if memory is None else str(memory).encode())
    part(b"seeded" if deterministic else b"free")
    return h.hexdigest()
