"""The result cache's key: what a task's output is a function of. Pure.

A task's output depends on its id (a module sees it as argv[0] and in `BXTHRE3_TASK_ID`, and it seeds a
verified task's clocks and random bytes), its module, its argv, the bytes it reads on stdin (in the parts they came
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

CACHE_KEY_VERSION = b"bxthre3-cache-key-2"
"""Changed whenever what goes into a key changes: old entries then simply never match."""


def cache_key(
    task_id: str,
    module_sha: str,
    args: Sequence[str],
    stdin_parts: Sequence[bytes],
    files: Mapping[str, bytes] | None,
    memory: int | None,
    deterministic: bool,
) -> str:
    """The hex sha256 naming a task's output in the cache (see the module docstring)."""
    names = sorted(files or ())
    parts: list[bytes] = [
        CACHE_KEY_VERSION,
        task_id.encode("utf-8", "surrogatepass"),
        module_sha.encode(),
        b"%d" % len(args),
        *(arg.encode("utf-8", "surrogatepass") for arg in args),
        b"%d" % len(stdin_parts),
        *stdin_parts,
        b"%d" % len(names),
    ]
    for name in names:
        parts.append(name.encode("utf-8", "surrogatepass"))
        parts.append((files or {})[name])
    parts.append(b"" if memory is None else b"%d" % memory)
    parts.append(b"seeded" if deterministic else b"free")
    h = hashlib.sha256()
    for part in parts:  # one update per part: joining would copy inputs of up to 32 MiB
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return h.hexdigest()
