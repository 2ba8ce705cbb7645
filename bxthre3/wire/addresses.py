"""Controller addresses as users type them: `IP`, `IP:PORT`, `[v6]:PORT`, `tcp://HOST:PORT`."""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass

from ..common.errors import Bxthre3Error

DEFAULT_PORT = 5000
"""The controller's ZeroMQ port unless told otherwise (the original Bxthre3's)."""

CONTROLLER_ENV = "BXTHRE3_CONTROLLER"

_LABEL = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")
"""One dot-separated part of a host name (RFC 1123, plus the underscore some LANs use)."""


@dataclass(frozen=True, slots=True)
class Address:
    host: str
    port: int

    @property
    def endpoint(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp://{host}:{self.port}"

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_address(text: str, *, default_port: int = DEFAULT_PORT) -> Address:
    """Accept the forms people type; reject the rest with a message showing a good one."""
    raw = text.strip()
    if raw.startswith("tcp://"):
        raw = raw[len("tcp://") :]
    if not raw:
        raise Bxthre3Error("empty controller address (expected IP or IP:PORT, e.g. 192.168.1.10:5000)")
    host, port_text = raw, ""
    if raw.startswith("["):
        end = raw.find("]")
        if end < 0:
            raise Bxthre3Error(f"bad controller address {text!r}: unclosed '['")
        host, rest = raw[1:end], raw[end + 1 :]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise Bxthre3Error(
                f"bad controller address {text!r}: brackets hold an IPv6 address, e.g. [::1]:5000"
            ) from None
        if rest:
            if not rest.startswith(":"):
                raise Bxthre3Error(f"bad controller address {text!r}")
            port_text = rest[1:]
    elif raw.count(":") > 1:
        try:
            ipaddress.IPv6Address(raw)
        except ValueError:
            raise Bxthre3Error(
                f"bad controller address {text!r}: put an IPv6 address in brackets to add a port, e.g. [::1]:5000"
            ) from None
    elif raw.count(":") == 1:
        host, port_text = raw.split(":")
        if not port_text:
            raise Bxthre3Error(f"bad controller address {text!r}: nothing after ':' (e.g. {host}:{default_port})")
    port = default_port
    if port_text:
        if not port_text.isdigit():
            raise Bxthre3Error(f"bad controller address {text!r}: port {port_text!r} is not a number (IP:PORT)")
        if not 0 < int(port_text) < 65536:
            raise Bxthre3Error(f"bad controller address {text!r}: port must be 1-65535")
        port = int(port_text)
    if not host:
        raise Bxthre3Error(f"bad controller address {text!r}: no host")
    _check_host(host, text)
    return Address(host, port)


def _check_host(host: str, text: str) -> None:
    """Refuse what no resolver can look up (spaces, slashes, ...) here, with the address in the message:
    ZeroMQ would otherwise fail deep inside ``connect`` with "Invalid argument" and a traceback."""
    try:
        ipaddress.ip_address(host)
        return
    except ValueError:
        pass
    name = host[:-1] if host.endswith(".") else host
    if len(name) > 253 or not all(_LABEL.match(label) for label in name.split(".")):
        raise Bxthre3Error(
            f"bad controller address {text!r}: {host!r} is neither an IP address nor a host name "
            "(letters, digits, '-' and '.' only; e.g. 192.168.1.10:5000)"
        )


def controller_from_env_or(value: str | None) -> Address | None:
    """The explicit value if given, else BXTHRE3_CONTROLLER, else None (discovery's job)."""
    text = value or os.environ.get(CONTROLLER_ENV)
    return parse_address(text) if text else None
