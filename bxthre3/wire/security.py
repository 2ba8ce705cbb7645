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
import logging
import os
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import zmq
from zmq.utils import z85

from ..common import paths
from ..common.digests import compare_digest as _compare_digest
from ..common.digests import hmac_sha256, sha256_hex
from ..common.errors import Bxthre3Error
from ..common.stop_event import StopEvent

log = logging.getLogger("bxthre3.security")  # the name log lines show: kept from before the move to packages

TOKEN_ENV = "BXTHRE3_TOKEN"
TOKEN_FILE = "token"
"""Name of the token file in the controller's state directory (mode 0600)."""

_PREFIX = "bxt1-"
_TOKEN_RE = re.compile(r"^bxt1-[A-Za-z0-9_-]{43}$")


class TokenError(Bxthre3Error):
    """No token, or one that is not a Bxthre3 token."""


def default_state_dir() -> Path:
    """The controller's state dir (journal, token): where a member on the same device finds the token.

    Here rather than in the store so that hosts, which read the token from it, never load
    SQLite and the scheduler.
    """
    return paths.data_home() / "controller"


def new_token() -> str:
    return _PREFIX + base64.urlsafe_b64encode(os.urandom(32)).decode("ascii").rstrip("=")


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
    prk = hmac_sha256(b"bxthre3 token v1", _token_bytes(token))
    return hmac_sha256(prk, info + b"\x01")


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
        return sha256_hex(self.server_public)[:12]


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


HOST_KEY_BYTES = 32
"""A host's identity key: 256 random bits, kept per node id (see `load_or_create_host_key`)."""


def host_key_path(node_id: str) -> Path:
    """``$XDG_STATE_HOME/bxthre3/host_keys/<sha256 of the node id>`` (a node id never becomes a path)."""
    return paths.state_home() / "host_keys" / sha256_hex(node_id.encode("utf-8", "surrogatepass"))


def new_host_key() -> bytes:
    return os.urandom(HOST_KEY_BYTES)


def load_or_create_host_key(node_id: str, path: Path | None = None) -> bytes:
    """The secret this device's host named `node_id` proves itself with, created on first use.

    Why it is kept on disk: the controller pins a node id to the key of the host that holds it,
    and refuses another key while that host lives. A host restarted under the same node id (by
    its node manager after a crash, or by hand) must present the same key to take over its own
    stale connection and its attempts at once, instead of being refused until liveness runs out.
    Mode 0600 in a 0700 directory: whoever reads it can act as this host. Creation is atomic
    (written aside, then linked into place), so two processes starting at once agree on one key.
    A file that cannot be read or written gives a key for this process only (logged).
    """
    path = path or host_key_path(node_id)
    try:
        data = path.read_bytes()
        if len(data) == HOST_KEY_BYTES:
            return data
        log.warning("host key %s is damaged (%d bytes); making a new one", path, len(data))
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("cannot read the host key %s (%s); using a key for this process only", path, exc.strerror)
        return new_host_key()
    key = new_host_key()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:  # another process of this node id won, or the file was damaged
            existing = path.read_bytes()
            if len(existing) == HOST_KEY_BYTES:
                return existing
            os.replace(tmp, path)
    except OSError as exc:
        log.warning("cannot keep the host key in %s (%s); using a key for this process only", path, exc.strerror)
    finally:
        try:
            tmp.unlink()
        except OSError:
            pass
    return key


def host_key_pin(key: bytes) -> str:
    """What the controller keeps of a host's key: its SHA-256 (never shown, never sent back)."""
    return sha256_hex(key)


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

    The ZAP handler (a thread answering libzmq's ZAP requests, RFC 27) admits a CURVE client
    only if it presents the member key; a client with the wrong token fails before that, while
    the server decrypts its HELLO. Both failures are counted and logged at most once a minute,
    so a stranger hammering the port cannot fill the log.

    It is written here rather than taken from pyzmq's ThreadAuthenticator, which runs an
    asyncio loop: asyncio brings ssl and OpenSSL, ~7 MB of the controller's ~39.
    """

    LOG_EVERY_S = 60.0
    ZAP_ENDPOINT = "inproc://zeromq.zap.01"
    """Where libzmq sends ZAP requests (fixed by the RFC); one handler per context."""

    def __init__(self, context: zmq.Context, keys: CurveKeys) -> None:
        self.keys = keys
        self.context = context
        self.failures = 0
        self._logged_at = float("-inf")
        self._logged_count = 0
        self.monitor: zmq.Socket | None = None
        self.zap: zmq.Socket | None = None
        """The ZAP socket when answered by the caller's loop (`bind_zap`)."""
        self._stop = StopEvent()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def start(self) -> None:
        """Bind the ZAP endpoint (before any handshake can need it) and answer in a thread."""
        self._thread = threading.Thread(target=self._serve_zap, name="bxthre3-zap", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise Bxthre3Error(f"cannot start the ZAP handler: {self._error}")

    def bind_zap(self) -> zmq.Socket:
        """Bind the ZAP endpoint for a caller that answers in its own loop (`serve_pending` when the returned
        socket is readable), instead of `start`'s thread.

        Why: a handshake needs one ZAP answer, and a thread gets the GIL from a busy loop only every switch
        interval (5 ms): at most ~200 handshakes a second, so 10,000 hosts registering at once took minutes,
        past libzmq's 30 s handshake limit, and their retries made it worse. The loop answers all waiting."""
        sock = self.context.socket(zmq.REP)
        sock.setsockopt(zmq.LINGER, 0)
        sock.bind(self.ZAP_ENDPOINT)
        self.zap = sock
        return sock

    def serve_pending(self, limit: int = 10_000) -> int:
        """Answer the ZAP requests waiting on `bind_zap`'s socket (at most `limit`); returns how many."""
        assert self.zap is not None
        for n in range(limit):
            try:
                request = self.zap.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return n
            self.zap.send_multipart(self._zap_reply(request))
        return limit

    def _serve_zap(self) -> None:
        try:
            sock = self.context.socket(zmq.REP)
            sock.setsockopt(zmq.LINGER, 0)
            sock.bind(self.ZAP_ENDPOINT)
        except zmq.ZMQError as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(self._stop.fileno(), zmq.POLLIN)  # stop() wakes us at once
        try:
            while not self._stop.is_set():
                if sock in dict(poller.poll(1000)):
                    sock.send_multipart(self._zap_reply(sock.recv_multipart()))
        finally:
            sock.close(linger=0)

    def _zap_reply(self, frames: list[bytes]) -> list[bytes]:
        """RFC 27: [version, request id, domain, address, identity, mechanism, credentials...] in,
        [version, request id, status code, status text, user id, metadata] out."""
        if len(frames) < 6 or frames[0] != b"1.0":
            request_id = frames[1] if len(frames) > 1 else b""
            return [b"1.0", request_id, b"400", b"malformed ZAP request", b"", b""]
        request_id, domain, mechanism, credentials = frames[1], frames[2], frames[5], frames[6:]
        member = (
            domain == b"bxthre3"
            and mechanism == b"CURVE"
            and len(credentials) == 1
            and len(credentials[0]) == 32
            and _compare_digest(z85.encode(credentials[0]), self.keys.member_public)  # the raw key, Z85 here
        )
        if not member:
            self.failed("a client key that is not the cluster's (a different token?)")
            return [b"1.0", request_id, b"400", b"not a member of this cluster", b"", b""]
        return [b"1.0", request_id, b"200", b"OK", b"member", b""]

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
        if self.zap is not None:
            self.zap.close(linger=0)
            self.zap = None
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            if not self._thread.is_alive():
                self._stop.close()


def _protocol_error(value: object) -> str:
    names = {
        getattr(zmq, "PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH", -1): "security mechanism mismatch: a plaintext client?",
        getattr(zmq, "PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC", -1): "cryptographic error: a wrong token?",
    }
    return names.get(value, f"ZMTP error {value}") if isinstance(value, int) else "no detail"
