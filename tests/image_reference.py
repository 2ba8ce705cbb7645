"""Python twins of the image pipeline modules (wasm_modules/src/img_*.c), so tests can check
their outputs byte for byte: the same integer arithmetic, C's truncating division included."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Image:
    """An 8-bit netpbm image: 1 channel (PGM) or 3 (PPM)."""

    width: int
    height: int
    channels: int
    px: bytes

    def encode(self) -> bytes:
        magic = b"P5" if self.channels == 1 else b"P6"
        return magic + b"\n%d %d\n255\n" % (self.width, self.height) + self.px


def decode(data: bytes) -> Image:
    """A binary PGM/PPM with maxval 255 (comments allowed in the header)."""
    match = re.match(rb"P([56])((?:\s+(?:#[^\n]*\n\s*)*\d+){3})\s", data)
    assert match, "not a binary netpbm image"
    width, height, maxval = (int(n) for n in re.findall(rb"\d+", re.sub(rb"#[^\n]*\n", b"", match.group(2))))
    assert maxval == 255
    channels = 1 if match.group(1) == b"5" else 3
    px = data[match.end() :]
    assert len(px) == width * height * channels
    return Image(width, height, channels, px)


def _c_div(a: int, b: int) -> int:
    """C's integer division (truncates toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def _clamp(v: int, n: int) -> int:
    return 0 if v < 0 else n - 1 if v >= n else v


def blur(im: Image, radius: int) -> Image:
    w, h, p = im.width, im.height, im.px
    out = bytearray()
    area = (2 * radius + 1) ** 2
    for y in range(h):
        for x in range(w):
            total = 0
            for dy in range(-radius, radius + 1):
                row = _clamp(y + dy, h) * w
                for dx in range(-radius, radius + 1):
                    total += p[row + _clamp(x + dx, w)]
            out.append(total // area)
    return Image(w, h, 1, bytes(out))


def edges(im: Image) -> Image:
    w, h, p = im.width, im.height, im.px

    def at(x: int, y: int) -> int:
        return p[_clamp(y, h) * w + _clamp(x, w)]

    out = bytearray()
    for y in range(h):
        for x in range(w):
            gx = (
                at(x + 1, y - 1)
                + 2 * at(x + 1, y)
                + at(x + 1, y + 1)
                - at(x - 1, y - 1)
                - 2 * at(x - 1, y)
                - at(x - 1, y + 1)
            )
            gy = (
                at(x - 1, y + 1)
                + 2 * at(x, y + 1)
                + at(x + 1, y + 1)
                - at(x - 1, y - 1)
                - 2 * at(x, y - 1)
                - at(x + 1, y - 1)
            )
            out.append(min(255, (abs(gx) + abs(gy)) // 4))
    return Image(w, h, 1, bytes(out))


def palette(text: str) -> list[tuple[int, int, int, int]]:
    return [
        tuple(int(v) for v in line.split())  # type: ignore[misc]
        for line in text.splitlines()
        if line.strip() and not line.startswith("#")
    ]


def compose(base: Image, edge: Image, stops: list[tuple[int, int, int, int]]) -> tuple[Image, Image, bytes]:
    """(colour.ppm, thumbs/colour_half.ppm, manifest.txt) as img_compose writes them."""
    out = bytearray()
    for v, e in zip(base.px, edge.px, strict=True):
        s = 0
        while stops[s + 1][0] < v:
            s += 1
        a, b = stops[s], stops[s + 1]
        for c in range(1, 4):
            value = a[c] + _c_div((b[c] - a[c]) * (v - a[0]), b[0] - a[0])
            out.append(value * (255 - e) // 255)
    colour = Image(base.width, base.height, 3, bytes(out))
    hw, hh = max(1, base.width // 2), max(1, base.height // 2)
    half = bytearray()
    for y in range(hh):
        for x in range(hw):
            for c in range(3):
                total = 0
                for k in range(4):
                    sx = _clamp(2 * x + (k & 1), colour.width)
                    sy = _clamp(2 * y + (k >> 1), colour.height)
                    total += colour.px[3 * (sy * colour.width + sx) + c]
                half.append(total // 4)
    thumb = Image(hw, hh, 3, bytes(half))
    manifest = b"".join(
        b"%s %d %d %d fnv1a32=%08x\n" % (name, im.width, im.height, len(im.encode()), fnv1a(im.encode()))
        for name, im in ((b"colour.ppm", colour), (b"thumbs/colour_half.ppm", thumb))
    )
    return colour, thumb, manifest


def fnv1a(data: bytes) -> int:
    h = 2166136261
    for byte in data:
        h = ((h ^ byte) * 16777619) & 0xFFFFFFFF
    return h
