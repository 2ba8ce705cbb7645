"""Frames on a byte stream received and sent in pieces: the decoder and send buffer alone, then real pipes."""

from __future__ import annotations

import os
import random
import threading

import msgpack
import pytest

from bxthre3.executor.pipe_framing import HEADER, FrameDecoder, SendBuffer, encode_frame, write_frame_now, write_some

LIMIT = 64 * 1024 * 1024

PAYLOADS = [
    {"job_id": 1, "stdin": b"", "args": []},
    {"job_id": 2, "stdin": bytes(range(256)) * 3, "files": {"a/b.txt": b"\x00\xff"}},
    {},
    ["nested", [1, 2, [3]], None, True, 1.5],
    {"job_id": 3, "stdout": random.Random(7).randbytes(300_000)},
]


def stream(payloads: list) -> bytes:
    return b"".join(b"".join(encode_frame(p)) for p in payloads)


def test_a_stream_fed_byte_by_byte_gives_every_frame_exactly_when_its_last_byte_arrives() -> None:
    small = PAYLOADS[:4]
    data = stream(small)
    ends = {len(stream(small[: i + 1])) for i in range(len(small))}
    decoder = FrameDecoder(LIMIT)
    got = []
    for i in range(len(data)):
        frames = decoder.feed(data[i : i + 1])
        assert bool(frames) == (i + 1 in ends), f"byte {i}"
        got += frames
    assert got == small and decoder.buffered == 0


@pytest.mark.parametrize("seed", range(5))
def test_a_stream_fed_in_odd_chunks_gives_the_same_frames(seed: int) -> None:
    data = stream(PAYLOADS)
    rng = random.Random(seed)
    decoder = FrameDecoder(LIMIT)
    got, pos = [], 0
    while pos < len(data):
        size = rng.choice([1, 2, 3, 5, 7, 4095, 4097, 65537, rng.randrange(1, 200_000)])
        got += decoder.feed(data[pos : pos + size])
        pos += size
    assert got == PAYLOADS and decoder.buffered == 0


def test_several_frames_in_one_chunk_and_a_frame_split_over_the_next() -> None:
    data = stream(PAYLOADS)
    cut = len(stream(PAYLOADS[:2])) + 3  # two whole frames and 3 bytes of the third's header
    decoder = FrameDecoder(LIMIT)
    assert decoder.feed(data[:cut]) == PAYLOADS[:2]
    assert decoder.buffered == 3 and decoder.wanted == 0  # header incomplete: size unknown yet
    assert decoder.feed(data[cut:]) == PAYLOADS[2:]


def test_the_decoder_asks_for_large_reads_only_while_a_large_frame_is_coming() -> None:
    header, body = encode_frame({"stdout": b"x" * 5_000_000})
    decoder = FrameDecoder(LIMIT)
    assert decoder.read_size() == 64 * 1024
    decoder.feed(header + body[:10])
    assert decoder.wanted == len(body) - 10
    assert decoder.read_size() == 1024 * 1024
    assert decoder.feed(body[10:]) == [{"stdout": b"x" * 5_000_000}]
    assert decoder.read_size() == 64 * 1024


def test_a_length_over_the_limit_is_refused_as_soon_as_the_header_is_complete() -> None:
    decoder = FrameDecoder(1000)
    assert decoder.feed(HEADER.pack(1001)[:3]) == []
    with pytest.raises(ValueError, match="frame of 1001 bytes exceeds 1000"):
        decoder.feed(HEADER.pack(1001)[3:])
    with pytest.raises(ValueError, match="exceeds"):
        FrameDecoder(1000).feed(b"\xff\xff\xff\xff" + b"garbage")


def test_a_body_that_is_not_msgpack_or_has_trailing_bytes_is_refused() -> None:
    with pytest.raises(ValueError, match="undecodable frame"):
        FrameDecoder(LIMIT).feed(HEADER.pack(1) + b"\xc1")  # 0xc1: never used by msgpack
    body = msgpack.packb(1) + b"\x01"  # a length that covers more than one object
    with pytest.raises(ValueError, match="undecodable frame"):
        FrameDecoder(LIMIT).feed(HEADER.pack(len(body)) + body)


def test_an_empty_body_is_refused_and_an_empty_feed_changes_nothing() -> None:
    decoder = FrameDecoder(LIMIT)
    assert decoder.feed(b"") == []
    with pytest.raises(ValueError, match="undecodable"):
        decoder.feed(HEADER.pack(0))


def test_the_send_buffer_gives_back_exactly_the_bytes_queued_whatever_the_write_sizes() -> None:
    out = SendBuffer()
    for payload in PAYLOADS:
        out.add_frame(*encode_frame(payload))
    expected = stream(PAYLOADS)
    assert out.pending == len(expected)
    rng = random.Random(3)
    sent = bytearray()
    while out:
        pieces = out.pieces()
        assert 1 <= len(pieces) <= 16
        take = min(out.pending, rng.choice([1, 3, 4096, 70_000, rng.randrange(1, 400_000)]))
        sent += b"".join(bytes(p) for p in pieces)[:take]
        out.consume(take)
    assert bytes(sent) == expected and out.pending == 0
    with pytest.raises(ValueError, match="consumed 1 bytes of 0"):
        out.consume(1)


def test_a_small_frame_is_one_piece_a_large_one_is_not_copied_behind_its_header() -> None:
    out = SendBuffer()
    out.add_frame(*encode_frame({"a": 1}))
    assert len(out.pieces()) == 1
    header, body = encode_frame({"stdout": b"x" * 100_000})
    out.add_frame(header, body)
    pieces = out.pieces()
    assert len(pieces) == 3 and pieces[2].obj is body


def nonblocking_pipe(capacity: int | None = None) -> tuple[int, int]:
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    if capacity is not None:
        import fcntl

        fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, capacity)
    return read_fd, write_fd


def test_write_some_stops_at_a_full_pipe_and_goes_on_from_there() -> None:
    read_fd, write_fd = nonblocking_pipe(capacity=4096)
    try:
        payloads = [{"n": i, "data": os.urandom(50_000)} for i in range(4)]
        out = SendBuffer()
        for p in payloads:
            out.add_frame(*encode_frame(p))
        decoder = FrameDecoder(LIMIT)
        got: list = []
        turns = 0
        while not write_some(write_fd, out):
            turns += 1
            assert turns < 10_000, "no progress"
            assert 0 < out.pending < len(stream(payloads))  # partial: the pipe took only so much
            got += decoder.feed(os.read(read_fd, 3000))  # a reader that takes odd amounts
        os.close(write_fd)
        write_fd = -1
        while chunk := os.read(read_fd, 7777):
            got += decoder.feed(chunk)
        assert got == payloads and turns > 10
    finally:
        os.close(read_fd)
        if write_fd >= 0:
            os.close(write_fd)


def test_write_some_to_a_pipe_nobody_reads_any_more_is_broken_pipe() -> None:
    read_fd, write_fd = nonblocking_pipe()
    os.close(read_fd)
    out = SendBuffer()
    out.add_frame(*encode_frame({"a": 1}))
    try:
        with pytest.raises(BrokenPipeError):
            write_some(write_fd, out)
    finally:
        os.close(write_fd)


def test_two_peers_sending_frames_larger_than_the_pipe_to_each_other_at_once_both_finish() -> None:
    """The deadlock of blocking writes both ways: each side writes only what its pipe takes and
    reads whenever its other pipe has data, so both streams complete."""
    import select

    frames = [{"n": i, "data": os.urandom(300_000)} for i in range(3)]
    a_read, b_write = nonblocking_pipe()
    b_read, a_write = nonblocking_pipe()
    received: dict[str, list] = {}

    def peer(name: str, read_fd: int, write_fd: int) -> None:
        out = SendBuffer()
        for f in frames:
            out.add_frame(*encode_frame(f))
        decoder = FrameDecoder(LIMIT)
        got: list = []
        for _ in range(100_000):
            if not out and len(got) == len(frames):
                break
            wanted_write = [write_fd] if out else []
            readable, writable, _ = select.select([read_fd], wanted_write, [], 5.0)
            assert readable or writable, f"{name}: stuck"
            if writable:
                write_some(write_fd, out)
            if readable:
                got += decoder.feed(os.read(read_fd, 65536))
        received[name] = got

    threads = [
        threading.Thread(target=peer, args=("a", a_read, a_write)),
        threading.Thread(target=peer, args=("b", b_read, b_write)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for fd in (a_read, a_write, b_read, b_write):
        os.close(fd)
    assert received == {"a": frames, "b": frames}


def test_a_small_frame_that_only_partly_fits_keeps_its_tail_queued_in_order() -> None:
    read_fd, write_fd = nonblocking_pipe(capacity=4096)
    try:
        out = SendBuffer()
        first = {"fill": b"f" * 1000}
        second = {"small": b"s" * 10_000}  # over PIPE_BUF (not atomic): part of it fits behind the first
        assert write_frame_now(write_fd, *encode_frame(first), out) is True
        assert write_frame_now(write_fd, *encode_frame(second), out) is False
        assert 0 < out.pending < len(b"".join(encode_frame(second)))
        third = {"n": 3}
        assert write_frame_now(write_fd, *encode_frame(third), out) is False, "queued behind the tail, never before it"
        decoder = FrameDecoder(LIMIT)
        got: list = []
        for _ in range(100):
            got += decoder.feed(os.read(read_fd, 65536))
            if write_some(write_fd, out):
                break
        got += decoder.feed(os.read(read_fd, 65536))
        assert got == [first, second, third]
    finally:
        os.close(read_fd)
        os.close(write_fd)
