"""What is wrong with the monitor's connection, in one line that names the fix (pure: no I/O, no Textual).

The monitor retries its controller forever and used to show the client's message as it came. Those
messages are written for one CLI request, so a controller that stopped while the monitor watched it
read "nothing is listening ... is `bxthre3 controller` running?" (the monitor's next client never saw
it up), and every problem looked alike in the log. Here the client's `ConnectionProblem.kind`, plus
whether the monitor had been connected before, picks one of four stories, each with what to do:

- ``stopped``: no controller at that address, or the one that answered before stopped (port refuses,
  connects time out, the connection closed);
- ``token``: the controller answered but refused our token (or runs plaintext while we do not);
- ``network``: the name does not resolve, or the network does not reach it (no route);
- ``no_token``: the UI has no token to present at all.
"""

from __future__ import annotations

from typing import Literal

from ..client.connection import ConnectionProblem
from ..common.errors import Bxthre3Error, ClusterError, printable
from ..wire.security import TokenError

ProblemClass = Literal["stopped", "token", "network", "no_token", "other"]

_STOPPED_KINDS = frozenset({"refused", "went_away", "silent", "hung", "gone", "no_reply"})
_TOKEN_KINDS = frozenset({"token_refused", "no_token", "plaintext_server"})
_NETWORK_KINDS = frozenset({"unresolvable", "unreachable"})

_TOKEN_FIX = "`bxthre3 token` on the controller prints it"

_HOW_IT_STOPPED = {
    "refused": "its port refuses connections",
    "went_away": "its port refuses connections",
    "silent": "connecting to it gets no answer",
    "hung": "it accepts connections but no longer answers",
    "gone": "it closed the connection",
    "no_reply": "it no longer replies",
}


def classify_connection_problem(exc: BaseException, *, was_connected: bool) -> ProblemClass:
    """Which of the four stories `exc` tells (``other``: not a connection problem, e.g. a refused request)."""
    if isinstance(exc, TokenError):
        return "no_token"
    if isinstance(exc, ConnectionProblem):
        if exc.kind in _TOKEN_KINDS:
            return "token"
        if exc.kind in _NETWORK_KINDS:
            return "network"
        return "stopped"
    return "other"


def describe_connection_problem(exc: BaseException, *, was_connected: bool) -> str:
    """One line: what is wrong with the connection to the controller, and which flag or field fixes it.

    ``was_connected``: the monitor had a reply from this controller before this failure (so a refused
    port means it stopped, not that the address is wrong)."""
    return printable(" ".join(_words(exc, was_connected=was_connected).split()))


def _words(exc: BaseException, *, was_connected: bool) -> str:
    if isinstance(exc, TokenError):
        return (
            "No cluster token: enter it in the UI Node form (Esc, then 1), or start the UI with --token or "
            f"BXTHRE3_TOKEN ({_TOKEN_FIX})."
        )
    if not isinstance(exc, ConnectionProblem):
        if isinstance(exc, ClusterError):
            return f"The controller refused the request: {exc}"
        if isinstance(exc, Bxthre3Error):
            return str(exc)
        return f"Unexpected error talking to the controller ({type(exc).__name__}: {exc}); see the UI's log."
    at = exc.address
    kind = exc.kind
    if kind == "token_refused":
        return (
            f"The controller at {at} refused our token (it is another cluster's): enter the right one in the "
            f"UI Node form, or use --token / BXTHRE3_TOKEN ({_TOKEN_FIX})."
        )
    if kind == "no_token":
        return (
            f"The controller at {at} wants the cluster token, but the UI runs --insecure: start the UI without "
            f"--insecure, with --token or BXTHRE3_TOKEN ({_TOKEN_FIX})."
        )
    if kind == "plaintext_server":
        return (
            f"The controller at {at} runs --insecure (plaintext) and refuses our token: start the UI with "
            "--insecure too, or restart the controller without it."
        )
    if kind == "unresolvable":
        return (
            f"The name {at.host!r} does not resolve ({exc.detail or 'unknown host'}): check its spelling in "
            "--controller or the form's controller field, or give the controller's IP address."
        )
    if kind == "unreachable":
        before = "the network to it is gone" if was_connected else "this device is not on the controller's network"
        return (
            f"Cannot reach {at} ({exc.detail or 'no route'}): {before}, or the address is wrong "
            "(--controller, or the form's controller field)."
        )
    if was_connected or kind == "went_away":
        how = _HOW_IT_STOPPED[kind]
        return (
            f"The controller at {at} stopped: it answered before, now {how}. Restart it (`bxthre3 controller`, "
            "check its log); the monitor reconnects by itself."
        )
    if kind == "refused":
        return (
            f"Nothing is listening at {at}: start `bxthre3 controller` there, or fix the address and port "
            "(--controller, or the form's controller field)."
        )
    if kind == "silent":
        return (
            f"No answer from {at}: the device is off or not on this network, the address is wrong, or a "
            f"firewall drops port {at.port} (--controller, or the form's controller field)."
        )
    if kind == "hung":
        return (
            f"{at} accepts connections but does not answer the handshake: the controller is hung or overloaded "
            "(check its log), or that port is not a bxthre3 controller."
        )
    if kind == "gone":
        return f"The controller at {at} closed the connection before answering: it stopped or crashed (check its log)."
    return f"The controller at {at} is connected but does not reply: it is overloaded or hung (check its log)."
