"""`bxthre3 ui --web [ADDR:]PORT`: the same terminal UI, served to browsers with textual-serve.

textual-serve (an optional extra, `bxthre3[web]`) runs the app once per browser session as a child
process and relays its screen over a websocket to xterm.js in the page. This module adds what a
cluster needs on top (the rules themselves are in `web_access.py`):

* an access gate (aiohttp middleware) in front of every route: the cluster token when the server is
  reachable from other devices, loopback-only Host and same-origin websockets otherwise;
* children started without a shell and with the token in their environment, never in argv (`ps`);
* page URLs built from the request's Host, so a server bound to 0.0.0.0 hands a phone a websocket
  address it can reach (textual-serve would put "0.0.0.0" in the page);
* a bound on sessions (each is a Python process), no access log (URLs may hold `?token=`), and every
  child stopped by PID when the server stops.

It uses textual-serve 1.1's `Server` routes and template and its `AppService` relay; the two methods
overridden on `AppService` (`_build_environment`, `_open_app_process`) are private there, which is
why the extra pins textual-serve below 2.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import secrets
import shlex
import signal
import socket
import sys
from asyncio.subprocess import Process
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp_jinja2
from aiohttp import WSMsgType, web
from textual_serve.app_service import AppService
from textual_serve.server import Server

from ..common.errors import Bxthre3Error
from ..common.processes import die_with_parent
from ..wire.security import TOKEN_ENV
from .web_access import COOKIE_NAME, TOKEN_PARAM, WebBind, judge, needs_token

log = logging.getLogger(__name__)

MAX_SESSIONS = 8
"""Browser sessions at once: each runs its own UI process (about 50 MB resident); more get a 503."""

STOP_GRACE_S = 5.0
"""How long a session's UI has to quit on SIGTERM (stopping its roles) before it is killed."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(slots=True)
class WebConfig:
    """What the server serves and to whom: `argv` per session, `token` required when not None."""

    bind: WebBind
    argv: list[str]
    token: str | None
    child_env: dict[str, str] = field(default_factory=dict)
    """Added to each session's environment (the token for the UI's own use, never in argv)."""


class _Session(AppService):
    """One browser's UI process: started by exec (no shell to quote for), its PID recorded for shutdown."""

    def __init__(self, server: WebServer, **kwargs: Any) -> None:
        super().__init__(shlex.join(server.config.argv), **kwargs)
        self._server = server

    def _build_environment(self, width: int = 80, height: int = 24) -> dict[str, str]:
        environment = super()._build_environment(width, height)
        environment.update(self._server.config.child_env)
        return environment

    async def _open_app_process(self, width: int = 80, height: int = 24) -> Process:
        argv = self._server.config.argv
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self._build_environment(width, height),
            # Its own session: Ctrl+C in the server's terminal reaches the server, which stops each UI
            # with SIGTERM (quitting as on `q`), not every UI at once with a KeyboardInterrupt.
            start_new_session=True,
            # Ends with the server even when the server is SIGKILLed: Textual's web driver stops reading at
            # the end of its input but keeps the app alive.
            preexec_fn=functools.partial(die_with_parent, os.getpid(), sig=signal.SIGTERM),
        )
        assert process.stdin is not None
        self._process, self._stdin = process, process.stdin
        self._server.processes.add(process)
        log.info("session %s: UI process %d", self.app_service_id[:8], process.pid)
        return process


class WebServer(Server):
    """textual-serve's server with Bxthre3's access gate, session bound and child bookkeeping."""

    def __init__(self, config: WebConfig) -> None:
        super().__init__(shlex.join(config.argv), host=config.bind.host, port=config.bind.port, title="Bxthre3")
        self.config = config
        self.session_secret = secrets.token_urlsafe(32)
        """The cookie's value once a browser showed the token: per server run, so a copied cookie dies with
        it, and not the token itself, which would otherwise sit in the browser's cookie store."""
        self.processes: set[Process] = set()
        self.sessions = 0

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        app.middlewares.append(self._gate)
        return app

    @web.middleware
    async def _gate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        verdict = judge(
            path=request.path,
            query=request.query,
            cookies=request.cookies,
            headers=request.headers,
            host_header=request.host,
            token=self.config.token,
            session_secret=self.session_secret,
        )
        if not verdict.allow:
            log.warning("refused %s %s from %s: %s", request.method, request.path, request.remote, verdict.reason)
            return web.Response(status=verdict.status, text=f"{verdict.status} Forbidden: {verdict.reason}\n")
        if verdict.set_cookie and request.path == "/":
            # Drop the token from the address bar (and history, and Referer) at once.
            query = {k: v for k, v in request.query.items() if k != TOKEN_PARAM}
            redirect = web.HTTPSeeOther(request.rel_url.with_query(query))
            redirect.set_cookie(COOKIE_NAME, self.session_secret, httponly=True, samesite="Strict", path="/")
            raise redirect
        return await handler(request)

    async def on_startup(self, app: web.Application) -> None:
        """textual-serve prints a logo and the bind URL here; `serve` prints the URL to open instead."""

    async def handle_index(self, request: web.Request) -> web.StreamResponse:  # type: ignore[override]
        base = f"{request.scheme}://{request.host}"
        router = request.app.router
        font_size = request.query.get("fontsize", "16")
        context = {
            "font_size": int(font_size) if font_size.isdigit() and 6 <= int(font_size) <= 64 else 16,
            "app_websocket_url": "ws" + base[len("http") :] + str(router["websocket"].url_for()),
            "config": {"static": {"url": base + str(router["static"].url_for(filename="/")).rstrip("/") + "/"}},
            "application": {"name": self.title},
        }
        return aiohttp_jinja2.render_template("app_index.html", request, context)

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        if self.sessions >= MAX_SESSIONS:
            raise web.HTTPServiceUnavailable(text=f"503: already {MAX_SESSIONS} browser sessions; close one\n")
        websocket = web.WebSocketResponse(heartbeat=15)
        width = _cells(request.query.get("width"), 80)
        height = _cells(request.query.get("height"), 24)
        self.sessions += 1
        session: _Session | None = None
        try:
            await websocket.prepare(request)
            session = _Session(
                self,
                write_bytes=websocket.send_bytes,
                write_str=websocket.send_str,
                close=websocket.close,
                download_manager=self.download_manager,
            )
            await session.start(width, height)
            await self._relay(websocket, session)
        except asyncio.CancelledError:
            await websocket.close()
        except Exception:
            log.exception("browser session failed")
        finally:
            if session is not None:
                await self._end(session)
            self.sessions -= 1
        return websocket

    async def _end(self, session: _Session) -> None:
        """Ask the session's UI to quit (textual-serve's quit message); killed if it has not within the grace."""
        try:
            await asyncio.wait_for(session.stop(), STOP_GRACE_S)
        except asyncio.TimeoutError:
            log.warning("session %s: UI did not quit; killing it", session.app_service_id[:8])
        process = session._process
        if process is not None:
            try:
                await asyncio.wait_for(process.wait(), STOP_GRACE_S)
            except asyncio.TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
            self.processes.discard(process)

    async def _relay(self, websocket: web.WebSocketResponse, session: _Session) -> None:
        """The browser's keys, resizes and focus to the UI process (textual-serve's message envelope)."""
        async for message in websocket:
            if message.type != WSMsgType.TEXT:
                continue
            try:
                envelope = message.json()
            except ValueError:
                continue
            if not isinstance(envelope, list) or not envelope:
                continue
            kind, data = envelope[0], envelope[1] if len(envelope) > 1 else None
            if kind == "stdin" and isinstance(data, str):
                await session.send_bytes(data.encode("utf-8"))
            elif kind == "resize" and isinstance(data, dict):
                await session.set_terminal_size(_cells(data.get("width"), 80), _cells(data.get("height"), 24))
            elif kind == "ping":
                await websocket.send_json(["pong", data])
            elif kind == "blur":
                await session.blur()
            elif kind == "focus":
                await session.focus()

    async def stop_sessions(self) -> None:
        """SIGTERM every UI process (each quits as on `q`, stopping the roles it started), then SIGKILL."""
        for process in list(self.processes):
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
        for process in list(self.processes):
            try:
                await asyncio.wait_for(process.wait(), STOP_GRACE_S)
            except asyncio.TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()


def _cells(value: object, default: int) -> int:
    """A terminal size from the browser: a sane whole number of cells, else the default."""
    try:
        number = int(str(value))
    except ValueError:
        return default
    return number if 1 <= number <= 1000 else default


def resolve_bind(bind: WebBind) -> list[str]:
    """The IPs `bind.host` listens on: what decides whether browsers need the token."""
    try:
        infos = socket.getaddrinfo(bind.host, bind.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise Bxthre3Error(f"--web: cannot resolve {bind.host!r}: {exc}") from None
    return sorted({str(info[4][0]) for info in infos})


def web_config(bind: WebBind, argv: list[str], *, token: str | None, explicit_token: str | None) -> WebConfig:
    """The server's settings; refuses to expose the UI beyond loopback without a token to require."""
    exposed = needs_token(resolve_bind(bind))
    if exposed and token is None:
        raise Bxthre3Error(
            f"--web {bind.host}: not loopback, so browsers must present the cluster token and there is none; "
            "pass --token (or set BXTHRE3_TOKEN), or bind 127.0.0.1"
        )
    child_env = {TOKEN_ENV: explicit_token} if explicit_token else {}
    return WebConfig(bind=bind, argv=argv, token=token if exposed else None, child_env=child_env)


def serve(config: WebConfig, *, out: Any = None) -> int:
    """Run until SIGINT or SIGTERM; prints the URL to open. Returns the exit code."""
    return asyncio.run(_serve(config, out or sys.stdout))


async def listen(config: WebConfig) -> tuple[WebServer, web.AppRunner, int]:
    """Start listening (the server, its runner to clean up, the port bound); one-line error if it cannot."""
    server = WebServer(config)
    runner = web.AppRunner(await server._make_app(), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, config.bind.host, config.bind.port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise Bxthre3Error(
            f"--web {config.bind.host}:{config.bind.port}: cannot listen: {exc.strerror or exc}"
        ) from None
    return server, runner, int(runner.addresses[0][1])


async def close(server: WebServer, runner: web.AppRunner) -> None:
    """Every session's UI stopped (by PID), then the server."""
    await server.stop_sessions()
    await runner.cleanup()


async def _serve(config: WebConfig, out: Any) -> int:
    server, runner, port = await listen(config)
    try:
        url = config.bind.url(port)
        if config.token is not None:
            print(f"Bxthre3 UI on {url} (from another device: this device's address); open once as", file=out)
            print(f"  {url}?token=TOKEN   (TOKEN: `bxthre3 token` on the controller)", file=out)
        else:
            print(f"Bxthre3 UI on {url} (this device only)", file=out)
        print("Ctrl+C stops it.", file=out, flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        try:
            await stop.wait()
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
    finally:
        await close(server, runner)
    return 0
