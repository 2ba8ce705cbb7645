"""How long a peer may stay silent before it is declared dead, adapted to its measured round trip.

Pure policy (no clock, no I/O): the controller feeds round-trip samples it measured from heartbeat
echoes and asks for a host's silence limit; the scheduler applies it on every tick.

Why adapt: a fixed ``interval x liveness`` (3 s by default) is right on a LAN and wrong on a phone's
network. Over a link of 200 ± 100 ms each way with 5 % loss, TCP hides a lost packet by resending it
after its retransmission timeout (RTO ~ srtt + 4 x rttvar, about a second there), and everything
behind it on the connection waits: two losses of the same segment are a 3 s silence, and the host was
declared dead, its work requeued and run twice. The limit therefore grows with the round trip the
way TCP's own RTO does (RFC 6298's estimator), times a safety factor, and never falls below the
configured one: a LAN behaves exactly as before.
"""

from __future__ import annotations

from dataclasses import dataclass

RTO_FACTOR = 4.0
"""Silence limit = one heartbeat interval + this many RTOs (when longer than interval x liveness).

One lost packet costs TCP about one RTO, a second loss of the same segment two more (it doubles):
four RTOs cover a packet lost twice in a row plus the delivery of what waited behind it."""

INITIAL_RTO_S = 1.0
"""The RTO of a path with no sample yet (RFC 6298, 2.1): a host that just registered is not assumed to be
on a LAN. Its first sample comes a round trip after it joins (the controller probes new hosts at once),
so on a LAN this lasts ~0.1 s; over a phone's network it covers the first second, where TCP's own RTO
is still 1 s and one lost packet would otherwise have been a death."""

MAX_SAMPLE_S = 60.0
"""Round-trip samples longer than this (or negative: a wall clock stepped) are ignored."""

MAX_SILENCE_S = 120.0
"""Upper bound of an adapted limit: a host that silent is gone, whatever its link was like."""


@dataclass(slots=True)
class RttEstimate:
    """Smoothed round trip and its variation (RFC 6298, section 2), from samples in seconds."""

    srtt: float | None = None
    """Smoothed round trip (None: no sample yet)."""
    rttvar: float = 0.0
    """Smoothed mean deviation of the samples from `srtt`."""
    samples: int = 0

    def add(self, sample: float) -> bool:
        """Fold in one measured round trip; returns False (and changes nothing) for an impossible one."""
        if not 0.0 <= sample <= MAX_SAMPLE_S:  # also refuses NaN
            return False
        if self.srtt is None:
            self.srtt = sample
            self.rttvar = sample / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - sample)
            self.srtt = 0.875 * self.srtt + 0.125 * sample
        self.samples += 1
        return True

    @property
    def rto(self) -> float:
        """TCP's retransmission timeout for this path (without TCP's 200 ms floor: LANs keep their limit)."""
        if self.srtt is None:
            return INITIAL_RTO_S
        return self.srtt + 4.0 * self.rttvar


CONNECT_TIMEOUT_S = 1.0
"""How long a TCP connect may take before it is abandoned and tried again, on a path never measured."""

MIN_CONNECT_TIMEOUT_S = 0.5
MAX_CONNECT_TIMEOUT_S = 3.0


def connect_timeout(rto: float) -> float:
    """Seconds to give a TCP connect to the controller before starting a new one (`rto`: the controller's
    retransmission timeout for this path, 0 when it has none).

    Why: during an outage the kernel resends a SYN after 1, 3, 7, 15 s; ZeroMQ's CONNECT_TIMEOUT cuts that
    short and retries 100 ms later, so the first SYN after the link returns leaves within one timeout. One
    RTO is what TCP itself waits for an answer on this path: on a LAN the floor (0.5 s), over a phone's
    network (400 ms round trips) ~0.7 s, where a fixed second cost 0.3 s of every recovery on average.
    Bounded so that a wild estimate neither stops connects from completing nor leaves a host dark.
    """
    if not rto > 0:  # also NaN
        return CONNECT_TIMEOUT_S
    return min(MAX_CONNECT_TIMEOUT_S, max(MIN_CONNECT_TIMEOUT_S, rto))


def silence_limit(interval: float, liveness: int, rtt: RttEstimate | None = None) -> float:
    """Seconds a peer heartbeating every `interval` may be silent before it is considered dead.

    ``max(interval x liveness, interval + RTO_FACTOR x RTO)``, capped at MAX_SILENCE_S (but never below
    the configured limit): the configured limit on a fast link, several TCP retransmission timeouts
    on a slow, lossy one, so that losing one packet (or the same one twice) never kills a host. Without
    a sample (`rtt` None or empty) the RTO is INITIAL_RTO_S.
    """
    base = interval * liveness
    rto = INITIAL_RTO_S if rtt is None else rtt.rto
    return max(base, min(MAX_SILENCE_S, interval + RTO_FACTOR * rto))
