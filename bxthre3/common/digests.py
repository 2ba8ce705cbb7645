"""SHA-256 and HMAC-SHA256 without loading OpenSSL into the process.

`hashlib` and `hmac` load Python's OpenSSL binding (libcrypto): ~4 MB of resident memory
in every process that imports them, which on a phone is a sixth of an idle host. The
interpreter also ships its own SHA-256 (`_sha2` from 3.12, `_sha256` before), fast
enough for what a host hashes: cluster keys once at start and each module once.
"""

from __future__ import annotations

from typing import Any


def _builtin_sha256() -> Any:
    try:
        from _sha2 import sha256  # Python 3.12+
    except ImportError:
        try:
            from _sha256 import sha256  # Python 3.10, 3.11
        except ImportError:  # an interpreter built without them: OpenSSL's, then
            from hashlib import sha256
    return sha256


sha256 = _builtin_sha256()
"""`hashlib.sha256`'s interface: sha256(data).hexdigest(), .digest(), .update()."""

_BLOCK = 64


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    """HMAC-SHA256 (RFC 2104); equals hmac.new(key, message, hashlib.sha256).digest()."""
    if len(key) > _BLOCK:
        key = sha256(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    inner = sha256(bytes(b ^ 0x36 for b in key) + message).digest()
    return sha256(bytes(b ^ 0x5C for b in key) + inner).digest()


def sha256_hex(data: bytes) -> str:
    return sha256(data).hexdigest()


def _compare_digest_function() -> Any:
    try:
        from _operator import _compare_digest  # what hmac.compare_digest falls back to

        return _compare_digest
    except ImportError:  # pragma: no cover  (CPython always has it)
        from hmac import compare_digest

        return compare_digest


compare_digest = _compare_digest_function()
"""Constant-time comparison of two bytes values (hmac.compare_digest, without OpenSSL)."""
