"""The output pane's image decoders: every PNM and PNG variant against images a separate encoder made
(tests/image_encoders.py), netpbm's own PNGs when it is installed, and hostile input: huge headers
refused in O(1), zlib bombs bounded, every truncation and corruption a one-line ImageError."""

from __future__ import annotations

import random
import shutil
import struct
import subprocess
import time
import tracemalloc
import zlib

import pytest

from bxthre3.tui.image_decode import BACKGROUND, ImageError, Raster, decode_image, fit, sniff
from tests.image_encoders import chunk, png, pnm

W, H = 13, 7  # odd sizes: partial bytes at low bit depths, every Adam7 pass partly empty


def pattern(w: int, h: int, channels: int, top: int) -> list[list[tuple[int, ...]]]:
    """Samples that differ in every pixel and channel and reach 0 and ``top``."""
    return [
        [tuple((x * 7 + y * 13 + c * 5 + (x * y) % 3) * (top // 7 + 1) % (top + 1) for c in range(channels))
         for x in range(w)]
        for y in range(h)
    ]  # fmt: skip


def to8(v: int, top: int) -> int:
    return (v * 255 + top // 2) // top


def over(v: int, a: int, bg: int, top: int) -> int:
    v8, a8 = to8(v, top), to8(a, top)
    return (v8 * a8 + bg * (255 - a8) + 127) // 255


def full(data: bytes) -> Raster:
    raster = decode_image(data, max_width=10_000, max_height=10_000)
    assert raster is not None
    return raster


def pixels_of(raster: Raster) -> list[list[tuple[int, int, int]]]:
    return [[raster.pixel(x, y) for x in range(raster.width)] for y in range(raster.height)]


# --- PNM -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("magic", ["P2", "P5"])
@pytest.mark.parametrize("maxval", [1, 15, 255, 256, 1000, 65535])
def test_pgm_every_maxval(magic: str, maxval: int) -> None:
    px = pattern(W, H, 1, maxval)
    raster = full(pnm(magic, W, H, maxval, px))
    assert (raster.format, raster.width, raster.height) == ("PGM", W, H)
    want = [[(to8(p[0], maxval),) * 3 for p in row] for row in px]
    assert pixels_of(raster) == want


@pytest.mark.parametrize("magic", ["P3", "P6"])
@pytest.mark.parametrize("maxval", [255, 4095, 65535])
def test_ppm(magic: str, maxval: int) -> None:
    px = pattern(W, H, 3, maxval)
    raster = full(pnm(magic, W, H, maxval, px, comment=magic == "P6"))
    assert raster.format == "PPM"
    assert pixels_of(raster) == [[tuple(to8(s, maxval) for s in p) for p in row] for row in px]


@pytest.mark.parametrize("magic", ["P1", "P4"])
def test_pbm(magic: str) -> None:
    px = pattern(W, H, 1, 1)
    raster = full(pnm(magic, W, H, 1, px))
    assert raster.format == "PBM"
    assert pixels_of(raster) == [[(0, 0, 0) if p[0] else (255, 255, 255) for p in row] for row in px]


def test_plain_pbm_digits_need_no_spaces() -> None:
    raster = full(b"P1\n4 2\n0110\n1001\n")
    assert [raster.pixel(x, 0)[0] for x in range(4)] == [255, 0, 0, 255]


def test_mandel_tile() -> None:
    w, h = 6, 4
    tile = b"MTL1" + struct.pack("<7I", 512, 512, 128, 0, w, h, 256) + bytes(range(w * h))
    raster = full(tile)
    assert (raster.format, raster.width, raster.height, raster.pixel(5, 3)) == ("MTL1", 6, 4, (23, 23, 23))
    with pytest.raises(ImageError, match="should be 56 bytes"):
        decode_image(tile[:-1])


# --- PNG -------------------------------------------------------------------------------------------------

CASES = [(0, d) for d in (1, 2, 4, 8, 16)] + [(2, 8), (2, 16), (4, 8), (4, 16), (6, 8), (6, 16)]


def expected_png(colour: int, depth: int, px: list[list[tuple[int, ...]]]) -> list[list[tuple[int, int, int]]]:
    top = (1 << depth) - 1
    bg = BACKGROUND
    out = []
    for row in px:
        line = []
        for p in row:
            if colour == 0:
                line.append((to8(p[0], top),) * 3)
            elif colour == 2:
                line.append(tuple(to8(s, top) for s in p))
            elif colour == 4:
                line.append(tuple(over(p[0], p[1], bg[c], top) for c in range(3)))
            else:
                line.append(tuple(over(p[c], p[3], bg[c], top) for c in range(3)))
        out.append(line)
    return out


@pytest.mark.parametrize("interlace", [False, True])
@pytest.mark.parametrize(("colour", "depth"), CASES)
def test_png_every_colour_type_and_depth(colour: int, depth: int, interlace: bool) -> None:
    top = (1 << depth) - 1
    px = pattern(W, H, {0: 1, 2: 3, 4: 2, 6: 4}[colour], top)
    raster = full(png(px, depth, colour, interlace=interlace))
    assert (raster.format, raster.source_width, raster.source_height) == ("PNG", W, H)
    assert pixels_of(raster) == expected_png(colour, depth, px)


@pytest.mark.parametrize("interlace", [False, True])
@pytest.mark.parametrize("depth", [1, 2, 4, 8])
def test_png_palette_with_transparency(depth: int, interlace: bool) -> None:
    colours = 1 << depth
    palette = [(i * 37 % 256, i * 91 % 256, 255 - i) for i in range(colours)]
    alpha = bytes([0, 128][: colours - 1])  # index 0 transparent, index 1 half (at 1 bit: only index 0)
    px = pattern(W, H, 1, colours - 1)
    raster = full(png(px, depth, 3, palette=palette, trns=alpha, interlace=interlace))
    want = []
    for row in px:
        line = []
        for (i,) in row:
            a = alpha[i] if i < len(alpha) else 255
            line.append(tuple((palette[i][c] * a + BACKGROUND[c] * (255 - a) + 127) // 255 for c in range(3)))
        want.append(line)
    assert pixels_of(raster) == want


def test_png_grey_and_rgb_colour_keys() -> None:
    grey = [[(0,), (5,), (9,)]]
    raster = full(png(grey, 4, 0, trns=struct.pack(">H", 5)))
    assert pixels_of(raster) == [[(0, 0, 0), BACKGROUND, (153, 153, 153)]]
    rgb = [[(1, 2, 3), (4, 5, 6)]]
    raster = full(png(rgb, 16, 2, trns=struct.pack(">HHH", 4, 5, 6)))
    assert pixels_of(raster) == [[(0, 0, 0), BACKGROUND]]


@pytest.mark.parametrize("filters", [(0,), (1,), (2,), (3,), (4,)])
def test_png_each_filter_alone(filters: tuple[int, ...]) -> None:
    px = pattern(40, 9, 3, 255)
    assert pixels_of(full(png(px, 8, 2, filters=filters))) == expected_png(2, 8, px)


NETPBM = shutil.which("pnmtopng")


@pytest.mark.skipif(NETPBM is None, reason="netpbm's pnmtopng is not installed (apt-get install netpbm)")
@pytest.mark.parametrize("args", [[], ["-interlace"], ["-compression", "0"]])
@pytest.mark.parametrize(("magic", "maxval", "colours"), [("P6", 255, 3), ("P5", 255, 1), ("P6", 65535, 3),
                                                          ("P5", 3, 1), ("P6", 1, 3)])  # fmt: skip
def test_png_made_by_netpbm(args: list[str], magic: str, maxval: int, colours: int) -> None:
    """A real encoder's choices (its own filters, bit depths, palettes for few colours) decode to the pixels
    of the PNM it was given."""
    source = pnm(magic, 37, 23, maxval, pattern(37, 23, colours, maxval))
    made = subprocess.run([NETPBM, *args], input=source, capture_output=True, check=True, timeout=30).stdout
    assert pixels_of(full(made)) == pixels_of(full(source))


# --- downscaling ---------------------------------------------------------------------------------------


def test_fit_keeps_the_aspect_ratio() -> None:
    assert fit(800, 600, 200, 240) == (200, 150)
    assert fit(100, 50, 200, 240) == (100, 50)
    assert fit(100, 50, 200, 240, enlarge=True) == (200, 100)
    assert fit(1, 30000, 200, 240) == (1, 240)


def test_downscale_is_an_area_average() -> None:
    """A checkerboard of single pixels averages to grey; a left/right split keeps its edge."""
    board = [[(255 * ((x + y) % 2),) for x in range(400)] for y in range(400)]
    raster = decode_image(pnm("P5", 400, 400, 255, board), max_width=100, max_height=100)
    assert raster is not None and (raster.width, raster.height) == (100, 100)
    assert {raster.pixel(x, y)[0] for x in range(100) for y in range(100)} <= {127, 128}
    split = [[(0,) if x < 300 else (255,) for x in range(600)] for y in range(60)]
    raster = decode_image(pnm("P5", 600, 60, 255, split), max_width=200, max_height=240)
    assert raster is not None and (raster.width, raster.height) == (200, 20)
    assert raster.pixel(99, 0) == (0, 0, 0) and raster.pixel(100, 0) == (255, 255, 255)


@pytest.mark.parametrize("interlace", [False, True])
def test_png_downscales_while_decoding(interlace: bool) -> None:
    px = [[(x % 256, y % 256, 7) for x in range(500)] for y in range(300)]
    raster = decode_image(png(px, 8, 2, interlace=interlace), max_width=200, max_height=240)
    assert raster is not None and (raster.width, raster.height, raster.source_width) == (200, 120, 500)
    r, g, b = raster.pixel(0, 0)
    assert (r, b) == (1, 7) and 0 <= g <= 2  # the mean of x 0..1 (row 0.. sampled)


# --- hostile input -------------------------------------------------------------------------------------


def png_header_only(width: int, height: int, depth: int = 8, colour: int = 0) -> bytes:
    ihdr = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + ihdr + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    "data",
    [
        png_header_only(100_000, 100_000),
        png_header_only(30_000, 30_000, 16, 6),
        png_header_only(2**31 - 1, 1),
        b"P5\n100000 100000\n255\n" + bytes(100),
        b"P6 30000 30000 65535\n" + bytes(100),
        b"P4 999999999 1\n",
        b"P2 99999999999999999999 1 255\n1",
        b"P5" + (b" #" + b"#" * 40 + b"\n" * 40) * 40 + b"x",  # backtracks for ever in a naive regex
    ],
    ids=["png-1e5", "png-rgba16-3e4", "png-2e31", "pgm-1e5", "ppm-3e4", "pbm-1e9", "pgm-20-digits", "comments"],
)
def test_huge_headers_are_refused_at_once(data: bytes) -> None:
    start = time.perf_counter()
    with pytest.raises(ImageError) as caught:
        decode_image(data)
    assert time.perf_counter() - start < 0.05
    assert "\n" not in str(caught.value)


def test_a_sample_of_a_million_digits_is_parsed_in_bounded_pieces() -> None:
    start = time.perf_counter()
    raster = decode_image(b"P2 1 1 255 " + b"9" * 1_000_000)
    assert raster is not None and raster.pixel(0, 0) == (255, 255, 255)  # out of range: clamped
    assert time.perf_counter() - start < 1


def test_zlib_bomb_is_bounded() -> None:
    """1000x1000 grey (1 MB of scanlines) whose IDAT inflates to 256 MiB: inflating stops at 1 MB."""
    squeeze = zlib.compressobj(1)
    zero = bytes(1 << 20)
    bomb = b"".join(squeeze.compress(zero) for _ in range(256)) + squeeze.flush()
    data = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 1000, 1000, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", bomb)
        + chunk(b"IEND", b"")
    )
    start = time.perf_counter()
    raster = decode_image(data)
    assert time.perf_counter() - start < 5  # ~0.5 s idle: inflating stopped after 1 MB of the 256 MiB
    assert raster is not None and raster.pixel(0, 0) == (0, 0, 0)
    tracemalloc.start()
    try:
        decode_image(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 1024 * 1024, peak


SAMPLES = {
    "png": png(pattern(W, H, 4, 255), 8, 6),
    "png-interlaced": png(pattern(W, H, 1, 3), 2, 3, palette=[(1, 2, 3)] * 4, interlace=True),
    "pgm": pnm("P5", W, H, 65535, pattern(W, H, 1, 65535)),
    "ppm-plain": pnm("P3", W, H, 255, pattern(W, H, 3, 255)),
    "pbm": pnm("P4", W, H, 1, pattern(W, H, 1, 1)),
}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_every_truncation_is_one_clear_error(name: str) -> None:
    data = SAMPLES[name]
    assert full(data) is not None
    for n in range(len(data)):
        try:
            result = decode_image(data[:n])
        except ImageError as exc:
            assert str(exc) and "\n" not in str(exc)
        else:  # too short to claim a format, or a plain file cut inside its last number
            assert (result is None and sniff(data[:n]) is None) or (name.endswith("plain") and n > len(data) - 4), n


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_corrupted_bytes_never_escape_as_other_errors(name: str) -> None:
    data = SAMPLES[name]
    rng = random.Random(name)
    for _ in range(300):
        broken = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            broken[rng.randrange(len(broken))] = rng.randrange(256)
        try:
            decode_image(bytes(broken))
        except ImageError as exc:
            assert "\n" not in str(exc)


def test_png_errors_say_what_is_wrong() -> None:
    good = SAMPLES["png"]
    bad_crc = bytearray(good)
    bad_crc[20] ^= 1  # inside IHDR
    with pytest.raises(ImageError, match="CRC"):
        decode_image(bytes(bad_crc))
    with pytest.raises(ImageError, match="colour type 2 with bit depth 4"):
        decode_image(png_header_only(4, 4, 4, 2))
    with pytest.raises(ImageError, match="without a PLTE"):
        decode_image(png([[(0,)]], 8, 3))
    short = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 0, 0, 0, 0))
    short += chunk(b"IDAT", zlib.compress(b"\x00" * 6)) + chunk(b"IEND", b"")
    with pytest.raises(ImageError, match="ends early"):
        decode_image(short)


def test_a_decode_that_takes_too_long_gives_up_in_one_line() -> None:
    calls = []

    def give_up() -> bool:
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(ImageError, match="too slow to decode for a preview"):
        decode_image(png(pattern(8, 64, 3, 255), 8, 2), give_up=give_up)
    assert decode_image(png(pattern(8, 64, 3, 255), 8, 2), give_up=lambda: False) is not None


def test_not_an_image_is_none() -> None:
    assert decode_image(b"hello") is None
    assert decode_image(b"") is None
    assert decode_image(b"P7\nWIDTH 1\n") is None
    assert sniff(b"P5 1 1 255\n\x00") == "PGM"
