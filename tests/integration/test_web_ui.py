"""`bxthre3 ui --web`: the token gate on a real aiohttp server, and the served UI in a real headless Chromium.

The browser test drives Chromium over the Chrome DevTools Protocol with aiohttp's websocket client (no
selenium or playwright). The screen is read from xterm.js's own buffer, not pixels: xterm draws to a
WebGL or canvas surface, so the DOM holds no text, and textual-serve's script keeps its Terminal in a
closure. A script installed before the page's own (`Page.addScriptToEvaluateOnNewDocument`) catches the
Terminal when textual.js assigns it (`this.terminal = new Terminal(...)`) through a one-shot setter on
Object.prototype, and exposes the visible rows (`buffer.active.getLine(...).translateToString()`): what
xterm holds is exactly what it paints.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bxthre3.common.errors import Bxthre3Error
from bxthre3.tui.web_access import COOKIE_NAME, WebBind, served_argv
from tests.conftest import REPO, TEST_MODULES, TEST_TOKEN, subprocess_env, wait_for

aiohttp = pytest.importorskip("aiohttp", reason="pip install 'bxthre3[web]'")
pytest.importorskip("textual_serve", reason="pip install 'bxthre3[web]'")

from bxthre3.tui import web  # noqa: E402  (after the skip: it imports textual-serve)

REQUIRE_ENV = "BXTHRE3_REQUIRE_TOOLCHAINS"
"""Set by `./bootstrap.sh test` (and so CI), which installs Chromium: the browser test may not skip then."""

# A session's stand-in UI for the gate tests: exits at the first byte textual-serve writes it (the quit
# it sends when the browser goes away), so a session ends as soon as its websocket does.
EXIT_ON_INPUT = [sys.executable, "-c", "import sys; sys.stdin.buffer.read(1)"]


# ---------------------------------------------------------------------- the gate, on 127.0.0.1


@pytest.fixture
def gated() -> Iterator[tuple[asyncio.AbstractEventLoop, str]]:
    """A server on 127.0.0.1 with the token requirement forced on, as it is on any other address."""
    loop = asyncio.new_event_loop()
    config = web.WebConfig(bind=WebBind("127.0.0.1", 0), argv=EXIT_ON_INPUT, token=TEST_TOKEN)
    server, runner, port = loop.run_until_complete(web.listen(config))
    try:
        yield loop, f"http://127.0.0.1:{port}"
    finally:
        loop.run_until_complete(web.close(server, runner))
        assert not server.processes, "every session's process was stopped"
        loop.close()


async def _get(base: str, path: str, **kwargs: Any) -> tuple[int, str, Any]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.get(base + path, allow_redirects=False, **kwargs) as response:
            return response.status, await response.text(), response


def test_gate_without_token_answers_403_in_one_line(gated: tuple[asyncio.AbstractEventLoop, str]) -> None:
    loop, base = gated
    for path in ("/", "/static/js/textual.js", "/download/x"):
        status, text, _ = loop.run_until_complete(_get(base, path))
        assert status == 403 and text.count("\n") == 1 and "cluster token" in text, (path, text)


def test_gate_with_a_wrong_token_answers_403(gated: tuple[asyncio.AbstractEventLoop, str]) -> None:
    loop, base = gated
    wrong = "bxt1-" + "W" * 43
    for query in (f"?token={wrong}", f"?token={TEST_TOKEN[:-1]}", "?token="):
        status, _, _ = loop.run_until_complete(_get(base, "/" + query))
        assert status == 403, query
    status, _, _ = loop.run_until_complete(_get(base, "/", cookies={COOKIE_NAME: TEST_TOKEN}))
    assert status == 403, "the cookie holds a per-server secret, not the token"


def test_gate_with_the_token_sets_a_cookie_and_serves_the_page(gated: tuple[asyncio.AbstractEventLoop, str]) -> None:
    loop, base = gated

    async def visit() -> None:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            async with http.get(f"{base}/?token={TEST_TOKEN}&fontsize=20", allow_redirects=False) as first:
                assert first.status == 303
                assert first.headers["Location"] == "/?fontsize=20", "the token leaves the address bar"
                morsel = first.cookies[COOKIE_NAME]
                assert morsel["httponly"] and morsel["samesite"] == "Strict"
                assert TEST_TOKEN not in morsel.value
            async with http.get(base + "/") as page:
                assert page.status == 200
                html = await page.text()
                assert f'data-session-websocket-url="ws://127.0.0.1:{base.rsplit(":", 1)[1]}/ws"' in html
            async with http.get(base + "/static/js/textual.js") as script:
                assert script.status == 200
            async with http.ws_connect(base + "/ws?width=80&height=24") as ws:
                assert not ws.closed, "the cookie opens the websocket too"

    loop.run_until_complete(visit())


def test_gate_refuses_a_websocket_without_the_cookie(gated: tuple[asyncio.AbstractEventLoop, str]) -> None:
    loop, base = gated

    async def connect(**kwargs: Any) -> int:
        async with aiohttp.ClientSession() as http:
            try:
                async with http.ws_connect(base + "/ws", **kwargs):
                    return 101
            except aiohttp.WSServerHandshakeError as exc:
                return exc.status

    assert loop.run_until_complete(connect()) == 403
    assert loop.run_until_complete(connect(headers={"Cookie": f"{COOKIE_NAME}=guess"})) == 403


def test_loopback_server_refuses_other_host_names_and_cross_site_websockets() -> None:
    """Open on loopback, yet not to a page of another site: DNS rebinding (Host) and cross-site websockets."""
    loop = asyncio.new_event_loop()
    config = web.WebConfig(bind=WebBind("127.0.0.1", 0), argv=EXIT_ON_INPUT, token=None)
    server, runner, port = loop.run_until_complete(web.listen(config))
    base = f"http://127.0.0.1:{port}"
    try:
        assert loop.run_until_complete(_get(base, "/"))[0] == 200
        assert loop.run_until_complete(_get(base, "/", headers={"Host": f"localhost:{port}"}))[0] == 200
        assert loop.run_until_complete(_get(base, "/", headers={"Host": f"evil.example:{port}"}))[0] == 403

        async def connect(origin: str) -> int:
            async with aiohttp.ClientSession() as http:
                try:
                    async with http.ws_connect(base + "/ws", origin=origin):
                        return 101
                except aiohttp.WSServerHandshakeError as exc:
                    return exc.status

        assert loop.run_until_complete(connect("http://evil.example")) == 403
        assert loop.run_until_complete(connect(base)) == 101
    finally:
        loop.run_until_complete(web.close(server, runner))
        loop.close()


def test_sessions_beyond_the_bound_get_503_and_each_ended_session_frees_its_place() -> None:
    loop = asyncio.new_event_loop()
    config = web.WebConfig(bind=WebBind("127.0.0.1", 0), argv=EXIT_ON_INPUT, token=None)
    server, runner, port = loop.run_until_complete(web.listen(config))

    async def crowd() -> None:
        async with aiohttp.ClientSession() as http:
            sockets = [await http.ws_connect(f"http://127.0.0.1:{port}/ws") for _ in range(web.MAX_SESSIONS)]
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(f"http://127.0.0.1:{port}/ws")
            assert refused.value.status == 503
            await sockets.pop().close()
            deadline = time.monotonic() + 10
            while server.sessions >= web.MAX_SESSIONS and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            sockets.append(await http.ws_connect(f"http://127.0.0.1:{port}/ws"))
            for ws in sockets:
                await ws.close()

    try:
        loop.run_until_complete(crowd())
    finally:
        loop.run_until_complete(web.close(server, runner))
        loop.close()
    assert server.sessions == 0 and not server.processes


def test_a_session_whose_ui_ignores_quit_is_killed_when_its_browser_goes(monkeypatch: pytest.MonkeyPatch) -> None:
    import psutil

    monkeypatch.setattr(web, "STOP_GRACE_S", 0.5)
    loop = asyncio.new_event_loop()
    stubborn = [sys.executable, "-c", "import time; time.sleep(60)"]
    config = web.WebConfig(bind=WebBind("127.0.0.1", 0), argv=stubborn, token=None)
    server, runner, port = loop.run_until_complete(web.listen(config))

    async def visit() -> list[int]:
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(f"http://127.0.0.1:{port}/ws"):
                deadline = time.monotonic() + 10
                while not server.processes and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                return [p.pid for p in server.processes]
        # the websocket is closed here: the server asks the UI to quit, then kills it

    try:
        pids = loop.run_until_complete(visit())
        assert len(pids) == 1
        deadline = time.monotonic() + 10
        while server.sessions and time.monotonic() < deadline:
            loop.run_until_complete(asyncio.sleep(0.05))
        assert server.sessions == 0 and not server.processes
        assert not psutil.pid_exists(pids[0]) or psutil.Process(pids[0]).status() == psutil.STATUS_ZOMBIE
    finally:
        loop.run_until_complete(web.close(server, runner))
        loop.close()


def test_exposed_bind_without_a_token_is_refused_in_one_line() -> None:
    argv = served_argv(sys.executable, controller=None, role=None, log_file=None, insecure=True)
    with pytest.raises(Bxthre3Error, match=r"--web 0\.0\.0\.0: not loopback.*pass --token"):
        web.web_config(WebBind("0.0.0.0", 0), argv, token=None, explicit_token=None)
    config = web.web_config(WebBind("0.0.0.0", 0), argv, token=TEST_TOKEN, explicit_token=TEST_TOKEN)
    assert config.token == TEST_TOKEN and config.child_env == {"BXTHRE3_TOKEN": TEST_TOKEN}
    assert web.web_config(WebBind("127.0.0.1", 0), argv, token=TEST_TOKEN, explicit_token=None).token is None


def test_web_without_the_extra_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bxthre3.cli import main

    monkeypatch.setitem(sys.modules, "textual_serve", None)  # as if not installed: find_spec gives None
    assert main(["ui", "--web", "8080"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert "pip install 'bxthre3[web]'" in line


# ---------------------------------------------------------------------- a real browser

RUNNING_DAG = [r"● webwatch dag-\w+", r"spinning +● running +\S+ s +webtest-1"]
"""The monitor with the DAG running: its line in the DAG list, its task running on the one host."""
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREEN_HOOK = """
(() => {
  Object.defineProperty(Object.prototype, "terminal", {
    configurable: true,
    get() { return undefined; },
    set(value) {
      Object.defineProperty(this, "terminal", {value, writable: true, configurable: true, enumerable: true});
      if (value && value.buffer && value.buffer.active && value.rows) window.__bxt3Terminal = value;
    },
  });
  window.__bxt3Screen = () => {
    const t = window.__bxt3Terminal;
    if (!t) return null;
    const b = t.buffer.active, rows = [];
    for (let y = 0; y < t.rows; y++) {
      const line = b.getLine(b.viewportY + y);
      rows.push(line ? line.translateToString(true) : "");
    }
    return rows.join("\\n");
  };
})();
"""


class Cdp:
    """The least of the Chrome DevTools Protocol: numbered commands on one page's websocket."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.next_id = 0

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        await self.ws.send_json({"id": self.next_id, "method": method, "params": params})
        deadline = time.monotonic() + 10
        while True:  # events come between the answers: skipped, bounded by the deadline
            message = await self.ws.receive_json(timeout=max(0.01, deadline - time.monotonic()))
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))

    async def screen(self) -> str:
        result = await self.call("Runtime.evaluate", expression="window.__bxt3Screen && window.__bxt3Screen()")
        return str(result.get("result", {}).get("value") or "")

    async def wait_screen(self, patterns: list[str], timeout: float) -> str:
        """The screen once every pattern shows on it at the same time (bounded)."""
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = await self.screen()
            if all(re.search(p, text) for p in patterns):
                return text
            await asyncio.sleep(0.2)
        raise AssertionError(f"not all of {patterns} on the page within {timeout}s; it shows:\n{text}")

    async def key(self, key: str, code: str, vk: int, shift: bool = False) -> None:
        common = {"key": key, "code": code, "windowsVirtualKeyCode": vk, "modifiers": 8 if shift else 0}
        await self.call("Input.dispatchKeyEvent", type="keyDown", text=key, **common)
        await self.call("Input.dispatchKeyEvent", type="keyUp", **common)


def _stop(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(8)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def chromium() -> str:
    if CHROMIUM is None:
        if os.environ.get(REQUIRE_ENV, "") not in ("", "0"):
            pytest.fail(f"chromium is not installed and {REQUIRE_ENV} is set (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium; ./bootstrap.sh test does)")
    return CHROMIUM


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[str]:
    """`bxthre3 all` on 127.0.0.1 (controller + node manager + one host), with a DAG spinning on it."""
    from tests.integration.test_cli import free_port

    port = free_port()
    env = subprocess_env()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bxthre3", "all", "--host", "127.0.0.1", "--port", str(port),
         "--state-dir", str(tmp_path / "state"), "--max-nodes", "1", "--ram-per-node", "64",
         "--device-name", "webtest", "--log-file", str(tmp_path / "all.log")],
        env=env, cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        address = f"127.0.0.1:{port}"
        dag = tmp_path / "webwatch.yaml"
        dag.write_text(
            f"name: webwatch\ntasks:\n  - id: spinning\n    module: {TEST_MODULES / 'spin.wasm'}\n    timeout: 60\n"
        )

        def submitted() -> bool:
            p = subprocess.run(
                [sys.executable, "-m", "bxthre3", "submit", str(dag), "--controller", address, "--timeout", "1"],
                env=env, cwd=REPO, capture_output=True, text=True, timeout=20,
            )  # fmt: skip
            return p.returncode == 0

        wait_for(submitted, 20, "the controller to take the DAG")
        yield address
    finally:
        _stop(proc)


def test_browser_shows_the_monitor_with_a_running_dag_and_takes_a_key(
    chromium: str, cluster: str, tmp_path: Path
) -> None:
    import psutil

    env = subprocess_env()
    server = subprocess.Popen(
        [sys.executable, "-m", "bxthre3", "ui", "--web", "127.0.0.1:0", "--controller", cluster, "--token", TEST_TOKEN],
        env=env, cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    browser: subprocess.Popen[str] | None = None
    try:
        assert server.stdout is not None
        first = server.stdout.readline()
        match = re.search(r"on (http://127\.0\.0\.1:\d+/) \(this device only\)", first)
        assert match, first + (server.stderr.read() if server.poll() is not None and server.stderr else "")
        url = match.group(1)
        profile = tmp_path / "chromium"
        browser = subprocess.Popen(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--remote-debugging-port=0", "--window-size=1280,900", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        port_file = profile / "DevToolsActivePort"
        wait_for(lambda: port_file.exists() and port_file.read_text().count("\n") >= 1, 15, "Chromium's DevTools port")
        devtools_port = int(port_file.read_text().splitlines()[0])
        monitor, helped = asyncio.run(_drive(devtools_port, url))
        assert all(re.search(p, monitor) for p in RUNNING_DAG), monitor
        assert "Bxthre3 keys" not in monitor and "Bxthre3 keys" in helped, "`?` opened the help"

        children = psutil.Process(server.pid).children()
        assert children, "a UI process per browser session"
        for child in children:
            assert TEST_TOKEN not in " ".join(child.cmdline()), "the token never in argv"
            assert child.cmdline()[:4] == [sys.executable, "-m", "bxthre3", "ui"]
            assert child.environ().get("BXTHRE3_TOKEN") == TEST_TOKEN
        family = children + [c for child in children for c in child.children(recursive=True)]
        _stop(browser)
        _, alive = psutil.wait_procs(family, timeout=10)
        assert not alive, f"closing the browser left its UI running: {[p.pid for p in alive]}"
        assert server.poll() is None, "the server outlives its sessions"
        server.send_signal(signal.SIGTERM)
        assert server.wait(10) == 0
    finally:
        if browser is not None:
            _stop(browser)
        _stop(server)


async def _drive(devtools_port: int, url: str) -> tuple[str, str]:
    """Open the page, wait for the monitor with the running DAG, press `?`: both screens' text."""
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{devtools_port}/json/list") as response:
            targets = await response.json()
        [page] = [t for t in targets if t.get("type") == "page"][:1]
        async with http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            cdp = Cdp(ws)
            await cdp.call("Page.enable")
            await cdp.call("Page.addScriptToEvaluateOnNewDocument", source=SCREEN_HOOK)
            await cdp.call("Page.navigate", url=url)
            monitor = await cdp.wait_screen(RUNNING_DAG, 25)
            await cdp.call("Runtime.evaluate", expression="document.querySelector('.xterm-helper-textarea').focus()")
            await cdp.key("?", "Slash", 191, shift=True)
            helped = await cdp.wait_screen([r"Bxthre3 keys"], 10)
            return monitor, helped


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=lambda s: s.name)
def test_sessions_end_with_the_server_even_a_killed_one(sig: signal.Signals) -> None:
    """Ctrl+C stops each session's UI by SIGTERM; SIGKILL leaves none orphaned (they die with the server)."""
    import psutil

    server = subprocess.Popen(
        [sys.executable, "-m", "bxthre3", "ui", "--web", "0", "--controller", "127.0.0.1:1", "--insecure"],
        env=subprocess_env(), cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    children: list[psutil.Process] = []
    try:
        assert server.stdout is not None
        url = re.search(r"on (http://\S+/) ", server.stdout.readline())
        assert url, "the URL to open"

        async def one_session() -> None:
            async with aiohttp.ClientSession() as http:
                async with http.ws_connect(url.group(1) + "ws?width=80&height=24") as ws:
                    await ws.receive(timeout=15)  # the UI's first screen bytes: it runs
                    children.extend(psutil.Process(server.pid).children())
                    server.send_signal(sig)

        asyncio.run(one_session())
        assert len(children) == 1
        _, alive = psutil.wait_procs(children, timeout=10)
        assert not alive, f"{sig.name} left the session's UI running"
        assert server.wait(10) == (0 if sig is signal.SIGINT else -signal.SIGKILL)
    finally:
        _stop(server)
        for child in children:  # only if the test failed: by PID, never by name
            with contextlib.suppress(psutil.Error):
                child.kill()


# ---------------------------------------------------------------------- beyond loopback, in namespaces

PHONE_SCRIPT = """
import http.client, json, sys
host, token = sys.argv[1], sys.argv[2]
def get(path, headers=None):
    c = http.client.HTTPConnection(host, 8080, timeout=10)
    c.request("GET", path, headers=headers or {})
    r = c.getresponse()
    return r.status, r.getheader("Location"), r.getheader("Set-Cookie"), r.read().decode()
bare = get("/")
wrong = get("/?token=bxt1-" + "W" * 43)
first = get("/?token=" + token)
cookie = (first[2] or "").split(";")[0]
page = get("/", {"Cookie": cookie})
print(json.dumps({"bare": bare[0], "wrong": wrong[0], "first": first[:3], "page": page[0], "html": page[3]}))
"""


@pytest.fixture
def lan() -> Iterator[Any]:
    from tests.netns_support import NetnsLan, remove_stale, serve_or_skip

    try:
        remove_stale()
        net = NetnsLan(("srv", "phone"))
    except Exception as e:  # pragma: no cover - environment dependent
        pytest.skip(f"network namespaces unavailable: {e}")
    yield from serve_or_skip(net)


def test_bound_to_all_addresses_a_phone_on_the_lan_needs_the_token(lan: Any) -> None:
    """`--web 0.0.0.0:8080` in one namespace, a "phone" in another: the real non-loopback path."""
    server = lan.popen(
        "srv", [sys.executable, "-m", "bxthre3", "ui", "--web", "0.0.0.0:8080", "--controller", "127.0.0.1:1"],
        env=subprocess_env(), cwd=str(REPO), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
    )  # fmt: skip
    assert server.stdout is not None
    banner = server.stdout.readline().decode() + server.stdout.readline().decode()
    assert "?token=TOKEN" in banner and TEST_TOKEN not in banner, banner
    srv_ip = lan.ip["srv"]
    phone = lan.run("phone", [sys.executable, "-c", PHONE_SCRIPT, srv_ip, TEST_TOKEN], timeout=30, text=True)
    assert phone.returncode == 0, phone.stderr
    seen = json.loads(phone.stdout)
    assert seen["bare"] == 403 and seen["wrong"] == 403
    status, location, cookie = seen["first"]
    assert status == 303 and location == "/" and cookie.startswith(COOKIE_NAME + "=") and "HttpOnly" in cookie
    assert seen["page"] == 200
    assert f'data-session-websocket-url="ws://{srv_ip}:8080/ws"' in seen["html"], "a URL the phone can reach"
