"""The monitor's connection problems in words, from the exceptions a real `ControllerClient` raises against a
real controller on loopback (wrong token, stopped mid-way), a closed loopback port and a name that cannot resolve."""

from __future__ import annotations

import socket

import pytest

from bxthre3.client.connection import ConnectionProblem, ControllerClient
from bxthre3.common.errors import ClusterError
from bxthre3.scheduler import SchedulerConfig
from bxthre3.tui.backend import Backend
from bxthre3.tui.connection_words import classify_connection_problem, describe_connection_problem
from bxthre3.wire.addresses import Address
from bxthre3.wire.security import CurveKeys, TokenError, new_token
from tests.conftest import TEST_KEYS, RunningController


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _failure(address: Address, keys: CurveKeys | None = TEST_KEYS) -> BaseException:
    """What one status request raises (constructing the client included)."""
    try:
        with ControllerClient(address, timeout=3.0, keys=keys) as client:
            client.status()
    except Exception as exc:
        return exc
    raise AssertionError(f"a status request to {address} succeeded")


def _words(exc: BaseException, was_connected: bool) -> str:
    line = describe_connection_problem(exc, was_connected=was_connected)
    assert "\n" not in line and line.strip() == line, line
    return line


def test_nothing_listening_names_the_address_not_the_token() -> None:
    address = Address("127.0.0.1", _free_port())
    exc = _failure(address)
    assert isinstance(exc, ConnectionProblem) and exc.kind == "refused", exc
    line = _words(exc, was_connected=False)
    assert line.startswith(f"Nothing is listening at {address}: start `bxthre3 controller`"), line
    assert "--controller" in line and "token" not in line
    assert classify_connection_problem(exc, was_connected=False) == "stopped"
    # the monitor had been connected: the same refusal means the controller stopped
    assert _words(exc, was_connected=True).startswith(f"The controller at {address} stopped: it answered before")


def test_a_wrong_token_is_blamed_on_the_token(controller: RunningController) -> None:
    exc = _failure(controller.address, CurveKeys.from_token(new_token()))
    assert isinstance(exc, ConnectionProblem) and exc.kind == "token_refused", exc
    for was_connected in (False, True):  # a token never "stops": it is wrong whatever happened before
        line = _words(exc, was_connected)
        assert line.startswith(f"The controller at {controller.address} refused our token"), line
        assert "UI Node form" in line and "--token" in line and "bxthre3 token" in line
        assert classify_connection_problem(exc, was_connected=was_connected) == "token"


def test_a_plaintext_ui_against_a_secure_controller_says_so(controller: RunningController) -> None:
    exc = _failure(controller.address, None)
    assert isinstance(exc, ConnectionProblem) and exc.kind == "no_token", exc
    line = _words(exc, False)
    assert "wants the cluster token" in line and "without --insecure" in line, line


def test_a_controller_stopped_midway_is_said_to_have_stopped() -> None:
    running = RunningController(SchedulerConfig(heartbeat_interval=0.25, liveness=4))
    address = running.address
    client = ControllerClient(address, timeout=3.0, keys=TEST_KEYS)
    try:
        client.status()  # connected and trusted
        running.close()
        with pytest.raises(ConnectionProblem) as during:
            client.status()
    finally:
        client.close()
        if running.thread.is_alive():
            running.close()
    assert during.value.kind in ("gone", "went_away", "refused"), during.value
    line = _words(during.value, was_connected=True)
    assert line.startswith(f"The controller at {address} stopped: it answered before, now "), line
    assert "Restart it" in line and "token" not in line
    # the monitor's next client never saw it up: only `was_connected` keeps the story true
    after = _failure(address)
    assert isinstance(after, ConnectionProblem) and after.kind == "refused", after
    assert _words(after, was_connected=True).startswith(f"The controller at {address} stopped")
    assert _words(after, was_connected=False).startswith(f"Nothing is listening at {address}")


def test_an_unresolvable_name_names_the_name() -> None:
    exc = _failure(Address("no-such-controller.invalid", 5000))
    assert isinstance(exc, ConnectionProblem) and exc.kind == "unresolvable", exc
    line = _words(exc, was_connected=False)
    assert line.startswith("The name 'no-such-controller.invalid' does not resolve ("), line
    assert "IP address" in line and "token" not in line
    assert classify_connection_problem(exc, was_connected=True) == "network"


def test_no_token_at_all_names_the_form_and_the_flags() -> None:
    with pytest.raises(TokenError) as missing:
        Backend(token=None).connect(Address("127.0.0.1", _free_port()))
    line = _words(missing.value, was_connected=False)
    assert line.startswith("No cluster token: enter it in the UI Node form"), line
    assert "--token" in line and "BXTHRE3_TOKEN" in line
    assert classify_connection_problem(missing.value, was_connected=False) == "no_token"


def test_a_refused_request_is_not_a_connection_problem(controller: RunningController) -> None:
    with ControllerClient(controller.address, timeout=3.0, keys=TEST_KEYS) as client, pytest.raises(ClusterError) as no:
        client.cancel("dag-nosuch")
    assert not isinstance(no.value, ConnectionProblem)
    assert classify_connection_problem(no.value, was_connected=True) == "other"
    assert _words(no.value, was_connected=True).startswith("The controller refused the request: ")
