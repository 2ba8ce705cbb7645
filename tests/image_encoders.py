"""Tiny image encoders for the decoder tests, written apart from bxthre3.tui.image_decode (encoding, not
decoding, so a shared misreading of the formats would have to be made twice, in opposite directions)."""

from __future__ import annotations

import struct
import zlib

Pixel = tuple[int, ...]
"""One pixel's samples at the file's own depth: (grey,), (grey, alpha), (r, g, b), (r, g, b, a) or (index,)."""


def pnm(magic: str, width: int, height: int, maxval: int, pixels: list[list[Pixel]], comment: bool = True) -> bytes:
    """P1-P6; ``pixels[y][x]`` holds the samples (PBM: 1 is black)."""
    head = f"{magic}\n" + ("# made by the test\n" if comment else "") + f"{width} {height}\n"
    if magic not in ("P1", "P4"):
        head += f"{maxval}\n"
    flat = [s for row in pixels for p in row for s in p]
    if magic in ("P1", "P2", "P3"):
        body = "\n".join(" ".join(str(s) for p in row for s in p) for row in pixels) + "\n"
        return head.encode() + body.encode()
    if magic == "P4":
        out = bytearray()
        for row in pixels:
            bits = [p[0] for p in row] + [0] * (-len(row) % 8)
            out += bytes(sum(b << (7 - k) for k, b in enumerate(bits[i : i + 8])) for i in range(0, len(bits), 8))
        return head.encode() + bytes(out)
    if maxval < 256:
        return head.encode() + bytes(flat)
    return head.encode() + b"".join(struct.pack(">H", s) for s in flat)


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _pack_row(row: list[Pixel], depth: int) -> bytes:
    samples = [s for p in row for s in p]
    if depth == 16:
        return b"".join(struct.pack(">H", s) for s in samples)
    if depth == 8:
        return bytes(samples)
    per_byte = 8 // depth
    samples += [0] * (-len(samples) % per_byte)
    return bytes(
        sum(s << (8 - depth * (k + 1)) for k, s in enumerate(samples[i : i + per_byte]))
        for i in range(0, len(samples), per_byte)
    )


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def _filter(kind: int, raw: bytes, prev: bytes, bpp: int) -> bytes:
    """Encode one scanline with filter ``kind`` (the decoder must invert it)."""
    out = bytearray([kind])
    for i, x in enumerate(raw):
        a = raw[i - bpp] if i >= bpp else 0
        b = prev[i] if prev else 0
        c = prev[i - bpp] if prev and i >= bpp else 0
        predictor = (0, a, b, (a + b) // 2, _paeth(a, b, c))[kind]
        out.append((x - predictor) & 0xFF)
    return bytes(out)


ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def png(
    pixels: list[list[Pixel]],
    depth: int,
    colour: int,
    *,
    palette: list[tuple[int, int, int]] | None = None,
    trns: bytes = b"",
    interlace: bool = False,
    filters: tuple[int, ...] = (0, 1, 2, 3, 4),
    idat_parts: int = 2,
) -> bytes:
    """A PNG of ``pixels`` with the filter types cycling through ``filters`` row by row."""
    height, width = len(pixels), len(pixels[0])
    bpp = max(1, depth * CHANNELS[colour] // 8)
    passes = ADAM7 if interlace else ((0, 0, 1, 1),)
    raw = bytearray()
    n = 0
    for x0, y0, dx, dy in passes:
        sub = [row[x0::dx] for row in pixels[y0::dy]]
        if not sub or not sub[0]:
            continue
        prev = b""
        for row in sub:
            packed = _pack_row(row, depth)
            raw += _filter(filters[n % len(filters)], packed, prev, bpp)
            prev = packed
            n += 1
    data = zlib.compress(bytes(raw), 9)
    cut = [len(data) * k // idat_parts for k in range(idat_parts + 1)]
    out = b"\x89PNG\r\n\x1a\n" + chunk(
        b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, int(interlace))
    )
    out += chunk(b"tEXt", b"Comment\x00test")
    if palette is not None:
        out += chunk(b"PLTE", b"".join(bytes(p) for p in palette))
    if trns:
        out += chunk(b"tRNS", trns)
    for k in range(idat_parts):
        out += chunk(b"IDAT", data[cut[k] : cut[k + 1]])
    return out + chunk(b"IEND", b"")
