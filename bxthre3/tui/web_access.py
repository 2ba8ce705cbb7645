"""Who may open `bxthre3 ui --web`, and what each browser session runs: the decisions, no I/O.

The web server (`tui/web.py`) asks these functions; they are here, apart from aiohttp, so the rules
(where the UI is open to anyone, what counts as the token, which command a session runs) are tested
without a network and read in one place.

The rules: bound to loopback, the UI is as open as the terminal it replaces (anyone on this device may
run `bxthre3 ui` anyway), but a page of another site must not drive it through the user's browser, so
the Host header must name loopback (against DNS rebinding) and a websocket's Origin must be the page's
own. Bound anywhere else, every request must carry the cluster token, once in the URL (`?token=`) and
then as a cookie holding a per-server secret, so the token itself never sits in the browser's cookie jar.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..common.errors import Bxthre3Error

DEFAULT_WEB_HOST = "127.0.0.1"
COOKIE_NAME = "bxthre3_web"
TOKEN_PARAM = "token"
LOOPBACK_NAMES = frozenset({"localhost", "localhost."})


@dataclass(frozen=True, slots=True)
class WebBind:
    """Where `--web` listens: an IP literal or a host name, and a port (0: any free one)."""

    host: str
    port: int

    def url(self, port: int | None = None) -> str:
        """The address to open in a browser (an unspecified bind address is shown as this device's loopback)."""
        host = self.host
        if host in ("0.0.0.0", "::"):
            host = "127.0.0.1" if host == "0.0.0.0" else "::1"
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.port if port is None else port}/"


def parse_web_bind(text: str) -> WebBind:
    """`PORT`, `ADDR:PORT` or `[V6]:PORT`; ADDR defaults to loopback. One-line errors showing a good form."""
    raw = text.strip()
    example = "e.g. --web 8080 or --web 0.0.0.0:8080"
    host, port_text = DEFAULT_WEB_HOST, raw
    if raw.startswith("["):
        end = raw.find("]")
        if end < 0 or not raw[end + 1 :].startswith(":"):
            raise Bxthre3Error(f"--web {text!r}: expected [IPV6]:PORT, e.g. --web [::1]:8080")
        host, port_text = raw[1:end], raw[end + 2 :]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise Bxthre3Error(f"--web {text!r}: {host!r} in brackets is not an IPv6 address") from None
    elif raw.count(":") == 1:
        host, port_text = raw.split(":")
        if not host:
            raise Bxthre3Error(f"--web {text!r}: nothing before ':' ({example})")
    elif raw.count(":") > 1:
        raise Bxthre3Error(f"--web {text!r}: put an IPv6 address in brackets, e.g. --web [::1]:8080")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise Bxthre3Error(f"--web {text!r}: the port must be a number 0-65535 ({example})")
    return WebBind(host, int(port_text))


def is_loopback_host(host: str) -> bool:
    """`localhost` or a loopback IP literal; any other name is not trusted to stay on this device."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def needs_token(resolved: Iterable[str]) -> bool:
    """Whether browsers must present the token: unless every address the server listens on is loopback.

    `resolved` are the IPs the bind address resolves to (0.0.0.0 and :: are not loopback: they are all
    of this device's addresses). Nothing resolved counts as exposed, to fail closed."""
    addresses = list(resolved)
    return not addresses or not all(is_loopback_host(a) for a in addresses)


def same_secret(presented: str | None, expected: str) -> bool:
    """Constant-time comparison: how long a wrong guess takes says nothing about the right one."""
    if not presented:
        return False
    return hmac.compare_digest(presented.encode("utf-8"), expected.encode("utf-8"))


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to do with one request: let it through, let it through setting the session cookie (the
    token was in the URL), or refuse it with `status` and a one-line `reason`."""

    allow: bool
    set_cookie: bool = False
    status: int = 200
    reason: str = ""


def judge(
    *,
    path: str,
    query: Mapping[str, str],
    cookies: Mapping[str, str],
    headers: Mapping[str, str],
    host_header: str,
    token: str | None,
    session_secret: str,
) -> Verdict:
    """The access decision for one HTTP or websocket request (`token` None: loopback, open to this device)."""
    if path.startswith("/ws"):
        origin = headers.get("Origin")
        if origin and urlsplit(origin).netloc.lower() != host_header.lower():
            return Verdict(False, status=403, reason="websocket from another site's page refused")
    if token is None:
        if not is_loopback_host(_host_part(host_header)):
            return Verdict(False, status=403, reason=f"this UI answers only to localhost, not {host_header!r}")
        return Verdict(True)
    if same_secret(cookies.get(COOKIE_NAME), session_secret):
        return Verdict(True)
    if same_secret(query.get(TOKEN_PARAM), token):
        return Verdict(True, set_cookie=True)
    return Verdict(False, status=403, reason="this Bxthre3 UI needs the cluster token: open it as /?token=TOKEN")


def _host_part(host_header: str) -> str:
    """`HOST` of a Host header `HOST[:PORT]` or `[V6][:PORT]`."""
    if host_header.startswith("["):
        return host_header[1 : host_header.find("]")] if "]" in host_header else host_header
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


def served_argv(
    python: str,
    *,
    controller: str | None,
    role: str | None,
    log_file: str | None,
    insecure: bool,
) -> list[str]:
    """The command each browser session runs: the same `bxthre3 ui` with the same flags, by the same Python.

    The token is not among them: argv is world-readable (`ps`), so it travels in the environment."""
    argv = [python, "-m", "bxthre3", "ui"]
    if controller:
        argv += ["--controller", controller]
    if role:
        argv += ["--role", role]
    if log_file is not None:
        argv += ["--log-file", log_file]
    if insecure:
        argv.append("--insecure")
    return argv
