"""Length-prefixed msgpack frames on a byte stream, read and written in pieces.

The host and its executor child talk over two pipes. A pipe holds 64 KiB (1 MiB once
enlarged), while a job carries up to 32 MiB of stdin and a result up to 16 MiB of stdout
plus their files. With blocking writes both ways, the host writing job N+1 and the child
writing result N each waited for the other to read: a deadlock that also stopped the
host's heartbeats. So neither side ever waits for a whole frame: bytes to send wait in a
`SendBuffer` and go out as far as the pipe takes them whenever it is writable, and bytes
received go into a `FrameDecoder` that returns each frame once its last byte arrived.

Both classes are pure (no fd, no clock), so their tests feed them bytes one at a time, in
odd chunks and with corrupt lengths; `write_some` is the one function that touches an fd.

Frame: a 4-byte big-endian body length, then the msgpack body.
"""

from __future__ import annotations

import os
import struct
from collections import deque
from typing import Any

import msgpack

HEADER = struct.Struct(">I")
"""The length prefix of every frame."""

LARGE_BODY_BYTES = 64 * 1024
"""Bodies from this size on are queued as they are rather than copied behind their header."""

WRITEV_CHUNKS = 16
"""Most buffered pieces handed to one writev call."""

MIN_READ_BYTES = 64 * 1024
"""Bytes asked of one read while no large frame is half received.

Asking os.read for 1 MiB when a few hundred bytes wait costs ~17 us (a 1 MiB buffer is
allocated for each call) against ~2 us for 64 KiB: most frames are small."""

MAX_READ_BYTES = 1024 * 1024
"""Bytes asked of one read while a large frame is coming (the enlarged pipe holds this much)."""


def encode_frame(payload: Any) -> tuple[bytes, bytes]:
    """The header and the body of `payload`'s frame (two pieces: a large body is never copied)."""
    body = msgpack.packb(payload, use_bin_type=True)
    return HEADER.pack(len(body)), body


class FrameDecoder:
    """Turns a byte stream, received in pieces of any size, back into frames.

    A length above `max_frame_bytes` or a body msgpack cannot decode raises ValueError:
    the stream is corrupt from there on (there is no way to find the next frame), so the
    caller treats its peer as broken.
    """

    __slots__ = ("_buffer", "max_frame_bytes")

    def __init__(self, max_frame_bytes: int) -> None:
        self._buffer = bytearray()
        self.max_frame_bytes = max_frame_bytes

    @property
    def buffered(self) -> int:
        """Bytes of an unfinished frame held so far (0 between frames)."""
        return len(self._buffer)

    @property
    def wanted(self) -> int:
        """Bytes still missing from the frame being received (0 when its header is not complete either)."""
        buffer = self._buffer
        if len(buffer) < HEADER.size:
            return 0
        (size,) = HEADER.unpack_from(buffer)
        return HEADER.size + size - len(buffer)

    def read_size(self) -> int:
        """How many bytes to ask of the next read: more while a large frame is coming."""
        if len(self._buffer) < HEADER.size:
            return MIN_READ_BYTES
        return max(MIN_READ_BYTES, min(self.wanted, MAX_READ_BYTES))

    def feed(self, data: bytes) -> list[Any]:
        """Take the next bytes of the stream; return the frames they complete, oldest first."""
        buffer = self._buffer
        if not buffer and len(data) >= HEADER.size:
            (size,) = HEADER.unpack_from(data)
            if len(data) == HEADER.size + size and size <= self.max_frame_bytes:
                return [_unpack(memoryview(data)[HEADER.size :])]  # the usual case: exactly one small frame
        if buffer:
            buffer += data
            source: bytes | bytearray = buffer
        else:
            source = data  # the usual case, a whole small frame: decode it without a copy
        frames: list[Any] = []
        pos = 0
        end = len(source)
        with memoryview(source) as view:
            while end - pos >= HEADER.size:
                (size,) = HEADER.unpack_from(view, pos)
                if size > self.max_frame_bytes:
                    raise ValueError(f"frame of {size} bytes exceeds {self.max_frame_bytes} (corrupt stream?)")
                stop = pos + HEADER.size + size
                if stop > end:
                    break
                # Released here, not when its last reference goes: a sampling profiler (Dask's workers run
                # one) may hold this frame's locals a moment longer, and a live slice of the buffer makes
                # the `del buffer[:pos]` below fail with BufferError.
                with view[pos + HEADER.size : stop] as body:
                    frames.append(_unpack(body))
                pos = stop
        if source is buffer:
            del buffer[:pos]
        elif pos < end:
            buffer += data[pos:] if pos else data
        return frames


def _unpack(body: memoryview) -> Any:
    try:
        return msgpack.unpackb(body, raw=False)
    except Exception as exc:  # msgpack raises several unrelated types
        raise ValueError(f"undecodable frame: {exc}") from exc


class SendBuffer:
    """Frames waiting to go out, oldest first, as far as the other end takes them.

    `pieces()` offers what to write next and `consume(n)` drops the `n` bytes that went;
    nothing here waits, so the caller's loop decides when the fd is worth trying again.
    """

    __slots__ = ("_pieces", "pending")

    def __init__(self) -> None:
        self._pieces: deque[memoryview] = deque()
        self.pending = 0
        """Bytes not written yet."""

    def __bool__(self) -> bool:
        return self.pending > 0

    def add_frame(self, header: bytes, body: bytes) -> None:
        """Queue one frame (as `encode_frame` returns it)."""
        if len(body) >= LARGE_BODY_BYTES:
            self._add(header)
            self._add(body)
        else:
            self._add(header + body)  # one piece: one write for the usual small frame

    def _add(self, data: bytes) -> None:
        if data:
            self._pieces.append(memoryview(data))
            self.pending += len(data)

    def pieces(self, limit: int = WRITEV_CHUNKS) -> list[memoryview]:
        """The next pieces to write, at most `limit` of them."""
        pieces = self._pieces
        return [pieces[0]] if len(pieces) == 1 else [pieces[i] for i in range(min(limit, len(pieces)))]

    def consume(self, written: int) -> None:
        """Forget the first `written` bytes: they are on their way."""
        if written < 0 or written > self.pending:
            raise ValueError(f"consumed {written} bytes of {self.pending}")
        self.pending -= written
        pieces = self._pieces
        while written:
            first = pieces[0]
            if len(first) <= written:
                written -= len(first)
                pieces.popleft()
            else:
                pieces[0] = first[written:]
                written = 0

    def clear(self) -> None:
        """Drop everything (the peer is gone)."""
        self._pieces.clear()
        self.pending = 0


def write_frame_now(fd: int, header: bytes, body: bytes, buffer: SendBuffer) -> bool:
    """Queue a frame behind `buffer` and write what a non-blocking `fd` takes now; True when all went.

    The usual case, a small frame and nothing waiting, costs one os.write and no queueing.
    Raises OSError as `write_some` does.
    """
    if not buffer and len(body) < LARGE_BODY_BYTES:
        data = header + body
        try:
            written = os.write(fd, data)
        except BlockingIOError:
            written = 0
        if written == len(data):
            return True
        buffer.add_frame(data[written:], b"")
        return False
    buffer.add_frame(header, body)
    return write_some(fd, buffer)


def write_some(fd: int, buffer: SendBuffer) -> bool:
    """Write what a non-blocking `fd` takes now; True when `buffer` is empty.

    Raises OSError (BrokenPipeError: the reader is gone) for anything but a full pipe.
    """
    while buffer:
        try:
            written = os.writev(fd, buffer.pieces())
        except BlockingIOError:
            return False
        buffer.consume(written)
    return True
