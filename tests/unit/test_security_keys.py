"""Token format, key derivation and the per-peer rate limit (pure parts of the security layer)."""

from __future__ import annotations

import pytest
import zmq

from bxthre3.controller.rate_limit import PerPeerLimit, TokenBucket
from bxthre3.wire.security import CurveKeys, TokenError, check_token, new_token, resolve_token


def test_new_tokens_are_well_formed_and_different() -> None:
    tokens = {new_token() for _ in range(50)}
    assert len(tokens) == 50
    for token in tokens:
        assert check_token(token, "t") == token and len(token) == 48


@pytest.mark.parametrize("bad", ["", "hunter2", "bxt1-" + "a" * 42, "bxt1-" + "a" * 44, "bxt2-" + "a" * 43,
                                 "bxt1-" + "a" * 42 + "!"])  # fmt: skip
def test_malformed_tokens_are_refused_with_a_reason(bad: str) -> None:
    with pytest.raises(TokenError, match="is not a cluster token; expected 'bxt1-'"):
        check_token(bad, "--token")


def test_keys_are_derived_deterministically_and_form_valid_curve_pairs() -> None:
    token = "bxt1-" + "A" * 43
    a, b = CurveKeys.from_token(token), CurveKeys.from_token(token)
    assert a == b
    assert a.server_public == zmq.curve_public(a.server_secret) and a.member_public == zmq.curve_public(a.member_secret)
    assert len({a.server_public, a.server_secret, a.member_public, a.member_secret}) == 4
    other = CurveKeys.from_token("bxt1-" + "B" * 43)
    assert other.server_public != a.server_public and other.member_public != a.member_public
    assert a.fingerprint() != other.fingerprint() and len(a.fingerprint()) == 12


def test_token_resolution_order(tmp_path) -> None:
    env_token, file_token, flag_token = new_token(), new_token(), new_token()
    (tmp_path / "token").write_text(file_token + "\n")
    (tmp_path / "token").chmod(0o600)
    assert resolve_token(flag_token, environ={"BXTHRE3_TOKEN": env_token}, state_dir=tmp_path) == flag_token
    assert resolve_token(None, environ={"BXTHRE3_TOKEN": env_token}, state_dir=tmp_path) == env_token
    assert resolve_token(None, environ={}, state_dir=tmp_path) == file_token
    with pytest.raises(TokenError, match="no cluster token"):
        resolve_token(None, environ={}, state_dir=tmp_path / "none")
    with pytest.raises(TokenError, match=r"\$BXTHRE3_TOKEN"):
        resolve_token(None, environ={"BXTHRE3_TOKEN": "oops"}, state_dir=tmp_path)


def test_token_bucket_and_per_peer_limit() -> None:
    bucket = TokenBucket(rate=2.0, burst=3, tokens=3.0, updated=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(0.5) and not bucket.take(0.5), "one token back after 0.5 s at 2/s"
    limit = PerPeerLimit(rate=1.0, burst=2, max_peers=2)
    assert limit.allow(b"a", 0) and limit.allow(b"a", 0) and not limit.allow(b"a", 0)
    assert limit.allow(b"b", 0), "peers have their own buckets"
    limit.allow(b"c", 0)  # forgets the least recently seen (a)
    assert limit.allow(b"a", 0) and limit.refused == 1


def test_zap_handler_admits_only_the_member_key_and_survives_malformed_requests() -> None:
    import zmq
    from zmq.utils import z85

    from bxthre3.wire.security import CurveKeys, HandshakeGuard, new_token

    keys = CurveKeys.from_token(new_token())
    guard = HandshakeGuard(zmq.Context.instance(), keys)  # not started: the reply logic alone
    member = z85.decode(keys.member_public)
    stranger = z85.decode(CurveKeys.from_token(new_token()).member_public)
    ok = guard._zap_reply([b"1.0", b"7", b"bxthre3", b"127.0.0.1", b"", b"CURVE", member])
    assert ok[:3] == [b"1.0", b"7", b"200"]
    refused = [
        [b"1.0", b"8", b"bxthre3", b"127.0.0.1", b"", b"CURVE", stranger],
        [b"1.0", b"9", b"other", b"127.0.0.1", b"", b"CURVE", member],
        [b"1.0", b"10", b"bxthre3", b"127.0.0.1", b"", b"PLAIN", b"user", b"pass"],
        [b"1.0", b"11", b"bxthre3", b"127.0.0.1", b"", b"CURVE", member[:31]],
        [b"1.0", b"12", b"bxthre3"],
        [b"2.0", b"13", b"bxthre3", b"127.0.0.1", b"", b"CURVE", member],
        [],
    ]
    for frames in refused:
        reply = guard._zap_reply(frames)
        assert reply[0] == b"1.0" and reply[2] == b"400" and len(reply) == 6, frames
    assert guard.failures == 4  # the three malformed requests are refused without counting as strangers
