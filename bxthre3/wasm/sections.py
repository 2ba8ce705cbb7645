"""A module as a list of sections, and putting one back together with some replaced or added.

The executor's rewriters (the memory cap in `wasm.sandbox`, the reset function in `wasm.reset`)
only ever append functions, globals, types and exports, so every existing index stays valid and
all they need is: the sections' payloads, each vector section's count and entries, how many
functions and globals are imported, and a way to emit sections in the order the format requires.
"""

from __future__ import annotations

from dataclasses import dataclass

from bxthre3.wasm.inspect import _SECTION_RANK, _read_import, _Reader
from bxthre3.wasm.normalize import uleb

HEADER_BYTES = 8
"""The magic number and version before the first section."""


def name_bytes(text: str) -> bytes:
    """A name as the binary format stores it: its UTF-8 length, then the bytes."""
    raw = text.encode()
    return uleb(len(raw)) + raw


def section_bytes(section_id: int, payload: bytes) -> bytes:
    return bytes([section_id]) + uleb(len(payload)) + payload


@dataclass(frozen=True, slots=True)
class Sections:
    """A module split into its sections, in file order (custom sections included)."""

    header: bytes
    items: tuple[tuple[int, bytes], ...]
    name: str
    """The module's name in error messages."""

    @property
    def ids(self) -> list[int]:
        return [section_id for section_id, _ in self.items]

    def payload(self, section_id: int) -> bytes | None:
        """The payload of the (non-custom) section `section_id`, None when the module has none."""
        for sid, payload in self.items:
            if sid == section_id and sid != 0:
                return payload
        return None

    def counted(self, section_id: int) -> tuple[int, bytes]:
        """A vector section's entry count and the bytes of its entries (0 and nothing when absent)."""
        payload = self.payload(section_id) or b"\x00"
        r = _Reader(payload, 0, len(payload), self.name)
        n = r.uleb()
        return n, payload[r.pos :]

    def imported(self) -> tuple[int, int]:
        """How many functions and how many globals the module imports (they come first in each index space)."""
        payload = self.payload(2)
        funcs = globals_ = 0
        if payload is None:
            return 0, 0
        r = _Reader(payload, 0, len(payload), self.name)
        for _ in range(r.count(4)):
            imp, _memory = _read_import(r)
            if imp.kind.value == "func":
                funcs += 1
            elif imp.kind.value == "global":
                globals_ += 1
        return funcs, globals_

    def assemble(self, new: dict[int, bytes]) -> bytes:
        """The module with the payloads in `new` replacing (or, where missing, added as) those sections.

        A section the module lacks goes where the format's order puts it.
        """
        out = bytearray(self.header)
        present = {sid for sid, _ in self.items if sid != 0}
        pending = sorted((sid for sid in new if sid not in present), key=lambda sid: _SECTION_RANK[sid])
        for section_id, payload in self.items:
            if section_id != 0:
                rank = _SECTION_RANK.get(section_id, 99)
                while pending and _SECTION_RANK[pending[0]] < rank:
                    missing = pending.pop(0)
                    out += section_bytes(missing, new[missing])
            out += section_bytes(section_id, new.get(section_id, payload) if section_id != 0 else payload)
        for missing in pending:
            out += section_bytes(missing, new[missing])
        return bytes(out)


def split(data: bytes, *, name: str) -> Sections:
    """Split a module (already checked by `inspect`) into its sections."""
    items: list[tuple[int, bytes]] = []
    top = _Reader(data, HEADER_BYTES, len(data), name)
    while top.remaining:
        section_id = top.byte()
        size = top.uleb()
        items.append((section_id, top.take(size)))
    return Sections(bytes(data[:HEADER_BYTES]), tuple(items), name)
