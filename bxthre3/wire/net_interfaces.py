"""IPv4 interface addresses from the kernel with the standard library alone (Linux and Android).

Discovery asks psutil first; on Android 11+ apps may not bind netlink sockets, so psutil's
``net_if_addrs`` can fail there. The classic ioctls (SIOCGIFCONF for the list, then
SIOCGIFFLAGS/SIOCGIFNETMASK/SIOCGIFBRDADDR per interface) go through an ordinary UDP socket and
are still allowed, so they are the fallback. It replaced the netifaces package (archived
upstream, no wheels for current Pythons) -- see docs/ARCHITECTURE.md, dependency notes.

The request numbers and ``struct ifreq`` layout below are Linux's (Android is Linux); other
systems number them differently, so :func:`ipv4_interfaces` refuses to guess there.
"""

from __future__ import annotations

import socket
import struct
import sys
from dataclasses import dataclass

SIOCGIFCONF = 0x8912
SIOCGIFFLAGS = 0x8913
SIOCGIFBRDADDR = 0x8919
SIOCGIFNETMASK = 0x891B
IFF_BROADCAST = 0x2
IFNAMSIZ = 16
MAX_INTERFACES = 1024
"""Room asked for in one SIOCGIFCONF call; a device with more IPv4 addresses than this is not a phone."""


@dataclass(frozen=True)
class Ipv4Interface:
    """One IPv4 address of one interface; ``broadcast`` is None where the interface has none (loopback, p2p)."""

    name: str
    address: str
    netmask: str | None
    broadcast: str | None


def _ifreq_size() -> int:
    """sizeof(struct ifreq): the name, then a union whose largest member is struct ifmap (or a sockaddr)."""
    pointer = struct.calcsize("P")
    ifmap = -(-(2 * pointer + 5) // pointer) * pointer  # two unsigned longs, a short and three chars, padded
    return IFNAMSIZ + max(16, ifmap)


def _ipv4_at(buf: bytes, offset: int) -> str:
    """The address of the sockaddr_in at ``offset`` (family: 2 bytes, port: 2, address: 4)."""
    return socket.inet_ntoa(buf[offset + 4 : offset + 8])


def _ioctl_address(sock: socket.socket, request: int, name: bytes) -> str | None:
    import fcntl

    try:
        out = fcntl.ioctl(sock.fileno(), request, struct.pack(f"{_ifreq_size()}s", name))
    except OSError:  # EADDRNOTAVAIL: the interface has no such address
        return None
    return _ipv4_at(out, IFNAMSIZ)


def ipv4_interfaces() -> list[Ipv4Interface]:
    """Every configured IPv4 address, in the kernel's order. Raises OSError where the ioctls are unavailable."""
    if not (sys.platform.startswith("linux") or sys.platform == "android"):
        raise OSError(f"interface ioctls are Linux's; not used on {sys.platform}")
    import array
    import fcntl

    size = _ifreq_size()
    buf = array.array("B", bytes(size * MAX_INTERFACES))
    address, _ = buf.buffer_info()
    found: list[Ipv4Interface] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        ifconf = fcntl.ioctl(sock.fileno(), SIOCGIFCONF, struct.pack("iP", len(buf), address))
        length = struct.unpack("iP", ifconf)[0]
        raw = buf.tobytes()[:length]
        for offset in range(0, length - size + 1, size):
            name = raw[offset : offset + IFNAMSIZ].split(b"\0", 1)[0]
            addr = _ipv4_at(raw, offset + IFNAMSIZ)
            try:
                flags = struct.unpack_from(
                    "H", fcntl.ioctl(sock.fileno(), SIOCGIFFLAGS, struct.pack(f"{size}s", name)), IFNAMSIZ
                )[0]
            except OSError:
                flags = 0
            broadcast = _ioctl_address(sock, SIOCGIFBRDADDR, name) if flags & IFF_BROADCAST else None
            found.append(
                Ipv4Interface(
                    name=name.decode("utf-8", "replace"),
                    address=addr,
                    netmask=_ioctl_address(sock, SIOCGIFNETMASK, name),
                    broadcast=broadcast,
                )
            )
    return found
