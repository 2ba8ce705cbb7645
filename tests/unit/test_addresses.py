from __future__ import annotations

import pytest

from bxthre3.common.errors import Bxthre3Error
from bxthre3.wire.addresses import Address, controller_from_env_or, parse_address


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1", Address("127.0.0.1", 5000)),
        ("127.0.0.1:6000", Address("127.0.0.1", 6000)),
        ("tcp://10.0.0.2:7000", Address("10.0.0.2", 7000)),
        ("[::1]:5001", Address("::1", 5001)),
        ("[::1]", Address("::1", 5000)),
        ("::1", Address("::1", 5000)),
        ("phone.local", Address("phone.local", 5000)),
        ("my_nas.lan.:5001", Address("my_nas.lan.", 5001)),
        ("localhost", Address("localhost", 5000)),
        ("  192.168.1.5:5000 ", Address("192.168.1.5", 5000)),
    ],
)
def test_parse(text: str, expected: Address) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "host:",
        "host:99999",
        "host:abc",
        ":5000",
        "[::1",
        "[::1]x",
        "foo bar:5000",
        "a/b",
        "x..y",
        "-x:1",
        "[nothost]:5",
    ],
)
def test_rejects_with_a_hint(text: str) -> None:
    with pytest.raises(Bxthre3Error):
        parse_address(text)


def test_endpoint_and_str() -> None:
    assert Address("::1", 5).endpoint == "tcp://[::1]:5"
    assert str(Address("127.0.0.1", 5)) == "127.0.0.1:5"


def test_env_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BXTHRE3_CONTROLLER", raising=False)
    assert controller_from_env_or(None) is None
    monkeypatch.setenv("BXTHRE3_CONTROLLER", "127.0.0.1:6001")
    assert controller_from_env_or(None) == Address("127.0.0.1", 6001)
    assert controller_from_env_or("127.0.0.1:7") == Address("127.0.0.1", 7)
