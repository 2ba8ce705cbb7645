"""A stop flag that a poll loop can sleep on.

The host and controller loops sleep in `zmq.Poller.poll` for up to 100 ms at a time. A plain
`threading.Event` set by a SIGTERM handler or by `LocalCluster.close()` is only noticed when
that sleep ends, so every `bxthre3 run` paid up to 100 ms per process just to stop. A loop
registers `StopEvent.fileno()` in its poller and wakes the moment the flag is set.
"""

from __future__ import annotations

import os
import threading


class StopEvent(threading.Event):
    """A `threading.Event` whose `fileno()` turns readable, and stays readable, once it is set."""

    def __init__(self) -> None:
        super().__init__()
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._write_fd, False)
        self._closed = False

    def set(self) -> None:
        super().set()
        if self._closed:  # the fd number may belong to another file by now
            return
        try:
            os.write(self._write_fd, b"\0")  # from a signal handler too: a non-blocking write of one byte
        except OSError:  # pipe full (already readable) or closed: the flag itself is set either way
            pass

    def fileno(self) -> int:
        return self._read_fd

    def close(self) -> None:
        """Free the pipe; only once no loop polls it any more."""
        if not self._closed:
            self._closed = True
            os.close(self._read_fd)
            os.close(self._write_fd)


def wake_fd(stop: threading.Event) -> int | None:
    """The fd to poll for ``stop``, or None for a plain Event (then the loop's timeout notices it)."""
    return stop.fileno() if isinstance(stop, StopEvent) and not stop._closed else None
