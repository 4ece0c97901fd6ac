"""benchmarks/procwatch.py (the memory watchdog of ``benchmarks/dask_scale.py xl``) on real
child processes, and the xl table from hand-made records. The 1M-label benchmark itself is
not run."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

_BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _module(name: str):
    sys.path.insert(0, str(_BENCH))  # dask_scale imports its sibling data.py
    try:
        spec = importlib.util.spec_from_file_location(f"bench_{name}", _BENCH / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(_BENCH))
    return mod


procwatch = _module("procwatch")

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")

# a child that holds `mb` MiB (touched, so resident) in a grandchild too, then waits
_HOLDER = """
import subprocess, sys, time
mb = int(sys.argv[1])
if sys.argv[2] == "parent":
    subprocess.Popen([sys.executable, "-c", sys.argv[3], str(mb), "child", sys.argv[3]])
block = bytearray(mb << 20)
for i in range(0, len(block), 4096):
    block[i] = 1
print("ready", flush=True)
time.sleep(60)
"""


def _start(mb: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(mb), "parent", _HOLDER],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_watch_sums_a_process_tree_and_kills_it_past_the_cap():
    proc = _start(150)  # 150 MiB here and 150 MiB in its own child: ~300 MiB together
    try:
        time.sleep(0.3)  # the grandchild's block is touched too
        with procwatch.Watch(10_000, root=proc.pid, every=0.1) as w:
            time.sleep(0.3)
        assert w.killed_at_mb is None and proc.poll() is None
        assert 290 < w.peak_total_mb < 400
        mine = w.procs[proc.pid]
        assert 150 <= mine["hwm_mb"] < 200 and "parent" in mine["cmdline"]
        assert len(w.procs) == 2 and w.loads  # the grandchild; the load sampled
        with procwatch.Watch(10_000, root=proc.pid, include_self=True, every=0.1) as w:
            time.sleep(0.3)
        assert w.peak_total_mb > 290 + w.procs[os.getpid()]["rss_mb"] * 0.9
        peak = w.peak_total_mb
        assert w.reset_peak() == peak and w.peak_total_mb == 0.0
        with procwatch.Watch(250, root=proc.pid, every=0.1) as w:
            deadline = time.monotonic() + 10
            while w.killed_at_mb is None:
                assert time.monotonic() < deadline, "not killed past the cap"
                time.sleep(0.05)
            time.sleep(0.3)  # killed but not waited for: a zombie, sampled again
            assert w.procs[proc.pid]["hwm_mb"] >= 150  # the last values read while it lived
            assert proc.wait(timeout=10) == -9  # SIGKILL
        assert 290 < w.killed_at_mb < 400
        # the trajectory: the first sample and the one that passed the cap, per process
        assert w.trace[0][0] < 0.2 and abs(w.trace[-1][1] - w.killed_at_mb) < 0.1
        assert set(w.trace[-1][2]) == set(w.procs) and w.trace[-1][2][proc.pid] >= 150
        # the grandchild is gone as well
        grandchild = next(pid for pid in w.procs if pid != proc.pid)
        deadline = time.monotonic() + 5
        while procwatch.read_process(grandchild) is not None:
            st = Path(f"/proc/{grandchild}/stat").read_bytes()
            if st[st.rindex(b")") + 2:].split()[0] == b"Z":  # killed, not yet reaped (init)
                break
            assert time.monotonic() < deadline, "the grandchild survived the cap"
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


def test_cpu_seconds_of_a_child_match_its_own_clock():
    code = ("import time\nt = time.process_time()\nwhile time.process_time() - t < 0.4: pass\n"
            "print(time.process_time(), flush=True)\ntime.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        own = float(proc.stdout.readline())
        rec = procwatch.read_process(proc.pid)
        assert rec["cpu_s"] == pytest.approx(own, abs=0.05)  # clock ticks of 10 ms
        assert proc.pid in procwatch.descendants()
        assert procwatch.descendants(proc.pid) == []
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


def test_xl_table_rows_from_records():
    dask_scale = _module("dask_scale")
    ok = {"method": "labelwise-dask", "status": "ok", "train_s": 1234.4, "train_cpu_s": 2000.6,
          "predict_s": 12.34, "peak_total_mb": 10240.0, "worker_peak_rss_mb": [4096.0, 3072.0],
          "client_peak_rss_mb": 2048.0,
          "scheduler_peak_rss_mb": 1024.0, "p@1": 40.0, "p@3": 20.0, "p@5": 12.5, "psp@5": 9.0,
          "load_min": 3.0, "load_mean": 4.3, "load_max": 6.0, "started": "t0"}
    killed = {"method": "omikuji-parabel", "status": "killed", "wall_s": 812.2,
              "error": "killed at 19.1 GiB (cap 19 GiB)", "peak_total_mb": 19558.4,
              "started": "t1"}
    old = dict(ok, method="pecos-xrlinear")
    lines = dask_scale.xl_table([dict(old, **{"p@1": 1.0}), killed, old, ok]).splitlines()
    assert len(lines) == 5  # head, rule, one row per method (the latest), in XL_METHODS order
    assert lines[2] == ("| labelwise-dask | yes | 1234 | 2001 | 12.3 | 10.0 (all processes); "
                        "workers 4.0 / 3.0; client 2.0; scheduler 1.0 | 40.00 | 20.00 | 12.50 | 9.00 | "
                        "3.0-4.3-6.0 | t0 |")
    assert lines[3].startswith("| pecos-xrlinear | yes |") and "| 40.00 |" in lines[3]
    assert lines[4].startswith("| omikuji-parabel | no: killed at 19.1 GiB (cap 19 GiB) | 812 ")
    assert "19.1 (all processes)" in lines[4]
