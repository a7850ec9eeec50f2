"""Process figures from Linux's /proc, for benchmarks that compare CPU and memory."""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path


def _stat_cpu_seconds(stat: Path) -> float:
    """User + system CPU time from a /proc `stat` file (a process's or a thread's)."""
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    return _stat_cpu_seconds(Path(f"/proc/{pid}/stat"))


def rss_mb(pid: int) -> float:
    """Resident memory of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def children(pid: int) -> list[int]:
    """Direct child processes of ``pid`` (the embedded Temporal server is one)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def thread_cpu_seconds() -> dict[str, float]:
    """This process's CPU time so far by thread, keyed by thread name.

    Python threads are named as `threading` names them (its native ids are matched to
    /proc's), others by their kernel name (the Temporal core's `tokio-rt-worker`); a
    trailing number is dropped so a pool's threads add up under one name.
    """
    named = {str(t.native_id): t.name for t in threading.enumerate()}
    totals: dict[str, float] = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            kernel_name = (task / "comm").read_text().strip()
            used = _stat_cpu_seconds(task / "stat")
        except OSError:
            continue  # the thread ended between listing and reading
        name = re.sub(r"[-_]?\d+$", "", named.get(task.name, kernel_name))
        totals[name] = totals.get(name, 0.0) + used
    return totals
