"""The silence limit policy: a LAN keeps `interval x liveness`, a slow lossy link gets several RTOs."""

from __future__ import annotations

import math
import random

import pytest

from bxthre3.wire.liveness import (
    CONNECT_TIMEOUT_S,
    MAX_CONNECT_TIMEOUT_S,
    MAX_SILENCE_S,
    MIN_CONNECT_TIMEOUT_S,
    RTO_FACTOR,
    RttEstimate,
    connect_timeout,
    silence_limit,
)


def test_without_samples_the_rto_is_one_second_as_in_rfc_6298() -> None:
    assert silence_limit(1.0, 3) == 5.0
    assert silence_limit(0.25, 4, RttEstimate()) == 4.25
    assert silence_limit(2.0, 5, RttEstimate()) == 10.0


def test_estimator_follows_rfc_6298() -> None:
    est = RttEstimate()
    assert est.add(0.4)
    assert est.srtt == 0.4 and est.rttvar == 0.2 and est.rto == pytest.approx(1.2)
    assert est.add(0.2)
    assert est.rttvar == pytest.approx(0.75 * 0.2 + 0.25 * 0.2)
    assert est.srtt == pytest.approx(0.875 * 0.4 + 0.125 * 0.2)
    assert est.samples == 2


@pytest.mark.parametrize("bad", [-0.001, 61.0, math.nan, math.inf])
def test_impossible_samples_are_ignored(bad: float) -> None:
    est = RttEstimate()
    est.add(0.01)
    assert not est.add(bad)
    assert est.srtt == 0.01 and est.samples == 1


def test_a_lan_keeps_the_configured_limit() -> None:
    est = RttEstimate()
    for i in range(50):
        est.add(0.0005 + (i % 3) * 0.0002)
    assert silence_limit(1.0, 3, est) == 3.0
    assert silence_limit(0.1, 3, est) == pytest.approx(0.3)


def test_a_phone_link_gets_several_retransmission_timeouts() -> None:
    """200 +- 100 ms each way: round trips 0.2-0.6 s, with some a TCP retransmission (+~1 s) longer."""
    rng = random.Random(7)
    est = RttEstimate()
    for _ in range(200):
        sample = rng.uniform(0.2, 0.6) + (1.0 if rng.random() < 0.1 else 0.0)
        est.add(sample)
    limit = silence_limit(1.0, 3, est)
    assert limit == pytest.approx(1.0 + RTO_FACTOR * est.rto)
    # More than the old 3 s, which a segment lost twice in a row (~1 + 2 RTOs of silence) overran,
    # yet a dead phone is still found within seconds.
    assert 5.0 < limit < 15.0


def test_the_adapted_limit_is_capped_but_never_below_the_configured_one() -> None:
    est = RttEstimate()
    est.add(59.0)
    assert silence_limit(1.0, 3, est) == MAX_SILENCE_S
    assert silence_limit(60.0, 3, est) == 180.0


def test_connect_timeout_is_one_rto_within_bounds() -> None:
    assert connect_timeout(0.0) == CONNECT_TIMEOUT_S  # not measured yet
    assert connect_timeout(math.nan) == CONNECT_TIMEOUT_S
    assert connect_timeout(0.003) == MIN_CONNECT_TIMEOUT_S  # a LAN
    assert connect_timeout(0.7) == 0.7  # a phone's network
    assert connect_timeout(50.0) == MAX_CONNECT_TIMEOUT_S
