"""``labelwise serve`` on its own: time to ready, memory with 1 and N workers, micro-batching.

For one model (``--model DIR``; default: a tf-idf + default-model pipeline trained and tuned
on cooking.stackexchange's training split, written once to ``bench-data/serve-workers/``):

1. **time to ready**: seconds from starting ``labelwise serve`` to ``/health/ready`` answering
   200, once with an empty numba cache (``NUMBA_CACHE_DIR`` = a fresh folder: every kernel
   the warm-up prediction calls is compiled) and once more with that cache now filled (the
   kernels are loaded from it); also with the default cache location as it is.
2. **memory**: RSS and PSS (``/proc/PID/smaps_rollup``: a shared page is split among the
   processes that map it) summed over the server's process tree, after ready and after
   warming every worker, with 1 worker and with ``--workers-many`` (default 4). The arrays are
   memory-mapped, so workers share them through the page cache: PSS shows it, RSS counts the
   shared pages once per process.
3. **micro-batching**: one-document requests at concurrency 1, 8 and 32 (bounded counts),
   with ``--no-batching``, the default (batching, ``--batch-wait-ms 0``) and a 2 ms wait:
   throughput, p50 and p99 latency, and the mean items per model call from ``/metrics``.

Everything runs on 127.0.0.1 with bounded request counts. Run:
``LABELWISE_DATASETS_MIRROR=/work/shared/datasets .venv/bin/python benchmarks/serve_workers.py``
(``--quick`` for a smoke run). Records: ``bench-results/serve_workers.json`` and a markdown
summary on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "labelwise.cli.main"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def default_model() -> Path:
    """cooking.stackexchange: train + tune once (labelwise's defaults)."""
    out = REPO / "bench-data" / "serve-workers" / "cooking"
    if (out / "pipeline.json").is_file():
        return out
    subprocess.run([*CLI, "train", "cooking-stackexchange:train", "--out", str(out), "--quiet"],
                   check=True)
    subprocess.run([*CLI, "tune", str(out), "cooking-stackexchange:train", "--quiet"],
                   check=True, stdout=subprocess.DEVNULL)
    return out


def sample_texts(n: int) -> list[str]:
    from labelwise.datasets import load

    test = load("cooking-stackexchange", split="test")
    return [str(t) for t in test.X[:n]]


def tree_pids(root: int) -> list[int]:
    """root and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int(re.search(r"^PPid:\s+(\d+)", (d / "status").read_text(), re.M)[1])
            except (OSError, TypeError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def memory_mb(root: int) -> dict[str, float]:
    rss = pss = 0
    pids = tree_pids(root)
    for p in pids:
        try:
            text = Path(f"/proc/{p}/smaps_rollup").read_text()
        except OSError:
            continue
        rss += int(re.search(r"^Rss:\s+(\d+)", text, re.M)[1])
        pss += int(re.search(r"^Pss:\s+(\d+)", text, re.M)[1])
    return {"processes": len(pids), "rss_mb": round(rss / 1024, 1), "pss_mb": round(pss / 1024, 1)}


class Server:
    def __init__(self, model: Path, *args: str, env: dict[str, str] | None = None) -> None:
        import httpx

        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.t0 = time.perf_counter()
        self.proc = subprocess.Popen([*CLI, "serve", str(model), "--port", str(self.port),
                                      "--log-level", "warning", *args],
                                     env={**os.environ, **(env or {})},
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        while True:
            try:
                if httpx.get(self.base + "/health/ready", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.perf_counter() - self.t0 > 600:
                raise RuntimeError("the server did not get ready")
            time.sleep(0.05)
        self.ready_s = time.perf_counter() - self.t0

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def metric_sum(self, name: str) -> float:
        import httpx

        text = httpx.get(self.base + "/metrics", timeout=30).text
        return sum(float(m[1]) for m in re.finditer(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))


async def load(base: str, name: str, texts: list[str], concurrency: int, n: int) -> dict:
    import httpx

    lat: list[float] = []
    errors = 0
    it = iter(range(n))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
        async def worker() -> None:
            nonlocal errors
            for i in it:
                body = {"items": [{"id": i, "text": texts[i % len(texts)]}], "top_k": 10}
                t = time.perf_counter()
                r = await client.post(f"/v1/models/{name}/predict", json=body)
                lat.append(time.perf_counter() - t)
                errors += r.status_code != 200

        t0 = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range(concurrency)])
        wall = time.perf_counter() - t0
    lat.sort()
    return {"concurrency": concurrency, "requests": n, "errors": errors,
            "rps": round(n / wall, 1), "p50_ms": round(1000 * statistics.median(lat), 2),
            "p99_ms": round(1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))], 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, help="model or pipeline directory (default: cooking)")
    ap.add_argument("--workers-many", type=int, default=4)
    ap.add_argument("--quick", action="store_true", help="few requests (smoke run)")
    ap.add_argument("--batch-waits", nargs="+", default=["off", "0", "2"],
                    help="settings compared: 'off' (--no-batching) or --batch-wait-ms values "
                         "(default off 0 2)")
    ap.add_argument("--skip", nargs="*", default=[], choices=["ready", "memory", "batching"])
    args = ap.parse_args()
    model = (args.model or default_model()).resolve()
    name = model.name
    texts = sample_texts(500)
    out: dict = {"model": str(model), "cpus": os.cpu_count(), "load_avg": os.getloadavg()}

    if "ready" not in args.skip:
        cache = Path(tempfile.mkdtemp(prefix="numba-cache-"))
        try:
            rows = []
            for label in ("empty numba cache", "warm numba cache"):
                s = Server(model, env={"NUMBA_CACHE_DIR": str(cache)})
                rows.append({"cache": label, "ready_s": round(s.ready_s, 2)})
                s.stop()
            s = Server(model)
            rows.append({"cache": "default cache location, as it is", "ready_s": round(s.ready_s, 2)})
            s.stop()
        finally:
            shutil.rmtree(cache, ignore_errors=True)
        out["ready"] = rows
        print(json.dumps(rows), file=sys.stderr)

    if "memory" not in args.skip:
        rows = []
        for workers, mode in ((1, "fork"), (args.workers_many, "fork"),
                              (args.workers_many, "spawn")):
            s = Server(model, "--workers", str(workers), "--workers-mode", mode)
            try:
                after_ready = memory_mb(s.proc.pid)
                asyncio.run(load(s.base, name, texts, 32, 200 if args.quick else 1000))
                after_load = memory_mb(s.proc.pid)
            finally:
                s.stop()
            rows.append({"workers": workers, "mode": mode if workers > 1 else "-",
                         "ready_s": round(s.ready_s, 2),
                         "after_ready": after_ready, "after_load": after_load})
        out["memory"] = rows
        print(json.dumps(rows), file=sys.stderr)

    if "batching" not in args.skip:
        rows = []
        plan = [(1, 100 if args.quick else 500), (8, 200 if args.quick else 1500),
                (32, 200 if args.quick else 1500)]
        for wait in args.batch_waits:
            s = Server(model, *(["--no-batching"] if wait == "off" else
                                ["--batch-wait-ms", wait]))
            try:
                asyncio.run(load(s.base, name, texts, 8, 100))  # warm-up, not counted
                for conc, n in plan:
                    calls0 = s.metric_sum("labelwise_batch_items_count")
                    items0 = s.metric_sum("labelwise_batch_items_sum")
                    row = asyncio.run(load(s.base, name, texts, conc, n))
                    calls = s.metric_sum("labelwise_batch_items_count") - calls0
                    items = s.metric_sum("labelwise_batch_items_sum") - items0
                    row.update({"batch_wait_ms": wait,
                                "items_per_call": round(items / max(calls, 1), 2)})
                    rows.append(row)
                    print(json.dumps(row), file=sys.stderr)
            finally:
                s.stop()
        out["batching"] = rows

    res = REPO / "bench-results"
    res.mkdir(exist_ok=True)
    (res / "serve_workers.json").write_text(json.dumps(out, indent=1) + "\n")
    print(f"model: {model.name}; {out['cpus']} CPUs, load average at start {out['load_avg']}")
    for r in out.get("ready", []):
        print(f"- time to ready, {r['cache']}: {r['ready_s']} s")
    if out.get("memory"):
        print("\n| workers | mode | ready (s) | RSS after ready (MB) | PSS after ready (MB) "
              "| RSS after load | PSS after load |")
        print("|---|---|---|---|---|---|---|")
        for r in out["memory"]:
            a, b = r["after_ready"], r["after_load"]
            print(f"| {r['workers']} | {r['mode']} | {r['ready_s']} | {a['rss_mb']} | {a['pss_mb']} | {b['rss_mb']} | {b['pss_mb']} |")
    if out.get("batching"):
        print("\n| batch wait (ms) | concurrency | requests/s | p50 (ms) | p99 (ms) | items/call | errors |")
        print("|---|---|---|---|---|---|---|")
        for r in out["batching"]:
            print(f"| {r['batch_wait_ms']} | {r['concurrency']} | {r['rps']} | {r['p50_ms']} | "
                  f"{r['p99_ms']} | {r['items_per_call']} | {r['errors']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
