"""What the soak measures (bench/soak.py): the gateway's process tree from /proc (RSS, CPU,
open fds, TCP sockets by state), the usage table's rows, and the gateway log's lines."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

from load import Meter  # the harness's /proc meter: process tree, RSS, CPU (see soak.py)
from soak_load import Tally

__all__ = ["Probe", "count_rows", "log_stats", "rows_by_status"]

# The st column of /proc/net/tcp (include/net/tcp_states.h).
TCP_STATES = {
    "01": "ESTABLISHED",
    "02": "SYN_SENT",
    "03": "SYN_RECV",
    "04": "FIN_WAIT1",
    "05": "FIN_WAIT2",
    "06": "TIME_WAIT",
    "07": "CLOSE",
    "08": "CLOSE_WAIT",
    "09": "LAST_ACK",
    "0A": "LISTEN",
    "0B": "CLOSING",
}


def fds_and_sockets(pids: list[int]) -> tuple[int, set[int]]:
    """Open fds of these processes, and the inodes of the sockets among them."""
    count, inodes = 0, set()
    for pid in pids:
        try:
            names = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        count += len(names)
        for name in names:
            with contextlib.suppress(OSError):
                link = os.readlink(f"/proc/{pid}/fd/{name}")
                if link.startswith("socket:["):
                    inodes.add(int(link[8:-1]))
    return count, inodes


def tcp_states(pid: int, inodes: set[int], ports: dict[int, str]) -> dict[str, dict[str, int]]:
    """TCP sockets among ``inodes`` by side and state, from /proc/PID/net/tcp and tcp6 (state
    08 is CLOSE_WAIT: the peer closed, this process has not). The side is ``ports``' name for
    the socket's local port (the gateway's listening port: "clients") or, failing that, for
    its remote port (the upstream's: "upstream"); "other" for the rest."""
    out: dict[str, Counter[str]] = {}
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if len(f) > 9 and int(f[9]) in inodes:
                local, remote = int(f[1].rsplit(":", 1)[1], 16), int(f[2].rsplit(":", 1)[1], 16)
                side = ports.get(local) or ports.get(remote) or "other"
                out.setdefault(side, Counter())[TCP_STATES.get(f[3], f[3])] += 1
    return {side: dict(states) for side, states in sorted(out.items())}


def count_rows(db: Path) -> int | None:
    """``SELECT count(*) FROM usage``, read-only; None while the file or table is missing."""
    if not db.exists():
        return None
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as c:
            return int(c.execute("SELECT count(*) FROM usage").fetchone()[0])
    except sqlite3.Error:
        return None


def rows_by_status(db: Path) -> dict[str, dict[str, int]]:
    """Rows by endpoint and status, for the report."""
    out: dict[str, dict[str, int]] = {}
    with (
        contextlib.suppress(sqlite3.Error),
        contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as c,
    ):
        q = "SELECT endpoint, status, count(*) FROM usage GROUP BY 1, 2 ORDER BY 1, 2"
        for endpoint, status, n in c.execute(q):
            out.setdefault(endpoint, {})[str(status)] = n
    return out


def log_stats(log: Path) -> dict[str, Any]:
    """The gateway log's lines by level, and its warning/error messages with counts."""
    levels: Counter[str] = Counter()
    messages: Counter[str] = Counter()
    with contextlib.suppress(OSError), open(log, errors="replace") as f:
        for line in f:
            try:
                obj = json.loads(line)
                level, msg = str(obj.get("level")), str(obj.get("msg"))
            except (ValueError, AttributeError):
                level, msg = "not JSON", line.strip()[:120]
            levels[level] += 1
            if level not in ("info", "debug"):
                messages[f"{level}: {msg}"] += 1
    return {"levels": dict(levels), "messages": dict(messages.most_common(10))}


class Probe:
    """Reads the gateway's figures from /proc and the usage DB."""

    def __init__(
        self, pid: int, upstream_pid: int, ports: dict[int, str], db: Path, tally: Tally
    ) -> None:
        self.pid, self.ports, self.db, self.tally = pid, ports, db, tally
        self.meter = Meter(pid, ())
        self.load = Meter(None, (), (upstream_pid,))  # this process and the fake upstream

    async def sample(self, t: float, what: str = "") -> dict[str, Any]:
        pids = self.meter.pids()
        fds, inodes = fds_and_sockets(pids)
        sockets = tcp_states(self.pid, inodes, self.ports)
        tally = self.tally
        calls, classes = tally.calls, dict(tally.classes)  # taken before the DB read: rows lag
        try:
            rows = await asyncio.wait_for(asyncio.to_thread(count_rows, self.db), 15)
        except TimeoutError:
            rows = None
        s = {
            "t": round(t, 1),
            "rss_mb": round(self.meter.rss_mb(), 1),
            "fds": fds,
            "close_wait": sum(states.get("CLOSE_WAIT", 0) for states in sockets.values()),
            "sockets": sockets,
            "calls": calls,
            "classes": classes,
            "rows": rows,
            "cpu_s": round(self.meter.cpu_seconds(), 2),
            "load_cpu_s": round(self.load.load_cpu_seconds(), 2),
            "processes": len(pids),
        }
        if what:
            s["what"] = what
        return s
