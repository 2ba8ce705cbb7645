"""Which quarantined device a `trust` request means (`bxthre3 hosts trust DEVICE`), or why none.

A user types what `status` shows: a device's id, the start of it, or its name. Names are not unique
(one phone model, a cloned SD card), so a name counts only when one quarantined device has it; an id
prefix only from `MIN_PREFIX` characters and when it starts one quarantined id. Every refusal is one
line saying what matched and what to type instead. Pure: the controller hands in its scheduler's state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ..common.errors import printable
from ..scheduler import HostRecord, QuarantineRecord

MIN_PREFIX = 4
"""Characters of a device id that may stand for it (the ids are 32 hex digits)."""

MAX_DEVICE_TEXT = 128
"""Longer than any device id or name the controller keeps (64 each): refused without a search."""

SHOWN_ID = 8
"""How much of an id a message shows."""

MAX_LISTED = 5
"""Quarantined devices a refusal names (the rest are counted): the error stays one line."""


def short_id(device_id: str) -> str:
    return printable(device_id[:SHOWN_ID]) + ("…" if len(device_id) > SHOWN_ID else "")


def resolve(
    quarantined: Mapping[str, QuarantineRecord], hosts: Iterable[HostRecord], text: str
) -> tuple[QuarantineRecord | None, str]:
    """The quarantined device ``text`` names, or None and the one-line reason (for the reply's `error`)."""
    if not text.strip():
        return None, "give a device id (4 or more characters of it) or name; `bxthre3 status` lists quarantined ones"
    if len(text) > MAX_DEVICE_TEXT:
        return None, f"a device id or name is at most {MAX_DEVICE_TEXT} characters, not {len(text)}"
    shown = f"'{printable(text)}'"
    if text in quarantined:
        return quarantined[text], ""
    if len(text) >= MIN_PREFIX:
        by_prefix = [q for i, q in quarantined.items() if i.startswith(text)]
        if len(by_prefix) == 1:
            return by_prefix[0], ""
        if by_prefix:
            ids = ", ".join(short_id(q.device_id) for q in by_prefix)
            return None, (
                f"device id prefix {shown} is ambiguous: {len(by_prefix)} quarantined devices' ids start with it "
                f"({ids}); give more of the id"
            )
    by_name = [q for q in quarantined.values() if q.device == text]
    if len(by_name) == 1:
        return by_name[0], ""
    if by_name:
        ids = ", ".join(short_id(q.device_id) for q in by_name)
        return None, (
            f"device {shown} is ambiguous: {len(by_name)} quarantined devices are named {printable(text)} "
            f"(ids {ids}); give the id"
        )
    return None, _not_quarantined(quarantined, list(hosts), text, shown)


def _not_quarantined(
    quarantined: Mapping[str, QuarantineRecord], hosts: list[HostRecord], text: str, shown: str
) -> str:
    """Why nothing quarantined matched: the device is fine, the prefix is short, or there is no such device."""
    live = {h.device_id: h.device for h in hosts if h.device_id}
    ids = [i for i in live if i == text or (len(text) >= MIN_PREFIX and i.startswith(text))]
    names = {i for i, name in live.items() if name == text}
    if ids or names:
        which = ", ".join(f"{printable(live[i])} {short_id(i)}" for i in sorted(set(ids) | names))
        return f"device {shown} is not quarantined ({which}: its hosts get tasks); nothing to trust"
    if len(text) < MIN_PREFIX and any(i.startswith(text) for i in quarantined):
        return f"device id prefix {shown} is too short: give at least {MIN_PREFIX} characters of the id"
    if not quarantined:
        return f"no device matches {shown}, and no device is quarantined; nothing to trust"
    named = [f"{printable(q.device)} {short_id(q.device_id)}" for q in quarantined.values()]
    listed = ", ".join(named[:MAX_LISTED]) + (f" and {len(named) - MAX_LISTED} more" if len(named) > MAX_LISTED else "")
    return (
        f"no quarantined device matches {shown} by id, id prefix or name; quarantined: {listed} "
        "(`bxthre3 status` lists them)"
    )
