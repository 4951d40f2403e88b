"""Whether a run had its CPU cores to itself: the other work on them while it lasted.

A run's clock (training seconds, images per second) is a speed figure only when nothing else
worked on its cores meanwhile. From ``/proc/stat`` (Linux only), over the cores the process
may run on, the CPU time they spent busy, less the run's own (user and system time of the
measured process, or of its finished children), is ``other_cpu_s``: what anything else did on
those cores, with interrupt handling, the run's own included (so a few tenths of a second are
always there). Time the hypervisor gave to other machines is kept apart as ``steal_s``. A run
is ``quiet`` when ``other_cpu_s`` and ``steal_s`` together stay under `QUIET_SHARE` of the
cores' capacity over its wall time (or `QUIET_FLOOR_S`, whichever is larger, for the fixed
share of a short run), with ``other_cpu_s`` counted by its size: far below zero, the accounts
disagree and say nothing.
"""

from __future__ import annotations

import os
import pathlib
import re
import resource
import time
from typing import Literal

#: The share of the cores' capacity over a run that other work may use for it to count as quiet.
QUIET_SHARE = 0.02
#: The CPU seconds of other work (interrupts, the system's own daemons) that a run may always
#: see and still count as quiet, however short it is: on a quiet 2-core machine the
#: quickstart's runs of 0.6-3.7 s saw 0.00-0.08 s.
QUIET_FLOOR_S = 0.25
STAT = pathlib.Path("/proc/stat")


def cpu_seconds(stat: str, cores: set[int]) -> tuple[float, float]:
    """CPU seconds since boot that ``cores`` spent busy (every state but idle, iowait and
    steal) and that the hypervisor stole from them, from the text of ``/proc/stat`` (its
    ``cpuN`` lines)."""
    busy = steal = 0
    seen = set()
    for line in stat.splitlines():
        fields = line.split()
        if not fields or not re.fullmatch(r"cpu\d+", fields[0]) or int(fields[0][3:]) not in cores:
            continue
        user, nice, system, _idle, _iowait, irq, softirq, stolen = (int(v) for v in fields[1:9])
        busy += user + nice + system + irq + softirq
        steal += stolen
        seen.add(int(fields[0][3:]))
    if seen != cores:
        raise ValueError(f"stat: no cpuN line for core(s) {sorted(cores - seen)}; expected the "
                         "text of /proc/stat")
    tick = os.sysconf("SC_CLK_TCK")
    return busy / tick, steal / tick


def quiet(other_cpu_s: float, wall_s: float, cores: int, steal_s: float = 0.0) -> bool:
    """Whether the other work during a run and the time the hypervisor stole from it stayed
    under `QUIET_SHARE` of the cores' capacity, or `QUIET_FLOOR_S` where that is more (other
    work far below zero, an accounting error, is no evidence of a quiet machine)."""
    return abs(other_cpu_s) + steal_s <= max(QUIET_SHARE * wall_s * cores, QUIET_FLOOR_S)


def own_cpu_seconds(whose: Literal["self", "children"] = "self") -> float:
    """User and system CPU seconds of this process (all its threads), or of its finished child
    processes (and theirs)."""
    usage = resource.getrusage(resource.RUSAGE_SELF if whose == "self"
                               else resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Watch:
    """The other work on this process's cores from its creation to `stop`.

    ``whose`` names the work that is the run's own: this process (``"self"``, a run inside it)
    or its finished children (``"children"``, a run in a child process)."""

    def __init__(self, whose: Literal["self", "children"] = "self"):
        self.whose = whose
        self.cores = set(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else set()
        self._start = self._read()

    def _read(self) -> tuple[float, float, float, float] | None:
        try:
            busy, steal = cpu_seconds(STAT.read_text(), self.cores)
        except (OSError, ValueError):
            return None
        return time.perf_counter(), own_cpu_seconds(self.whose), busy, steal

    def stop(self) -> dict[str, float | int | bool] | None:
        """``wall_s``, ``own_cpu_s``, ``other_cpu_s`` (unclamped: a negative figure shows an
        accounting error, not a quiet machine), ``steal_s``, ``core_count`` and ``quiet`` since
        the watch began; None where ``/proc/stat`` cannot be read or lacks one of the cores, or
        the process's cores are unknown (not Linux, or a container that renumbers them)."""
        end = self._read()
        if self._start is None or end is None or not self.cores:
            return None
        wall, own, busy, steal = (b - a for a, b in zip(self._start, end))
        other = busy - own
        return {"wall_s": wall, "own_cpu_s": own, "other_cpu_s": other, "steal_s": steal,
                "core_count": len(self.cores),
                "quiet": quiet(other, wall, len(self.cores), steal)}
