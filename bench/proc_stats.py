"""CPU time and memory of a service: its process and every descendant (gunicorn's master
and workers), read from /proc.

Memory comes from /proc/<pid>/smaps_rollup: RSS summed over the processes (pages shared
between them count once per process) and PSS (each shared page divided among its sharers, so
the sum is what the service really costs the machine).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Memory:
    processes: int
    rss_bytes: int
    pss_bytes: int


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:  # the ppid, after the name
            found.append(int(entry.name))
    return found


def process_tree(pid: int) -> list[int]:
    """`pid` and every descendant."""
    tree, queue = [], [pid]
    while queue:
        current = queue.pop()
        tree.append(current)
        queue.extend(_children(current))
    return tree


def memory_of(pid: int) -> Memory:
    rss = pss = count = 0
    for member in process_tree(pid):
        try:
            lines = Path(f"/proc/{member}/smaps_rollup").read_text().splitlines()
        except OSError:
            continue  # exited meanwhile
        values = {
            line.split(":")[0]: int(line.split()[1]) * 1024
            for line in lines
            if line.split(":")[0] in ("Rss", "Pss")
        }
        rss += values.get("Rss", 0)
        pss += values.get("Pss", 0)
        count += 1
    return Memory(count, rss, pss)


def _stat_fields(pid: int) -> list[str]:
    # The command name (field 2) may contain spaces: split after its closing parenthesis.
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by `pid` and its live descendants."""
    total = 0.0
    for member in process_tree(pid):
        try:
            fields = _stat_fields(member)
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime
    return total
