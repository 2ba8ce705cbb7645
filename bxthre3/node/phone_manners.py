"""Phone manners: a phone lends its CPU only while that costs its owner nothing they would notice.

On Android the node manager reads the battery with Termux:API's `termux-battery-status` and
pauses its hosts (they finish what they run and take nothing new) when the phone is unplugged
and low, or hot; it resumes with hysteresis, so a phone at the threshold does not flap. The
policy is pure and unit-tested; reading the battery is the only I/O, always under a timeout
(`termux-battery-status` hangs when the Termux:API app is missing or asleep).
"""

from __future__ import annotations

import json
import logging
import subprocess
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

log = logging.getLogger("bxthre3.phone_manners")  # the name log lines show: kept from before the move to packages

BATTERY_COMMAND = ("termux-battery-status",)
BATTERY_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class BatteryReading:
    percentage: int | None
    plugged: bool | None
    temperature_c: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class MannersPolicy:
    """Defaults: pause below 20 % unplugged, resume at 30 % or on the charger; pause at 42 °C, resume at 39 °C."""

    pause_below_pct: int = 20
    resume_at_pct: int = 30
    pause_at_c: float = 42.0
    resume_at_c: float = 39.0


def decide(reading: BatteryReading | None, paused: str, policy: MannersPolicy) -> str:
    """Why the phone should rest now ("" = it may work), given why it rested until now (``paused``)."""
    if reading is None:
        return paused  # no reading, no change: a flaky Termux:API must not flip the hosts
    temp, pct, plugged = reading.temperature_c, reading.percentage, reading.plugged
    if temp is not None:
        if temp >= policy.pause_at_c:
            return f"too hot: {temp:.1f} °C (pauses at {policy.pause_at_c:g} °C)"
        if paused.startswith(("too hot", "cooling down")) and temp > policy.resume_at_c:
            return f"cooling down: {temp:.1f} °C (resumes at {policy.resume_at_c:g} °C)"
    if pct is not None and plugged is False:
        if pct < policy.pause_below_pct:
            return f"battery {pct}%, unplugged (pauses below {policy.pause_below_pct}%)"
        if paused.startswith("battery") and pct < policy.resume_at_pct:
            return f"battery {pct}%, unplugged (resumes at {policy.resume_at_pct}% or on the charger)"
    return ""


def parse_battery_status(text: str) -> BatteryReading:
    """`termux-battery-status` JSON: {"percentage": 57, "plugged": "UNPLUGGED", "temperature": 31.2, ...}."""
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    pct = data.get("percentage")
    plugged = data.get("plugged")
    temp = data.get("temperature")
    return BatteryReading(
        percentage=int(pct) if isinstance(pct, int | float) and not isinstance(pct, bool) else None,
        plugged=(plugged != "UNPLUGGED") if isinstance(plugged, str) else None,
        temperature_c=float(temp) if isinstance(temp, int | float) and not isinstance(temp, bool) else None,
    )


Runner = Callable[..., subprocess.CompletedProcess[str]]


def read_battery(run: Runner = subprocess.run, timeout: float = BATTERY_TIMEOUT_S) -> BatteryReading | None:
    """The battery now, or None (command missing, hanging, failing, or saying something unreadable)."""
    try:
        proc = run(list(BATTERY_COMMAND), capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError:
        log.debug("termux-battery-status not installed (pkg install termux-api, and the Termux:API app)")
        return None
    except subprocess.TimeoutExpired:
        log.warning("termux-battery-status gave no answer in %.0f s (is the Termux:API app installed?)", timeout)
        return None
    except OSError as exc:
        log.warning("cannot run termux-battery-status: %s", exc)
        return None
    if proc.returncode != 0:
        log.warning("termux-battery-status failed (exit %d): %s", proc.returncode, (proc.stderr or "").strip()[:200])
        return None
    try:
        return parse_battery_status(proc.stdout)
    except (ValueError, TypeError) as exc:
        log.warning("cannot read termux-battery-status output: %s", exc)
        return None


class PhoneManners:
    """Keeps the pause file of this device's hosts in step with the battery."""

    def __init__(
        self,
        pause_file: Any,
        policy: MannersPolicy | None = None,
        reader: Callable[[], BatteryReading | None] = read_battery,
    ) -> None:
        from pathlib import Path

        self.pause_file = Path(pause_file)
        self.policy = policy or MannersPolicy()
        self.reader = reader
        self.paused = ""
        self.last_reading: BatteryReading | None = None
        self._write("")

    def check(self) -> str:
        """Read the battery, decide, update the pause file when the decision changed; returns the reason."""
        reading = self.reader()
        if reading is not None:
            self.last_reading = reading
        reason = decide(reading, self.paused, self.policy)
        if reason != self.paused:
            if reason and not self.paused:
                log.warning("pausing this device's hosts: %s", reason)
            elif not reason:
                log.info("resuming this device's hosts (%s)", self.describe())
            self.paused = reason
            self._write(reason)
        return reason

    def describe(self) -> str:
        r = self.last_reading
        if r is None:
            return "no battery reading"
        parts = []
        if r.percentage is not None:
            parts.append(f"{r.percentage}%")
        if r.plugged is not None:
            parts.append("plugged in" if r.plugged else "unplugged")
        if r.temperature_c is not None:
            parts.append(f"{r.temperature_c:.1f} °C")
        return ", ".join(parts) or "no battery reading"

    def _write(self, reason: str) -> None:
        try:
            if reason:
                self.pause_file.parent.mkdir(parents=True, exist_ok=True)
                self.pause_file.write_text(reason + "\n")
            else:
                self.pause_file.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("cannot update the pause file %s: %s", self.pause_file, exc)

    def snapshot(self) -> dict[str, Any]:
        return {
            "paused": self.paused,
            "battery": self.last_reading.as_dict() if self.last_reading else None,
            "policy": asdict(self.policy),
        }
