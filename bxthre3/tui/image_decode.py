"""Pure decoders for the images tasks write (PNM, PNG, mandel_tile tiles) into a small RGB raster for a preview.

Pure Python and the standard library's zlib only: the package must install on Termux, where an imaging
library is a heavy native build. The output pane shows at most ~200x240 pixels, so a decoder downscales
while it reads (area average over at most `ROWS_PER_BIN` sampled rows per output row) and never holds a
full-size RGB copy of a non-interlaced image.

A task's output is untrusted: every size a header claims is checked in O(1) against `MAX_SIDE`,
`MAX_PIXELS` and `MAX_RAW_BYTES` before anything is allocated, inflating is bounded by the size the header
implies (a zlib bomb stops there), and every malformed input raises one `ImageError` with a one-line
message. `decode_image` returns None for data that does not claim to be an image at all.
"""

from __future__ import annotations

import re
import struct
import sys
import zlib
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import accumulate

MAX_SIDE = 32768
"""Widest or tallest image decoded (PNG's own limit is 2^31 - 1)."""

MAX_PIXELS = 64 * 1024 * 1024
"""Most pixels decoded: 64 Mpixel is far above what a 16 MiB output can carry uncompressed."""

MAX_RAW_BYTES = 64 * 1024 * 1024
"""Most inflated PNG bytes (scanlines with their filter bytes): the bound of a zlib bomb."""

MAX_INTERLACED_PIXELS = 8 * 1024 * 1024
"""An Adam7 PNG is assembled at full size before it is scaled: at most this many pixels."""

PREVIEW_WIDTH = 200
PREVIEW_HEIGHT = 240
"""The largest raster decoded: ~200x120 cells of half blocks."""

ROWS_PER_BIN = 4
"""Source rows averaged into one output row when shrinking (all columns are); bounds the work for tall images."""

BACKGROUND = (128, 128, 128)
"""What transparent pixels are composited over: mid grey reads on both themes and shows black and white art."""

INFLATE_STEP = 1 << 20
"""Bytes inflated at a time: memory stays bounded by one step plus a scanline."""


class ImageError(ValueError):
    """The data claims to be an image but cannot be decoded; the message is one line for the output pane."""


@dataclass(frozen=True, slots=True)
class Raster:
    """A decoded (and usually downscaled) image: ``rgb`` holds ``width * height`` RGB triples, row by row."""

    width: int
    height: int
    rgb: bytes
    format: str
    """PNG, PGM, PPM, PBM or MTL1 (a mandel_tile tile)."""
    source_width: int
    source_height: int

    def pixel(self, x: int, y: int) -> tuple[int, int, int]:
        i = 3 * (y * self.width + x)
        return self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNM_FORMATS = {b"P1": "PBM", b"P2": "PGM", b"P3": "PPM", b"P4": "PBM", b"P5": "PGM", b"P6": "PPM"}
MTL1_HEADER = 32


def sniff(data: bytes) -> str | None:
    """The image format ``data`` claims by its first bytes, or None (then it is text or binary, not an image)."""
    if data.startswith(PNG_SIGNATURE):
        return "PNG"
    if len(data) >= 3 and data[:2] in _PNM_FORMATS and data[2:3] in b" \t\r\n#":
        return _PNM_FORMATS[data[:2]]
    if data.startswith(b"MTL1") and len(data) >= MTL1_HEADER:
        return "MTL1"
    return None


def fit(width: int, height: int, max_width: int, max_height: int, *, enlarge: bool = False) -> tuple[int, int]:
    """The largest size within ``max_width x max_height`` with the aspect ratio of ``width x height``
    (never larger than the image unless ``enlarge``); at least 1x1."""
    scale = min(max_width / width, max_height / height)
    if not enlarge:
        scale = min(scale, 1.0)
    return max(1, min(max_width, round(width * scale))), max(1, min(max_height, round(height * scale)))


def decode_image(
    data: bytes,
    *,
    max_width: int = PREVIEW_WIDTH,
    max_height: int = PREVIEW_HEIGHT,
    give_up: Callable[[], bool] | None = None,
) -> Raster | None:
    """``data`` as an RGB raster that fits ``max_width x max_height``; None when it is not an image format.

    Raises `ImageError` (one line) when it claims a format but is malformed, truncated or too large, or
    when ``give_up()`` turns true while it decodes (the caller's clock: pure Python unfilters a large PNG
    slowly, a 2048x2048 Paeth-filtered RGB PNG takes seconds; this module reads no clock itself).
    """
    kind = sniff(data)
    if kind is None:
        return None
    try:
        if kind == "PNG":
            return _decode_png(data, max_width, max_height, give_up)
        if kind == "MTL1":
            return _decode_mtl1(data, max_width, max_height)
        return _decode_pnm(data, max_width, max_height, give_up)
    except ImageError:
        raise
    except (ValueError, IndexError, struct.error, zlib.error, MemoryError, OverflowError) as exc:
        raise ImageError(f"not a valid {kind}: {type(exc).__name__}: {exc}".splitlines()[0]) from None


def _check_give_up(give_up: Callable[[], bool] | None, kind: str) -> None:
    if give_up is not None and give_up():
        raise ImageError(f"{kind} is too slow to decode for a preview (pure Python); save it with --out to view it")


def _check_size(kind: str, width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise ImageError(f"{kind} of {width}x{height} pixels has no pixels")
    if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
        raise ImageError(f"{kind} of {width}x{height} pixels is larger than the viewer decodes ({MAX_SIDE} a side)")


# --- downscaling ------------------------------------------------------------------------------------------


class _Shrinker:
    """Area-averages rows of ``channels`` 8-bit samples (1: grey, 3: RGB) into a raster of at most the
    target size. Rows may arrive in any order (Adam7 does not); only rows in `wanted` are looked at."""

    def __init__(self, width: int, height: int, channels: int, max_width: int, max_height: int) -> None:
        self.width, self.height, self.channels = width, height, channels
        self.out_w, self.out_h = fit(width, height, max_width, max_height)
        self.x_bins = [(j * width // self.out_w, (j + 1) * width // self.out_w) for j in range(self.out_w)]
        self.wanted: dict[int, int] = {}
        """Source row -> output row, for the rows sampled."""
        for i in range(self.out_h):
            y0, y1 = i * height // self.out_h, (i + 1) * height // self.out_h
            span = y1 - y0
            for k in range(min(ROWS_PER_BIN, span)):
                self.wanted[y0 + k * span // min(ROWS_PER_BIN, span)] = i
        self.rows_in_bin = [0] * self.out_h
        self.sums = [[0] * (self.out_w * channels) for _ in range(self.out_h)]

    def add(self, y: int, samples: bytes | bytearray) -> None:
        """Add source row ``y`` (``width * channels`` samples) if it is one of the sampled rows."""
        i = self.wanted.get(y)
        if i is None:
            return
        ch = self.channels
        sums = self.sums[i]
        self.rows_in_bin[i] += 1
        for j, (x0, x1) in enumerate(self.x_bins):
            for c in range(ch):
                sums[j * ch + c] += sum(samples[x0 * ch + c : x1 * ch : ch])

    def raster(self, kind: str) -> Raster:
        ch = self.channels
        widths = [x1 - x0 for x0, x1 in self.x_bins for _ in range(ch)]
        out = bytearray(self.out_w * self.out_h * 3)
        for i, sums in enumerate(self.sums):
            rows = self.rows_in_bin[i]
            if not rows:  # cannot happen for a whole image: every output row has a source row
                raise ImageError(f"{kind}: no pixels for output row {i}")
            row = bytes((s + rows * n // 2) // (rows * n) for s, n in zip(sums, widths, strict=True))
            base = i * self.out_w * 3
            if ch == 3:
                out[base : base + 3 * self.out_w] = row
            else:
                for c in range(3):
                    out[base + c : base + 3 * self.out_w : 3] = row
        return Raster(self.out_w, self.out_h, bytes(out), kind, self.width, self.height)


# --- PNM (PBM, PGM, PPM; plain and raw) ---------------------------------------------------------------------

_PLAIN_SAMPLE = re.compile(rb"#[^\r\n]*|(\d{1,6})")
_PBM_PLAIN_SAMPLE = re.compile(rb"#[^\r\n]*|([01])")
_WHITESPACE = frozenset(b" \t\r\n\v\f")
_DIGITS = frozenset(b"0123456789")


def _pnm_header(data: bytes, fields: int) -> tuple[list[int], int]:
    """The header's numbers after the magic, and the offset just past the one whitespace that ends it.

    Read byte by byte, not with a regular expression: comments and whitespace may interleave freely, and a
    pattern for that backtracks exponentially on a hostile header."""
    pos, end = 2, len(data)
    numbers: list[int] = []
    while len(numbers) < fields:
        while pos < end and (data[pos] in _WHITESPACE or data[pos] == 0x23):  # '#': a comment to the line end
            if data[pos] == 0x23:
                newline = data.find(b"\n", pos)
                pos = end if newline < 0 else newline
            pos += 1
        start = pos
        while pos < end and data[pos] in _DIGITS and pos - start < 10:
            pos += 1
        if pos == start:
            raise ImageError(f"truncated or malformed header: expected {fields} numbers after {data[:2].decode()}")
        if pos - start > 9:
            raise ImageError(f"header number {data[start : start + 12].decode()}… is too large")
        numbers.append(int(data[start:pos]))
    if pos >= end or data[pos] not in _WHITESPACE:
        raise ImageError("no whitespace after the header")
    return numbers, pos + 1


def _decode_pnm(data: bytes, max_width: int, max_height: int, give_up: Callable[[], bool] | None = None) -> Raster:
    magic = data[:2]
    kind = _PNM_FORMATS[magic]
    is_pbm = magic in (b"P1", b"P4")
    (width, height, *rest), start = _pnm_header(data, 2 if is_pbm else 3)
    _check_size(kind, width, height)
    maxval = 1 if is_pbm else rest[0]
    if not 1 <= maxval <= 65535:
        raise ImageError(f"{kind} maxval {maxval} is outside 1..65535")
    channels = 3 if magic in (b"P3", b"P6") else 1
    shrink = _Shrinker(width, height, channels, max_width, max_height)
    if magic == b"P4":
        _pbm_raw_rows(data, start, width, height, shrink)
    elif magic in (b"P5", b"P6"):
        _pnm_raw_rows(data, start, width, height, channels, maxval, shrink)
    else:
        _pnm_plain_rows(data, start, width, height, channels, maxval, is_pbm, shrink, give_up)
    return shrink.raster(kind)


def _scale_table(maxval: int) -> bytes:
    """Sample value -> 0..255, for maxval < 256 (a bytes.translate table)."""
    return bytes((v * 255 + maxval // 2) // maxval if v <= maxval else 255 for v in range(256))


def _pnm_raw_rows(
    data: bytes, start: int, width: int, height: int, channels: int, maxval: int, shrink: _Shrinker
) -> None:
    depth = 1 if maxval < 256 else 2
    row_bytes = width * channels * depth
    if len(data) - start < row_bytes * height:  # O(1): a header claiming more than was sent
        raise ImageError(
            f"truncated: {width}x{height} pixels need {row_bytes * height} bytes, {len(data) - start} follow the header"
        )
    table = _scale_table(maxval) if depth == 1 and maxval != 255 else None
    for y in shrink.wanted:
        row = data[start + y * row_bytes : start + (y + 1) * row_bytes]
        if depth == 2:
            row = _wide_to_8bit(row, maxval)
        elif table is not None:
            row = row.translate(table)
        shrink.add(y, row)


def _wide_to_8bit(row: bytes, maxval: int) -> bytes:
    """Big-endian 16-bit samples to 0..255, rounded (as the plain formats are)."""
    values = array("H", row)
    if sys.byteorder == "little":
        values.byteswap()
    return bytes(min(255, (v * 255 + maxval // 2) // maxval) for v in values)


def _bit_table(one: int, zero: int) -> list[bytes]:
    """Byte -> its 8 bits (most significant first) as samples ``one``/``zero``."""
    return [bytes(one if b >> (7 - k) & 1 else zero for k in range(8)) for b in range(256)]


_PBM_BITS = _bit_table(0, 255)  # PBM: 1 is black


def _pbm_raw_rows(data: bytes, start: int, width: int, height: int, shrink: _Shrinker) -> None:
    row_bytes = (width + 7) // 8
    if len(data) - start < row_bytes * height:
        raise ImageError(f"truncated: {width}x{height} bits need {row_bytes * height} bytes")
    for y in shrink.wanted:
        row = data[start + y * row_bytes : start + (y + 1) * row_bytes]
        shrink.add(y, b"".join(_PBM_BITS[b] for b in row)[:width])


def _pnm_plain_rows(
    data: bytes,
    start: int,
    width: int,
    height: int,
    channels: int,
    maxval: int,
    is_pbm: bool,
    shrink: _Shrinker,
    give_up: Callable[[], bool] | None,
) -> None:
    """Plain (ASCII) PNM: read sample by sample (lazily: the data is at most one output, 16 MiB)."""
    pattern = _PBM_PLAIN_SAMPLE if is_pbm else _PLAIN_SAMPLE
    samples = (int(m.group(1)) for m in pattern.finditer(data, start) if m.group(1) is not None)
    per_row = width * channels
    last = max(shrink.wanted)
    for y in range(last + 1):
        row = [next(samples, -1) for _ in range(per_row)]  # at most 6 digits each: no huge int() parse
        if row[-1] < 0:
            raise ImageError(f"truncated: row {y} of {height} is incomplete")
        _check_give_up(give_up, "plain PNM")
        if y not in shrink.wanted:
            continue
        if is_pbm:
            shrink.add(y, bytes(0 if v else 255 for v in row))
        else:
            shrink.add(y, bytes(min(255, (v * 255 + maxval // 2) // maxval) for v in row))


# --- mandel_tile tiles (MTL1) -----------------------------------------------------------------------------


def _decode_mtl1(data: bytes, max_width: int, max_height: int) -> Raster:
    """A tile of wasm_modules/src/mandel_tile.c: "MTL1", 7 little-endian u32 (image width, height, x0, y0,
    w, h, max_iter), then w*h grey pixels."""
    _image_w, _image_h, _x0, _y0, w, h, _iters = struct.unpack_from("<7I", data, 4)
    _check_size("MTL1 tile", w, h)
    if len(data) != MTL1_HEADER + w * h:
        raise ImageError(f"MTL1 tile of {w}x{h} pixels should be {MTL1_HEADER + w * h} bytes, not {len(data)}")
    shrink = _Shrinker(w, h, 1, max_width, max_height)
    for y in shrink.wanted:
        shrink.add(y, data[MTL1_HEADER + y * w : MTL1_HEADER + (y + 1) * w])
    return shrink.raster("MTL1")


# --- PNG ----------------------------------------------------------------------------------------------------

_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
"""Adam7 passes: (x0, y0, dx, dy)."""


@dataclass(slots=True)
class _PngHeader:
    width: int
    height: int
    depth: int
    colour: int
    interlaced: bool

    @property
    def bits_per_pixel(self) -> int:
        return self.depth * _CHANNELS[self.colour]

    def row_bytes(self, width: int) -> int:
        return (width * self.bits_per_pixel + 7) // 8

    def passes(self) -> list[tuple[int, int, int, int, int, int]]:
        """(x0, y0, dx, dy, pass width, pass height) of each non-empty pass (one for a plain image)."""
        if not self.interlaced:
            return [(0, 0, 1, 1, self.width, self.height)]
        out = []
        for x0, y0, dx, dy in ADAM7:
            pw, ph = (self.width - x0 + dx - 1) // dx, (self.height - y0 + dy - 1) // dy
            if pw > 0 and ph > 0:
                out.append((x0, y0, dx, dy, pw, ph))
        return out

    def raw_size(self) -> int:
        return sum(ph * (1 + self.row_bytes(pw)) for *_, pw, ph in self.passes())


def _png_chunks(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    pos = len(PNG_SIGNATURE)
    while True:
        if pos + 8 > len(data):
            raise ImageError("truncated PNG: no IEND chunk")
        length, ctype = struct.unpack_from(">I4s", data, pos)
        if length > len(data) - pos - 12:
            raise ImageError(f"truncated PNG: chunk {ctype!r} claims {length} bytes")
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack_from(">I", data, pos + 8 + length)
        if zlib.crc32(ctype + body) != crc:
            raise ImageError(f"PNG chunk {ctype.decode('latin-1')!r} fails its CRC check")
        pos += 12 + length
        yield ctype, body
        if ctype == b"IEND":
            return


def _decode_png(data: bytes, max_width: int, max_height: int, give_up: Callable[[], bool] | None = None) -> Raster:
    header: _PngHeader | None = None
    palette: list[bytes] = []
    trns = b""
    idat: list[bytes] = []
    for ctype, body in _png_chunks(data):
        if header is None and ctype != b"IHDR":
            raise ImageError("PNG does not start with IHDR")
        if ctype == b"IHDR":
            header = _png_header(body)
        elif ctype == b"PLTE":
            if len(body) % 3 or not 1 <= len(body) // 3 <= 256:
                raise ImageError(f"PNG palette of {len(body)} bytes")
            palette = [body[i : i + 3] for i in range(0, len(body), 3)]
        elif ctype == b"tRNS":
            trns = body
        elif ctype == b"IDAT":
            idat.append(body)
        elif ctype[0] & 0x20 == 0 and ctype != b"IEND":  # an unknown critical chunk: we cannot show it right
            raise ImageError(f"PNG has a critical chunk {ctype.decode('latin-1')!r} this viewer does not know")
    assert header is not None  # the loop raised otherwise (IEND is never the first chunk that passes)
    if header.colour == 3 and not palette:
        raise ImageError("palette PNG without a PLTE chunk")
    if not idat:
        raise ImageError("PNG without image data (IDAT)")
    to_samples, channels = _png_converter(header, palette, trns)
    shrink = _Shrinker(header.width, header.height, channels, max_width, max_height)
    rows = _png_scanlines(header, b"".join(idat), give_up)
    if not header.interlaced:
        for _pass, y, row in rows:
            if y in shrink.wanted:
                shrink.add(y, to_samples(row, header.width))
        return shrink.raster("PNG")
    full = bytearray(header.width * header.height * channels)  # bounded by MAX_INTERLACED_PIXELS
    passes = header.passes()
    for index, y, row in rows:
        x0, y0, dx, dy, pw, _ph = passes[index]
        samples = to_samples(row, pw)
        line = (y0 + y * dy) * header.width
        for c in range(channels):
            start = (line + x0) * channels + c
            full[start : start + (pw - 1) * dx * channels + 1 : dx * channels] = samples[c::channels]
    stride = header.width * channels
    for y in shrink.wanted:
        shrink.add(y, full[y * stride : (y + 1) * stride])
    return shrink.raster("PNG")


def _png_header(body: bytes) -> _PngHeader:
    if len(body) != 13:
        raise ImageError(f"PNG IHDR of {len(body)} bytes, not 13")
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(">IIBBBBB", body)
    if colour not in _DEPTHS or depth not in _DEPTHS[colour]:
        raise ImageError(f"PNG colour type {colour} with bit depth {depth} is not valid")
    if compression or filtering or interlace > 1:
        raise ImageError("PNG with an unknown compression, filter or interlace method")
    _check_size("PNG", width, height)
    header = _PngHeader(width, height, depth, colour, bool(interlace))
    raw = header.raw_size()
    if raw > MAX_RAW_BYTES:
        raise ImageError(f"PNG of {width}x{height} pixels inflates to {raw} bytes, over the viewer's {MAX_RAW_BYTES}")
    if header.interlaced and width * height > MAX_INTERLACED_PIXELS:
        raise ImageError(f"interlaced PNG of {width}x{height} pixels is larger than the viewer assembles")
    return header


def _png_scanlines(
    header: _PngHeader, compressed: bytes, give_up: Callable[[], bool] | None = None
) -> Iterator[tuple[int, int, bytes]]:
    """(pass index, row in the pass, unfiltered row bytes) in file order; inflates at most what the header
    implies, a step at a time (a zlib bomb gets no further than `raw_size`)."""
    inflater = zlib.decompressobj()
    pending = compressed
    buffer = bytearray()
    budget = header.raw_size()
    bpp = max(1, header.bits_per_pixel // 8)
    for index, (*_, pw, ph) in enumerate(header.passes()):
        stride = header.row_bytes(pw)
        previous = bytes(stride)
        for y in range(ph):
            while len(buffer) < stride + 1:
                if budget <= 0:
                    raise ImageError("PNG image data is shorter than its size")
                chunk = inflater.decompress(pending, min(INFLATE_STEP, budget))
                pending = inflater.unconsumed_tail
                if not chunk:  # the stream ended (or makes no progress): no more rows will come
                    raise ImageError("truncated PNG: the image data ends early")
                budget -= len(chunk)
                buffer += chunk
            if y % 16 == 0:
                _check_give_up(give_up, "PNG")
            filter_type = buffer[0]
            row = _unfilter(filter_type, bytearray(buffer[1 : stride + 1]), previous, bpp)
            del buffer[: stride + 1]
            previous = row
            yield index, y, row


_HIGH_BITS = 0x80
_LOW_BYTE = (0xFF).__and__


def _unfilter(kind: int, row: bytearray, prev: bytes, bpp: int) -> bytes:
    n = len(row)
    if kind == 0:
        return bytes(row)
    if kind == 1:  # Sub: a running sum per byte of the pixel, mod 256 (accumulate and map run in C)
        for c in range(bpp):
            row[c::bpp] = bytes(map(_LOW_BYTE, accumulate(row[c::bpp])))
    elif kind == 2:  # Up: bytewise addition of two rows at once, carries masked (SWAR on Python ints)
        return _add_bytes(bytes(row), prev)
    elif kind == 3:  # Average (sequential: each byte needs the one to its left, already unfiltered)
        for i in range(min(bpp, n)):
            row[i] = (row[i] + (prev[i] >> 1)) & 0xFF
        for i in range(bpp, n):
            row[i] = (row[i] + ((row[i - bpp] + prev[i]) >> 1)) & 0xFF
    elif kind == 4:  # Paeth (sequential, the hot loop of a photo-like PNG: kept free of branches it can avoid)
        for i in range(min(bpp, n)):  # no left neighbour: the predictor is the byte above
            row[i] = (row[i] + prev[i]) & 0xFF
        for i in range(bpp, n):
            a, b, c = row[i - bpp], prev[i], prev[i - bpp]
            pa, pb, pc = b - c, a - c, a + b - c - c
            pa, pb, pc = (pa if pa >= 0 else -pa), (pb if pb >= 0 else -pb), (pc if pc >= 0 else -pc)
            row[i] = (row[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
    else:
        raise ImageError(f"PNG scanline with unknown filter type {kind}")
    return bytes(row)


def _add_bytes(a: bytes, b: bytes) -> bytes:
    """(a[i] + b[i]) mod 256 for every i, computed on two big integers."""
    n = len(a)
    if not n:
        return b""
    low7 = int.from_bytes(b"\x7f" * n, "big")
    high = int.from_bytes(bytes([_HIGH_BITS]) * n, "big")
    x, y = int.from_bytes(a, "big"), int.from_bytes(b, "big")
    return (((x & low7) + (y & low7)) ^ ((x ^ y) & high)).to_bytes(n, "big")


_Converter = Callable[[bytes, int], bytes]


def _png_converter(header: _PngHeader, palette: list[bytes], trns: bytes) -> tuple[_Converter, int]:
    """A function from one unfiltered row (and its width in pixels) to 8-bit samples, and their channel count
    (1 for grey without transparency, else 3: alpha is composited over `BACKGROUND`)."""
    depth, colour = header.depth, header.colour
    if colour == 3:
        table = [palette[i] if i < len(palette) else b"\0\0\0" for i in range(256)]
        if trns:
            table = [_over(rgb, trns[i] if i < len(trns) else 255) for i, rgb in enumerate(table)]
        unpack = _unpacker(depth, scale=False)
        return (lambda row, w: b"".join(table[i] for i in unpack(row, w))), 3
    if colour == 0:
        unpack = _unpacker(depth, scale=True)
        if len(trns) == 2:
            key = struct.unpack(">H", trns)[0]
            raw_unpack = _unpacker(depth, scale=False) if depth < 16 else _wide_samples
            return (lambda row, w: _grey_keyed(unpack(row, w), raw_unpack(row, w), key)), 3
        return unpack, 1
    if colour == 2:
        if len(trns) == 6:
            key_rgb = struct.unpack(">HHH", trns)
            return (lambda row, w: _rgb_keyed(row, w, depth, key_rgb)), 3
        return ((lambda row, w: _wide_to_8bit(row, 65535)) if depth == 16 else (lambda row, w: bytes(row))), 3
    # 4 (grey + alpha) and 6 (RGBA): 16-bit samples are rounded to 8 bits first
    per_pixel = 2 if colour == 4 else 4
    if depth == 16:
        return (lambda row, w: _composite(_wide_to_8bit(row, 65535), w, per_pixel, colour == 4)), 3
    return (lambda row, w: _composite(row, w, per_pixel, colour == 4)), 3


def _unpacker(depth: int, *, scale: bool) -> _Converter:
    """Samples of ``depth`` bits -> one byte each (scaled to 0..255 for grey, kept as indices for palettes)."""
    if depth == 8:
        return lambda row, w: bytes(row[:w])
    if depth == 16:
        return lambda row, w: _wide_to_8bit(row[: 2 * w], 65535)
    per_byte = 8 // depth
    top = (1 << depth) - 1
    factor = 255 // top if scale else 1
    table = [bytes(((b >> (8 - depth * (k + 1))) & top) * factor for k in range(per_byte)) for b in range(256)]
    return lambda row, w: b"".join(table[b] for b in row)[:w]


def _wide_samples(row: bytes, width: int) -> list[int]:
    """16-bit big-endian samples as ints (for comparing with a tRNS key)."""
    return [row[2 * x] << 8 | row[2 * x + 1] for x in range(width)]


def _grey_keyed(samples: bytes, raw: bytes | list[int], key: int) -> bytes:
    """Grey with a tRNS colour key as RGB: pixels whose raw sample is the key show the background."""
    out = bytearray()
    bg = bytes(BACKGROUND)
    for v, r in zip(samples, raw, strict=True):
        out += bg if r == key else bytes((v, v, v))
    return bytes(out)


def _rgb_keyed(row: bytes, width: int, depth: int, key: tuple[int, int, int]) -> bytes:
    out = bytearray()
    bg = bytes(BACKGROUND)
    step = depth // 8
    for x in range(width):
        p = x * 3 * step
        if step == 1:
            raw = (row[p], row[p + 1], row[p + 2])
            rgb = bytes(raw)
        else:
            raw = struct.unpack_from(">HHH", row, p)
            rgb = _wide_to_8bit(row[p : p + 6], 65535)
        out += bg if raw == key else rgb
    return bytes(out)


def _over(rgb: bytes | bytearray, alpha: int) -> bytes:
    if alpha == 255:
        return bytes(rgb)
    return bytes((v * alpha + bg * (255 - alpha) + 127) // 255 for v, bg in zip(rgb, BACKGROUND, strict=True))


def _composite(row: bytes, width: int, per_pixel: int, grey: bool) -> bytes:
    """8-bit grey+alpha or RGBA composited over `BACKGROUND`, as RGB."""
    alpha = row[per_pixel - 1 :: per_pixel]
    if grey:
        colour = row[0::per_pixel]
        rgb = bytearray(3 * width)
        for c in range(3):
            rgb[c::3] = colour
    else:
        rgb = bytearray(3 * width)
        for c in range(3):
            rgb[c::3] = row[c::per_pixel]
    if alpha.count(255) == len(alpha):  # opaque row: nothing to blend
        return bytes(rgb)
    for x, a in enumerate(alpha):
        if a != 255:
            rgb[3 * x : 3 * x + 3] = _over(rgb[3 * x : 3 * x + 3], a)
    return bytes(rgb)
