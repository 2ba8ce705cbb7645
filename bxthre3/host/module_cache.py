"""A host's on-disk cache of modules, keyed by sha256, shared by every host on the device.

Content addressing makes sharing safe: a file's name is its hash, writes go through a
temporary file and an atomic rename, and a file whose bytes do not match is ignored.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..common import paths
from ..common.digests import sha256_hex
from ..common.errors import Bxthre3Error

_SHA_RE = re.compile(r"^[0-9a-f]{64}$")


def default_cache_dir() -> Path:
    return paths.cache_home() / "modules"


class ModuleCache:
    """Files are trusted only after this process has hashed them once (a disk can corrupt,
    another process can write garbage); a file that fails the check is deleted."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._dir_str = os.path.abspath(directory)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            names = [p.stem for p in self.directory.glob("*.wasm")]
        except OSError as exc:
            raise Bxthre3Error(f"cannot use module cache {directory}: {exc.strerror or exc}") from exc
        self._verified: set[str] = {sha for sha in names if _SHA_RE.match(sha) and self._intact(sha)}

    def known(self) -> list[str]:
        return sorted(self._verified)

    def path(self, sha: str) -> Path:
        return self.directory / f"{sha}.wasm"

    def _intact(self, sha: str) -> bool:
        path = self.path(sha)
        try:
            if sha256_hex(path.read_bytes()) == sha:
                return True
            path.unlink()
        except OSError:
            pass
        return False

    def path_text(self, sha: str) -> str:
        """`path(sha)` as an absolute string, without a Path object: asked once per task run."""
        return os.path.join(self._dir_str, sha + ".wasm")

    def has(self, sha: str) -> bool:
        if sha in self._verified and os.path.exists(self.path_text(sha)):
            return True
        self._verified.discard(sha)
        return False

    def put(self, sha: str, data: bytes) -> Path:
        """Store bytes under their hash; refuse bytes that do not hash to ``sha``."""
        if not _SHA_RE.match(sha) or sha256_hex(data) != sha:
            raise ValueError(f"module bytes do not match sha256 {sha[:16]}")
        final = self.path(sha)
        if not (final.exists() and self._intact(sha)):
            tmp = final.with_name(f".{sha}.{os.getpid()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, final)
        self._verified.add(sha)
        return final
