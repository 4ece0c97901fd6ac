"""A memory watchdog and load sampler over the processes under this one (for benchmarks).

:class:`Watch` is a thread. Every ``every`` seconds it lists the processes descended from
this one (parent ids from ``/proc/<pid>/stat``), sums their resident memory (``VmRSS``),
keeps the largest sum seen, and for each process its own peak (``VmHWM``), its command line
and its CPU seconds (user + system, all its threads; the last value read while it lived).
Every ``load_every`` seconds it samples ``/proc/loadavg``. When the sum passes ``cap_mb`` it
sends SIGKILL to every process it watches (this process started them all) and records
``killed_at_mb``: a run that needs more memory than the cap is stopped before it can push
the shared machine into swapping or the kernel's OOM killer.

Linux only (``/proc``); elsewhere the lists stay empty and nothing is killed.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _children() -> dict[int, list[int]]:
    """Parent pid -> child pids, from /proc (processes that exit meanwhile are skipped)."""
    out: dict[int, list[int]] = {}
    for entry in os.scandir("/proc") if os.path.isdir("/proc") else ():
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # the command name (field 2) may hold spaces and parentheses: split after its last ')'
        ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
        out.setdefault(ppid, []).append(int(entry.name))
    return out


def descendants(root: int | None = None) -> list[int]:
    """Pids of every process below ``root`` (default: this process), ``root`` not included."""
    tree = _children()
    todo, out = list(tree.get(os.getpid() if root is None else root, ())), []
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(tree.get(pid, ()))
    return out


def read_process(pid: int) -> dict | None:
    """``rss_mb``, ``hwm_mb``, ``cpu_s`` and ``cmdline`` of a live process, else None (also
    for a zombie, so that a watcher keeps the last values read while it lived)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="ascii", errors="replace")
        stat = Path(f"/proc/{pid}/stat").read_bytes()
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    mem = {}
    for line in status.splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            mem[line[:5]] = int(line.split()[1]) / 1024.0
    if "VmHWM" not in mem:  # a zombie (exited, not yet waited for): nothing left to read
        return None
    fields = stat[stat.rindex(b")") + 2:].split()
    cpu = (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime (fields 14, 15)
    return {"rss_mb": mem.get("VmRSS", 0.0), "hwm_mb": mem.get("VmHWM", 0.0), "cpu_s": cpu,
            "cmdline": cmd.replace(b"\0", b" ").decode(errors="replace").strip()}


def load_average() -> tuple[float, float, float] | None:
    try:
        one, five, fifteen = Path("/proc/loadavg").read_text().split()[:3]
    except OSError:
        return None
    return float(one), float(five), float(fifteen)


class Watch(threading.Thread):
    """``with Watch(cap_mb) as w: ...``: samples (and caps) the processes under this one, or
    with ``root=PID`` that process and the processes under it. ``include_self``: this
    process's memory counts in the sum too (a LocalCluster's scheduler lives in it); it is
    never killed.

    After the block: ``w.peak_total_mb`` (largest summed RSS), ``w.procs`` (pid -> last
    ``read_process`` record; ``hwm_mb`` is that process's own peak), ``w.loads`` (1-minute
    load averages sampled), ``w.killed_at_mb`` (None unless the cap was passed),
    ``w.reset_peak()`` (a new ``peak_total_mb`` from now on), ``w.trace``
    (every ``trace_every`` seconds: ``[seconds since the start, summed RSS MB, {pid: RSS MB}]``,
    the memory's trajectory; the sample that passed the cap is the last entry).
    """

    def __init__(self, cap_mb: float, *, root: int | None = None, include_self: bool = False,
                 every: float = 1.0, load_every: float = 10.0, trace_every: float = 10.0) -> None:
        super().__init__(daemon=True)
        self.cap_mb, self.root, self.every, self.load_every = cap_mb, root, every, load_every
        self.trace_every = trace_every
        self.trace: list[list] = []
        self._t0 = time.monotonic()
        self._next_trace = 0.0
        self.include_self = include_self
        self.peak_total_mb = 0.0
        self.procs: dict[int, dict] = {}
        self.loads: list[float] = []
        self.killed_at_mb: float | None = None
        self._stop_event = threading.Event()
        self._lock = threading.Lock()

    def sample(self) -> float:
        """One pass now (also called by the thread): returns the summed RSS in MB."""
        total = 0.0
        pids = descendants(self.root) + ([] if self.root is None else [self.root])
        rss: dict[int, float] = {}
        with self._lock:
            for pid in pids + ([os.getpid()] if self.include_self else []):
                rec = read_process(pid)
                if rec is None:
                    continue
                total += rec["rss_mb"]
                rss[pid] = round(rec["rss_mb"], 1)
                self.procs[pid] = rec
            self.peak_total_mb = max(self.peak_total_mb, total)
            now = time.monotonic() - self._t0
            over = total > self.cap_mb and self.killed_at_mb is None
            if now >= self._next_trace or over:
                self.trace.append([round(now, 1), round(total, 1), rss])
                self._next_trace = now + self.trace_every
            if over:
                self.killed_at_mb = total
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
        return total

    def reset_peak(self) -> float:
        """The largest summed RSS so far; the next ones are measured from now on."""
        with self._lock:
            peak, self.peak_total_mb = self.peak_total_mb, 0.0
        return peak

    def _sample_load(self) -> None:
        load = load_average()
        if load is not None:
            self.loads.append(load[0])

    def run(self) -> None:
        next_load = 0.0
        while not self._stop_event.is_set():
            self.sample()
            if time.monotonic() >= next_load:
                self._sample_load()
                next_load = time.monotonic() + self.load_every
            self._stop_event.wait(self.every)

    def __enter__(self) -> Watch:
        self._t0 = time.monotonic()
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop_event.set()
        self.join()
        self._sample_load()

    def load_summary(self) -> dict:
        """min / mean / max of the sampled 1-minute load averages."""
        if not self.loads:
            return {}
        return {"load_min": min(self.loads), "load_mean": sum(self.loads) / len(self.loads),
                "load_max": max(self.loads), "load_samples": len(self.loads)}
