"""Token buckets per peer: how the controller keeps one member from flooding it with submissions.

Pure (the caller passes the time), so the policy is unit-tested without sleeping.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass


@dataclass(slots=True)
class TokenBucket:
    """``burst`` actions at once, refilled at ``rate`` per second."""

    rate: float
    burst: float
    tokens: float
    updated: float

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class PerPeerLimit:
    """One bucket per peer identity, remembering at most ``max_peers`` (least recently seen forgotten:
    a forgotten peer starts with a full bucket, which is the worst it can gain)."""

    def __init__(self, rate: float, burst: int, max_peers: int = 10_000) -> None:
        self.rate = rate
        self.burst = burst
        self.max_peers = max_peers
        self._buckets: OrderedDict[bytes, TokenBucket] = OrderedDict()
        self.refused = 0

    def allow(self, peer: bytes, now: float) -> bool:
        bucket = self._buckets.pop(peer, None)
        if bucket is None:
            bucket = TokenBucket(self.rate, self.burst, float(self.burst), now)
        self._buckets[peer] = bucket
        while len(self._buckets) > self.max_peers:
            self._buckets.popitem(last=False)
        ok = bucket.take(now)
        if not ok:
            self.refused += 1
        return ok
