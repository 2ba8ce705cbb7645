"""How much RAM and how many CPUs this device can give us, on Linux, macOS and Android.

Each source may fail for its own reason: psutil may be missing (it does not always build in
Termux) or may itself read a /proc file Android hides from apps; /proc/meminfo may be
unreadable (SELinux on some Android versions); sysconf may not know SC_AVPHYS_PAGES
(macOS). Every failure falls through to the next source, and only when all fail does
:func:`available_ram_mb` raise.

Note that ``sys.platform == "linux"`` says nothing about POSIX behaviour here: Python
built for Termux before 3.13 reports "linux" on Android. Ask :func:`is_android`.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from ..common.errors import Bxthre3Error

log = logging.getLogger("bxthre3.ram_probe")  # the name log lines show: kept from before the move to packages

MiB = 1024 * 1024

PROC_MEMINFO = Path("/proc/meminfo")
"""Where the kernel reports memory, in kB per line (``MemAvailable:  123456 kB``)."""


class RamProbeError(Bxthre3Error):
    """No source could tell how much RAM is available."""


def is_android(platform: str | None = None, environ: Mapping[str, str] | None = None) -> bool:
    """True in Termux or any Android Python, whatever ``sys.platform`` says."""
    platform = sys.platform if platform is None else platform
    environ = os.environ if environ is None else environ
    return platform == "android" or "ANDROID_ROOT" in environ or "TERMUX_VERSION" in environ


def cpu_count() -> int:
    """CPUs this process may run on (its affinity mask where known), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _from_psutil() -> int:
    import psutil

    return int(psutil.virtual_memory().available)


def _from_meminfo(path: Path) -> int:
    """Bytes available from a meminfo file; MemFree+Buffers+Cached on kernels before 3.14."""
    fields: dict[str, int] = {}
    for line in path.read_text().splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            fields[key.strip()] = int(parts[0]) * 1024  # the kernel's "kB" is KiB
    if "MemAvailable" in fields:
        return fields["MemAvailable"]
    if "MemFree" in fields:
        return fields["MemFree"] + fields.get("Buffers", 0) + fields.get("Cached", 0)
    raise ValueError(f"{path} has neither MemAvailable nor MemFree")


def _from_sysconf() -> int:
    pages = os.sysconf("SC_AVPHYS_PAGES")
    page_size = os.sysconf("SC_PAGE_SIZE")
    if pages < 0 or page_size <= 0:
        raise ValueError(f"sysconf gave {pages} pages of {page_size} bytes")
    return int(pages) * int(page_size)


def available_ram_mb(meminfo: Path = PROC_MEMINFO) -> int:
    """MiB of RAM available to new processes without swapping; raises RamProbeError if unknown."""
    sources = (
        ("psutil", _from_psutil),
        (str(meminfo), lambda: _from_meminfo(meminfo)),
        ("sysconf", _from_sysconf),
    )
    failures = []
    for name, source in sources:
        try:
            return max(0, source() // MiB)
        except Exception as exc:  # any failure of one source just means: try the next
            log.debug("RAM probe %s failed: %s", name, exc)
            failures.append(f"{name}: {exc}")
    raise RamProbeError("cannot tell how much RAM is available (" + "; ".join(failures) + ")")


def total_ram_mb() -> int:
    """The device's physical RAM in MB (sysconf, no psutil: hosts import this at start); 0 if unknown."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // (1024 * 1024))
    except (ValueError, OSError, AttributeError):
        return 0


def resident_mb(pids: list[int]) -> int:
    """Resident memory of these processes together in MB, or -1 when it cannot be read.

    /proc/<pid>/statm first (one small read per process, no psutil objects per heartbeat;
    Android lets an app read its own processes), then psutil where /proc is missing (macOS).
    """
    page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
    total = 0
    try:
        for pid in pids:
            with open(f"/proc/{pid}/statm", "rb") as f:
                total += int(f.read().split()[1]) * page
        return total // MiB
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil

        return sum(psutil.Process(pid).memory_info().rss for pid in pids) // MiB
    except Exception:
        return -1
