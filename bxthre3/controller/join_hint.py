"""What a controller prints on its first start: the exact commands that join another device to it.

A new user starts a controller and then has to guess three things on the other device: which address
(the controller binds 0.0.0.0, which no one can connect to), which flag, and where the token is. The
first start (a state dir with no journal yet) answers all three once; later starts stay quiet.
"""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

from ..wire.addresses import Address
from ..wire.sockets import is_loopback

MAX_ADDRESSES = 3
"""LAN addresses offered when the controller listens on all of them (the first is used in the commands)."""


def lan_addresses() -> list[str]:
    """This device's IPv4 addresses other devices may reach (not loopback, not link-local), best first."""
    try:
        import psutil
    except ImportError:  # the hint is a courtesy: no psutil, no address list
        return []
    found: list[str] = []
    for addrs in psutil.net_if_addrs().values():
        for a in addrs:
            if a.family != socket.AF_INET:
                continue
            ip = ipaddress.IPv4Address(a.address)
            if not (ip.is_loopback or ip.is_link_local or ip.is_unspecified) and a.address not in found:
                found.append(a.address)
    return sorted(found, key=lambda addr: not ipaddress.IPv4Address(addr).is_private)


def join_lines(
    bind_host: str, port: int, *, token_file: Path | None, insecure: bool, token_command: str = "bxthre3 token"
) -> list[str]:
    """The lines to print: where to connect, and the host and node-manager commands that do it."""
    if bind_host in ("0.0.0.0", "::", ""):
        candidates = lan_addresses()[:MAX_ADDRESSES] or ["THIS-DEVICE-IP"]
    else:
        candidates = [bind_host]
    address = str(Address(candidates[0], port))
    lines = ["first start: to add a device to this cluster, run on it one of:"]
    if insecure:
        # Plaintext is loopback-only, so only this device can join.
        token = "--insecure"
    else:
        token = "--token TOKEN"
    lines.append(f"  bxthre3 node-manager --controller {address} {token}   (as many hosts as its RAM allows)")
    lines.append(f"  bxthre3 host --controller {address} {token}           (one host)")
    if not insecure and token_file is not None:
        lines.append(
            f"  TOKEN: `{token_command}` prints it on this device (kept in {token_file}); or set BXTHRE3_TOKEN"
        )
    elif not insecure:  # the state dir holds no token: `bxthre3 token` would make a new one, not print this one
        lines.append("  TOKEN: the one this controller was started with (--token or $BXTHRE3_TOKEN)")
    if len(candidates) > 1:
        lines.append(f"  (this device's other addresses: {', '.join(candidates[1:])})")
    if is_loopback(bind_host):
        lines.append("  (listening on loopback: only this device can join; --host 0.0.0.0 lets others in)")
    return lines
