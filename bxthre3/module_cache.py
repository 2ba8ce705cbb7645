"""A host's on-disk cache of modules, keyed by sha256, shared by every host on the device.

Content addressing makes sharing safe: a file's name is its hash, writes go through a
temporary file and an atomic rename, and a file whose bytes do not match is ignored.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

_SHA_RE = re.compile(r"^[0-9a-f]{64}$")


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "bxthre3" / "modules"


class ModuleCache:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self._known: set[str] = {
            p.stem for p in self.directory.glob("*.wasm") if _SHA_RE.match(p.stem)
        }

    def known(self) -> list[str]:
        return sorted(self._known)

    def path(self, sha: str) -> Path:
        return self.directory / f"{sha}.wasm"

    def has(self, sha: str) -> bool:
        if sha in self._known and self.path(sha).exists():
            return True
        self._known.discard(sha)
        return False

    def put(self, sha: str, data: bytes) -> Path:
        """Store bytes under their hash; refuse bytes that do not hash to ``sha``."""
        if not _SHA_RE.match(sha) or hashlib.sha256(data).hexdigest() != sha:
            raise ValueError(f"module bytes do not match sha256 {sha[:16]}")
        final = self.path(sha)
        if not final.exists():
            tmp = final.with_name(f".{sha}.{os.getpid()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, final)
        self._known.add(sha)
        return final
