"""`ui --web`'s access rules and served command (bxthre3/tui/web_access.py): pure, no server."""

from __future__ import annotations

import pytest

from bxthre3.common.errors import Bxthre3Error
from bxthre3.tui.web_access import COOKIE_NAME, Verdict, WebBind, judge, needs_token, parse_web_bind, served_argv

TOKEN = "bxt1-" + "A" * 43
SECRET = "per-server-secret"


@pytest.mark.parametrize(
    ("text", "bind"),
    [
        ("8080", WebBind("127.0.0.1", 8080)),
        (" 0 ", WebBind("127.0.0.1", 0)),
        ("0.0.0.0:8080", WebBind("0.0.0.0", 8080)),
        ("192.168.1.7:80", WebBind("192.168.1.7", 80)),
        ("localhost:9000", WebBind("localhost", 9000)),
        ("[::1]:8080", WebBind("::1", 8080)),
        ("[::]:8080", WebBind("::", 8080)),
    ],
)
def test_parse_web_bind_accepts_port_and_addr_port(text: str, bind: WebBind) -> None:
    assert parse_web_bind(text) == bind


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "0-65535"),
        ("http", "0-65535"),
        ("65536", "0-65535"),
        ("0.0.0.0:", "0-65535"),
        (":8080", "nothing before ':'"),
        ("::1:8080", "brackets"),
        ("[::1]8080", "[IPV6]:PORT"),
        ("[nope]:8080", "not an IPv6 address"),
    ],
)
def test_parse_web_bind_refuses_in_one_line(text: str, says: str) -> None:
    with pytest.raises(Bxthre3Error) as caught:
        parse_web_bind(text)
    assert says in str(caught.value) and "\n" not in str(caught.value)


def test_url_shows_a_reachable_address_for_unspecified_binds() -> None:
    assert WebBind("127.0.0.1", 0).url(4321) == "http://127.0.0.1:4321/"
    assert WebBind("0.0.0.0", 8080).url() == "http://127.0.0.1:8080/"
    assert WebBind("::", 8080).url() == "http://[::1]:8080/"


@pytest.mark.parametrize(
    ("resolved", "needed"),
    [
        (["127.0.0.1"], False),
        (["127.0.0.1", "::1"], False),
        (["127.3.4.5"], False),
        (["0.0.0.0"], True),
        (["::"], True),
        (["192.168.1.7"], True),
        (["127.0.0.1", "10.0.0.1"], True),
        ([], True),
    ],
)
def test_the_token_is_needed_unless_every_listening_address_is_loopback(resolved: list[str], needed: bool) -> None:
    assert needs_token(resolved) is needed


def _judge(**overrides: object) -> Verdict:
    request: dict[str, object] = {
        "path": "/",
        "query": {},
        "cookies": {},
        "headers": {},
        "host_header": "10.0.0.5:8080",
        "token": TOKEN,
        "session_secret": SECRET,
    }
    request.update(overrides)
    return judge(**request)  # type: ignore[arg-type]


def test_judge_with_a_token_requires_it_or_the_session_cookie() -> None:
    assert not _judge().allow
    assert _judge().status == 403
    assert not _judge(query={"token": TOKEN[:-1] + "B"}).allow
    assert not _judge(cookies={COOKIE_NAME: TOKEN}).allow, "the cookie is the server's secret, not the token"
    first = _judge(query={"token": TOKEN})
    assert first.allow and first.set_cookie
    again = _judge(cookies={COOKIE_NAME: SECRET}, path="/ws")
    assert again.allow and not again.set_cookie


def test_judge_on_loopback_is_open_to_loopback_names_only() -> None:
    for host in ("127.0.0.1:8080", "localhost:8080", "[::1]:8080", "localhost"):
        assert _judge(token=None, host_header=host).allow, host
    for host in ("evil.example:8080", "10.0.0.5:8080", "[fe80::1]:8080"):
        assert not _judge(token=None, host_header=host).allow, host


def test_judge_refuses_websockets_from_another_origin_even_with_the_cookie() -> None:
    same = {"Origin": "http://10.0.0.5:8080"}
    other = {"Origin": "http://evil.example"}
    ok = _judge(path="/ws", cookies={COOKIE_NAME: SECRET}, headers=same)
    assert ok.allow
    assert not _judge(path="/ws", cookies={COOKIE_NAME: SECRET}, headers=other).allow
    assert not _judge(path="/ws", token=None, host_header="127.0.0.1:8080", headers=other).allow


def test_served_argv_is_the_same_ui_without_the_token() -> None:
    argv = served_argv("/usr/bin/python3", controller="10.0.0.2:5000", role="ui", log_file="/tmp/ui.log", insecure=True)
    assert argv == [
        "/usr/bin/python3", "-m", "bxthre3", "ui", "--controller", "10.0.0.2:5000", "--role", "ui",
        "--log-file", "/tmp/ui.log", "--insecure",
    ]  # fmt: skip
    assert served_argv("py", controller=None, role=None, log_file=None, insecure=False) == ["py", "-m", "bxthre3", "ui"]
