"""Why a host hears nothing from its controller: a name that does not resolve, nothing listening, a
silent network — or, when a plain TCP connect works, most likely a token the controller refuses.

ZeroMQ retries all four silently and a host used to blame the token for each. The host asks this
module only while it has never registered (so its loop has no work to delay), and at most once per
reconnect: the answer costs one name lookup and one TCP connect, each bounded by ``timeout``.
"""

from __future__ import annotations

import errno
import socket
import threading

from .addresses import Address

PROBE_TIMEOUT_S = 1.0
"""Longest a lookup or a TCP connect may take before it counts as "no answer" (a LAN needs milliseconds)."""


def why_unreachable(address: Address, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """What keeps ``address`` from being reached, or None when a TCP connect to it succeeds now."""
    found: list[object] = []

    def lookup() -> None:
        try:
            found.append(socket.getaddrinfo(address.host, address.port, type=socket.SOCK_STREAM)[0][4])
        except (OSError, UnicodeError) as exc:
            found.append(exc)

    worker = threading.Thread(target=lookup, name="bxthre3-resolve", daemon=True)  # a silent DNS costs `timeout`
    worker.start()
    worker.join(timeout)
    if not found:
        return f"cannot resolve controller host {address.host!r}: no answer from DNS within {timeout:g}s"
    if isinstance(found[0], BaseException):
        return f"cannot resolve controller host {address.host!r} ({found[0]}): check the name, or give its IP address"
    try:
        with socket.create_connection((address.host, address.port), timeout=timeout):
            return None
    except TimeoutError:
        return (
            f"no answer from {address} within {timeout:g}s: the device is off or unreachable from here, "
            "or a firewall drops the connection"
        )
    except OSError as exc:
        if exc.errno == errno.ECONNREFUSED:
            return f"nothing is listening at {address} (connection refused): is `bxthre3 controller` running there?"
        return f"cannot reach {address} ({exc.strerror or exc}): check the address and this device's network"
