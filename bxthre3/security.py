"""The cluster token and the CurveZMQ keys derived from it.

Why one token and derived keys: a user copies exactly one secret to each device (typed, pasted
or read off the controller's TUI), yet every connection gets CurveZMQ encryption with mutual
authentication. Both key pairs are derived from the token with HKDF-SHA256 (RFC 5869):

    prk            = HMAC-SHA256(key=b"bxthre3 token v1", msg=the token's 32 random bytes)
    controller key = HMAC-SHA256(prk, b"bxthre3 controller curve secret v1" || 0x01)
    member key     = HMAC-SHA256(prk, b"bxthre3 member curve secret v1" || 0x01)

Each 32-byte output is a Curve25519 secret key (libsodium clamps it); the public halves follow.
A peer without the token cannot compute the controller's public key, so its CURVE handshake
fails; one that somehow learnt the public key still cannot present the member key pair, and the
controller's ZAP handler refuses it. Members share one key pair: a member with the token is
trusted (docs/SECURITY.md).

The token is 256 random bits, shown as ``bxt1-`` + 43 URL-safe base64 characters. Only that
format is accepted: a short, chosen password could be guessed offline from a captured handshake.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import zmq
from zmq.utils import z85

from .errors import Bxthre3Error

log = logging.getLogger(__name__)

TOKEN_ENV = "BXTHRE3_TOKEN"
TOKEN_FILE = "token"
"""Name of the token file in the controller's state directory (mode 0600)."""

_PREFIX = "bxt1-"
_TOKEN_RE = re.compile(r"^bxt1-[A-Za-z0-9_-]{43}$")


class TokenError(Bxthre3Error):
    """No token, or one that is not a Bxthre3 token."""


def new_token() -> str:
    return _PREFIX + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii").rstrip("=")


def check_token(token: str, where: str) -> str:
    """The token stripped of surrounding whitespace, or a TokenError saying what is wrong with it."""
    token = token.strip()
    if not _TOKEN_RE.match(token):
        shown = f"{token[:8]}… ({len(token)} characters)" if len(token) > 8 else repr(token)
        raise TokenError(
            f"{where}: {shown} is not a cluster token; expected 'bxt1-' and 43 more characters, "
            "as `bxthre3 token` prints on the controller"
        )
    return token


def _token_bytes(token: str) -> bytes:
    return base64.urlsafe_b64decode(token[len(_PREFIX) :] + "=")


def _hkdf(token: str, info: bytes) -> bytes:
    prk = hmac.new(b"bxthre3 token v1", _token_bytes(token), hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()


@dataclass(frozen=True, slots=True)
class CurveKeys:
    """Z85-encoded CurveZMQ keys of one cluster, all derived from its token."""

    server_public: bytes
    server_secret: bytes
    member_public: bytes
    member_secret: bytes

    @classmethod
    def from_token(cls, token: str) -> CurveKeys:
        server_secret = z85.encode(_hkdf(token, b"bxthre3 controller curve secret v1"))
        member_secret = z85.encode(_hkdf(token, b"bxthre3 member curve secret v1"))
        return cls(
            server_public=zmq.curve_public(server_secret),
            server_secret=server_secret,
            member_public=zmq.curve_public(member_secret),
            member_secret=member_secret,
        )

    def fingerprint(self) -> str:
        """A short, public name for the cluster's keys (safe to log: it reveals nothing usable)."""
        return hashlib.sha256(self.server_public).hexdigest()[:12]


def cluster_id_for(keys: CurveKeys) -> str:
    """The cluster id a controller announces by default, and the only one its members follow.

    It names the key fingerprint (public, reveals nothing usable), so a member ignores beacons of
    other clusters and forged ones that do not copy it; a beacon never carries a secret."""
    return f"bx-{keys.fingerprint()[:8]}"


def secure_server(sock: zmq.Socket, keys: CurveKeys) -> None:
    """Make ``sock`` a CURVE server (call before bind); the ZAP handler then vets each member."""
    sock.curve_server = True
    sock.curve_secretkey = keys.server_secret
    sock.curve_publickey = keys.server_public
    sock.zap_domain = b"bxthre3"


def secure_client(sock: zmq.Socket, keys: CurveKeys) -> None:
    """Make ``sock`` a CURVE client of the cluster's controller (call before connect)."""
    sock.curve_serverkey = keys.server_public
    sock.curve_publickey = keys.member_public
    sock.curve_secretkey = keys.member_secret


# ---------------------------------------------------------------------- token storage


def token_path(state_dir: Path | str) -> Path:
    return Path(state_dir) / TOKEN_FILE


def load_or_create_token(state_dir: Path | str) -> str:
    """The controller's token: read from its state dir, or created there (mode 0600) on first start."""
    path = token_path(state_dir)
    try:
        return read_token_file(path)
    except FileNotFoundError:
        pass
    if str(state_dir) == ":memory:":
        raise TokenError("an in-memory controller (--state-dir :memory:) keeps no token: pass --token or BXTHRE3_TOKEN")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    token = new_token()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first: use theirs
        return read_token_file(path)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    log.info("created a new cluster token in %s", path)
    return token


def read_token_file(path: Path) -> str:
    """The token in ``path``; FileNotFoundError if there is none, TokenError if it is unusable."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise TokenError(f"cannot read the cluster token {path}: {exc.strerror}") from exc
    if mode & 0o077:
        log.warning("%s is readable by other users (mode %o); `chmod 600 %s`", path, mode & 0o777, path)
    return check_token(text, str(path))


def resolve_token(
    explicit: str | None, *, environ: Mapping[str, str] | None = None, state_dir: Path | str | None = None
) -> str:
    """``--token`` > ``$BXTHRE3_TOKEN`` > the token of a controller on this device (its state dir)."""
    environ = os.environ if environ is None else environ
    if explicit:
        return check_token(explicit, "--token")
    if environ.get(TOKEN_ENV, "").strip():
        return check_token(environ[TOKEN_ENV], f"${TOKEN_ENV}")
    if state_dir is not None and str(state_dir) != ":memory:":
        try:
            return read_token_file(token_path(state_dir))
        except FileNotFoundError:
            pass
    raise TokenError(
        "no cluster token: pass --token or set BXTHRE3_TOKEN (on the controller's device, "
        "`bxthre3 token` prints it); --insecure talks plaintext to a controller on loopback only"
    )


# ---------------------------------------------------------------------- the controller's side


class HandshakeGuard:
    """ZAP handler and handshake watch of the controller's socket.

    The ZAP handler (pyzmq's ThreadAuthenticator, in its own thread) admits a CURVE client only
    if it presents the member key; a client with the wrong token fails before that, while the
    server decrypts its HELLO. Both failures are counted and logged at most once a minute, so a
    stranger hammering the port cannot fill the log.
    """

    LOG_EVERY_S = 60.0

    def __init__(self, context: zmq.Context, keys: CurveKeys) -> None:
        from zmq.auth.thread import ThreadAuthenticator

        self.keys = keys
        self.failures = 0
        self._logged_at = float("-inf")
        self._logged_count = 0
        self.monitor: zmq.Socket | None = None
        self._auth = ThreadAuthenticator(context, log=logging.getLogger("bxthre3.zap"))
        guard = self

        class _Members:
            def callback(self, domain: str, key: bytes) -> bool:
                ok = hmac.compare_digest(key, guard.keys.member_public)
                if not ok:
                    guard.failed("a client key that is not the cluster's (a different token?)")
                return ok

        self._members = _Members()

    def start(self) -> None:
        self._auth.start()
        self._auth.configure_curve_callback(domain="bxthre3", credentials_provider=self._members)

    def watch(self, sock: zmq.Socket) -> None:
        """Listen to the socket's handshake failures (wrong server key, plaintext client...)."""
        self.monitor = sock.get_monitor_socket(
            zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_AUTH
        )

    def read_events(self) -> None:
        from zmq.utils.monitor import recv_monitor_message

        assert self.monitor is not None
        for _ in range(1000):
            try:
                event = recv_monitor_message(self.monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            code = event.get("event")
            if code == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                continue  # a ZAP denial: already counted by the callback
            self.failed(f"a failed handshake ({_protocol_error(event.get('value'))})")

    def failed(self, what: str) -> None:
        self.failures += 1
        now = time.monotonic()
        if now - self._logged_at >= self.LOG_EVERY_S:
            since = self.failures - self._logged_count
            log.warning(
                "refused a connection: %s; %d refused since the last report. Hosts and UIs need this "
                "cluster's token (bxthre3 token)", what, since,
            )  # fmt: skip
            self._logged_at = now
            self._logged_count = self.failures

    def stop(self) -> None:
        if self.monitor is not None:
            self.monitor.close(linger=0)
            self.monitor = None
        self._auth.stop()


def _protocol_error(value: object) -> str:
    names = {
        getattr(zmq, "PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH", -1): "security mechanism mismatch: a plaintext client?",
        getattr(zmq, "PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC", -1): "cryptographic error: a wrong token?",
    }
    return names.get(value, f"ZMTP error {value}") if isinstance(value, int) else "no detail"

