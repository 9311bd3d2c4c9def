"""Is something else keeping this machine's CPUs busy right now? Timings taken then say
more about the other work than about ours: calibrations and benchmarks ask first, warn,
and do not cache what they measured."""
from __future__ import annotations

import os
import time

# another process counts as busy from half a CPU on
BUSY_CPUS = 0.5


def _cpu_jiffies():
    """(busy, total) jiffies of all CPUs from /proc/stat, or None off Linux."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)     # idle + iowait
    return sum(fields) - idle, sum(fields)


def _own_cpu_seconds():
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def other_load(seconds=0.2):
    """CPUs (a float) that other processes kept busy over the next `seconds`, measured
    from the system's CPU counters minus this process's own CPU time; on systems without
    /proc/stat, the 1-minute load average. None where neither exists."""
    before, own = _cpu_jiffies(), _own_cpu_seconds()
    if before is None:
        try:
            return float(os.getloadavg()[0])
        except (AttributeError, OSError):
            return None
    time.sleep(seconds)
    after, own_after = _cpu_jiffies(), _own_cpu_seconds()
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    busy = (after[0] - before[0]) / tick - (own_after - own)
    return max(0.0, busy / seconds)


def busy_warning(seconds=0.2):
    """A sentence saying that the machine is busy (other processes use at least BUSY_CPUS
    CPUs), or None when it is quiet or cannot be told."""
    load = other_load(seconds)
    if load is None or load < BUSY_CPUS:
        return None
    return (f"the machine is busy: other processes keep {load:.1f} CPUs busy, so timings "
            f"taken now are slower than this code runs on a quiet machine")
