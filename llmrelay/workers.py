"""What a worker process of ``llmrelay serve --workers N`` knows about its place.

The supervisor (:mod:`llmrelay.supervisor`) starts N workers, each running the ordinary
per-process entry (:func:`llmrelay.process.run`) with a :class:`Worker` describing it:

* its ``index`` (0..N-1, kept by the worker that replaces it after a crash: per-worker
  files such as the usage spill file are named by it, so a replacement replays them);
* ``run_dir``: a directory private to the supervisor (mode 0700) holding the Unix sockets
  of the counter service (``counters.sock``, when no Redis is configured) and of each
  worker's metrics (``metrics-<index>.sock``);
* how it shares the port (:class:`Listen`).

:func:`available_cpus` is what ``server.workers: auto`` resolves to.
"""

from __future__ import annotations

import math
import os
import socket
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Listen", "Worker", "available_cpus", "resolve_workers"]

#: Where cgroup v2 (``cpu.max``) and v1 (``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``)
#: publish the CPU quota of the process's group (the container's, usually).
_CGROUP_V2 = Path("/sys/fs/cgroup/cpu.max")
_CGROUP_V1 = Path("/sys/fs/cgroup/cpu")


@dataclass(frozen=True, slots=True)
class Listen:
    """How a worker binds: ``reuse_port`` (``SO_REUSEPORT``: each worker binds the port and
    the kernel spreads connections over them), or ``sock``, a listening socket the
    supervisor bound and passed down (platforms without ``SO_REUSEPORT``)."""

    reuse_port: bool = False
    sock: socket.socket | None = None


@dataclass(frozen=True, slots=True)
class Worker:
    """One worker of ``count``: see the module docstring."""

    index: int
    count: int
    run_dir: Path
    #: The supervisor's process id (0: unknown): where a reload asked of this worker is
    #: sent on to its siblings (``reload.py``).
    supervisor_pid: int = 0

    @property
    def counter_socket(self) -> Path:
        """The supervisor's counter service (embedded mode, no Redis)."""
        return self.run_dir / "counters.sock"

    def metrics_socket(self, index: int) -> Path:
        """Where worker ``index`` serves its own metric families to its siblings."""
        return self.run_dir / f"metrics-{index}.sock"

    def file_for(self, path: Path) -> Path:
        """``path`` made this worker's own: ``usage.spill.jsonl`` → ``usage.spill.w2.jsonl``."""
        return path.with_name(f"{path.stem}.w{self.index}{path.suffix}")


def available_cpus(cgroup_root: Path | None = None) -> int:
    """CPUs this process may use: the scheduler affinity mask, capped by the cgroup CPU quota
    rounded up (``cpu.max`` ``200000 100000`` → 2); at least 1. ``cgroup_root`` replaces
    ``/sys/fs/cgroup`` (tests)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS has no affinity call
        cpus = os.cpu_count() or 1
    quota = _cgroup_quota(cgroup_root)
    if quota is not None:
        cpus = min(cpus, max(1, math.ceil(quota)))
    return max(1, cpus)


def _cgroup_quota(root: Path | None) -> float | None:
    """The cgroup's CPU quota in CPUs, or None when unlimited or not published."""
    v2 = _CGROUP_V2 if root is None else root / "cpu.max"
    v1 = _CGROUP_V1 if root is None else root / "cpu"
    try:
        quota, period = v2.read_text().split()
        if quota == "max":
            return None
        return int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        q = int((v1 / "cpu.cfs_quota_us").read_text())
        p = int((v1 / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if q <= 0 or p <= 0 else q / p


def resolve_workers(setting: int | str) -> int:
    """``server.workers`` (or ``--workers``) as a number: ``auto`` → :func:`available_cpus`."""
    return available_cpus() if setting == "auto" else int(setting)
