"""Dask benchmarks (issue 21): scaling of distributed training, and partitioned training.

``scale``: a LabelTree (default parameters) on ``benchmarks/data.py``'s dataset (default
``synthetic-quick``), fitted locally with 1 thread and on a LocalCluster of 1 and 2
single-threaded worker processes; wall time, speed-up against the local fit, whether the
Dask models equal the local one bit for bit, and the serial share: CPU seconds of the client
process (preparing and scattering the data, assembling the model, and the LocalCluster's
scheduler, which runs in it) against CPU seconds of the worker processes, with Amdahl's
expected speed-up of 2 workers over 1 from it (CPU seconds do not depend on how loaded the
machine is; wall times do).

``federated``: OneVsRest and LabelTree (defaults) on each dataset (default ``bibtex``,
``delicious``, ``cooking``) centralised, and partitioned (``labelwise.federated``) into 5
partitions IID and label-skewed (each label's rows spread over the partitions by a Dirichlet
(alpha 0.3) draw; a row goes to the partition its rarest label picks); each after every
one of ``--rounds`` (1 and 8) rounds; P@1, P@5 and macro-F1 (OneVsRest: margins
above 0; LabelTree: probabilities above 0.5 in the top 10) against the centralised model.

``xl``: the 1M-label set (``synthetic-1m``, see ``benchmarks/data.py``) trained as a user
would, one method per invocation, each record appended to ``--records`` (default
``bench-results/dask_xl.json``) and the table of all records printed:

- ``labelwise-dask``: a ``distributed.LocalCluster`` of 2 single-threaded worker processes
  with ``--worker-memory`` (default 9 GiB) each (``--dask local:N`` leaves the limit to Dask,
  the machine's memory / N), and ``labelwise train TRAIN --model tree --dask tcp://<its
  scheduler>`` in a subprocess (the client), then the saved pipeline loaded
  (``Pipeline.load``) to predict the top 5 of every test row. Measured: the fit seconds the
  CLI prints, the CPU seconds of the client, of each worker and of this process (which hosts
  the scheduler), the peak RSS (``VmHWM``) of each worker and of the client;
- ``labelwise-local``: the local fit with 2 threads (``benchmarks/xmc.py``'s runner);
- the peers ``pecos-xrlinear``, ``omikuji-parabel``, ``napkinxc-plt`` (``xmc.run_method``,
  each in its own virtualenv, 2 threads, documented defaults).

Every run has a wall-clock limit (``--timeout``, default 2 hours) and a memory watchdog:
every second the resident memory of all processes under this one (the runner and its
children; the CLI, the workers and, for labelwise-dask, this process, which hosts the
LocalCluster's scheduler) is summed, and past ``--rss-cap`` (default 19 GiB; the
machine has 24 GiB, shared) they are killed and the run is recorded as ``killed at N GiB``.
The load average is sampled every 10 s during a run (the machine is shared).

    python benchmarks/dask_scale.py federated [--datasets bibtex delicious cooking]
    python benchmarks/dask_scale.py scale [--dataset synthetic-quick]
    python benchmarks/dask_scale.py xl --method labelwise-dask   # then each peer, then table
    python benchmarks/dask_scale.py xl --method table

Times on a shared, loaded 2-core machine are only indicative.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import data  # noqa: E402


def _load(name: str, cache: str):
    from labelwise.io.xc import read_xc

    folder = data.prepare(name, cache)
    tr = read_xc(folder / "train.txt", index_base=0)
    te = read_xc(folder / "test.txt", index_base=0)
    return tr.X, sp.csr_matrix(tr.Y), te.X, sp.csr_matrix(te.Y)


def _cluster(n: int, memory_limit: str | None = None):
    import distributed

    for name in ("distributed", "tornado", "asyncio"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    lc = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                  dashboard_address=None, silence_logs=logging.CRITICAL,
                                  **({} if memory_limit is None else
                                     {"memory_limit": memory_limit}))
    return lc, distributed.Client(lc)


def _quality(model, Xte, Yte) -> dict:
    from labelwise.metrics import f1_score, ranking_metrics
    from labelwise.models import OneVsRest

    S = model.decision_function(Xte, k=10)
    m = ranking_metrics(Yte, S, k=(1, 5))
    if isinstance(model, OneVsRest):  # margins; labels chosen above 0
        f1 = f1_score(Yte, model.decision_function_dense(Xte), threshold=0.0, average="macro")
    else:  # probabilities; labels chosen above 0.5 among the top 10
        f1 = f1_score(Yte, S, threshold=0.5, average="macro")
    return {"P@1": 100 * m["p@1"], "P@5": 100 * m["p@5"], "macro-F1": 100 * f1}


def skewed_partitions(Y: sp.csr_matrix, K: int, alpha: float, seed: int) -> np.ndarray:
    """Partition of each row: its rarest label's Dirichlet(alpha) draw over the K parts."""
    rng = np.random.default_rng(seed)
    L = Y.shape[1]
    shares = rng.dirichlet(np.full(K, alpha), size=L)
    freq = np.diff(sp.csc_matrix(Y).indptr)
    part = rng.integers(0, K, Y.shape[0])
    for i in range(Y.shape[0]):
        labs = Y.indices[Y.indptr[i]:Y.indptr[i + 1]]
        if labs.size:
            j = labs[np.argmin(freq[labs])]
            part[i] = rng.choice(K, p=shares[j])
    return part


def federated(args) -> None:
    from labelwise.federated import fit_partitioned, scatter_partitions
    from labelwise.models import LabelTree, OneVsRest

    makers = {"ovr": OneVsRest, "tree": LabelTree}
    kw = dict(random_state=0, memory_limit=None, n_threads=1)
    K = args.partitions
    for dataset in args.datasets:
        Xtr, Ytr, Xte, Yte = _load(dataset, args.cache)
        names = [str(j) for j in range(Ytr.shape[1])]
        rng = np.random.default_rng(0)
        splits = (("IID", rng.integers(0, K, Xtr.shape[0])),
                  (f"skewed (Dirichlet {args.alpha})",
                   skewed_partitions(Ytr, K, args.alpha, 0)))
        lc, client = _cluster(2)
        table = []
        try:
            for model_name in args.models:
                make = makers[model_name]
                t0 = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    central = make(**kw).fit(Xtr, Ytr, labels=names)
                base = _quality(central, Xte, Yte)
                table.append((model_name, "centralised", "", base, base,
                              time.perf_counter() - t0))
                rounds = sorted(set(args.rounds))
                for how, part in splits:
                    parts = [(Xtr[part == k], Ytr[part == k], names) for k in range(K)]
                    placed = scatter_partitions(client, parts)
                    for R in rounds:
                        t0 = time.perf_counter()
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore")
                            model = fit_partitioned(make(**kw), placed, client=client,
                                                    rounds=R)
                        q = _quality(model, Xte, Yte)
                        table.append((model_name, f"{K} partitions {how}", R, q, base,
                                      time.perf_counter() - t0))
                        print(table[-1], file=sys.stderr, flush=True)
                    del placed
        finally:
            client.close()
            lc.close()
        print(f"\n{dataset} (train {Xtr.shape[0]} rows, {Ytr.shape[1]} labels), defaults, "
              f"seed 0, 2 worker processes\n")
        print("| model | training | rounds | P@1 | P@5 | macro-F1 | P@1 - central | "
              "P@5 - central | macro-F1 - central | fit s |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for model_name, name, R, q, base, t in table:
            print(f"| {model_name} | {name} | {R} | {q['P@1']:.2f} | {q['P@5']:.2f} | "
                  f"{q['macro-F1']:.2f} | {q['P@1'] - base['P@1']:+.2f} | "
                  f"{q['P@5'] - base['P@5']:+.2f} | {q['macro-F1'] - base['macro-F1']:+.2f} | "
                  f"{t:.1f} |")
        sys.stdout.flush()


def _load_average() -> str:
    try:
        return " / ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def scale(args) -> None:
    from labelwise.distributed import expected_speedup, fit
    from labelwise.models import LabelTree

    Xtr, Ytr, Xte, Yte = _load(args.dataset, args.cache)
    kw = dict(random_state=0, memory_limit=None, n_threads=1)
    load = [_load_average()]
    t0, c0 = time.perf_counter(), time.process_time()
    local = LabelTree(**kw).fit(Xtr, Ytr)
    t_local, cpu_local = time.perf_counter() - t0, time.process_time() - c0
    out = [("local, 1 thread", t_local, True, None)]
    ref = local._get_state()[0]
    for n in args.workers:
        lc, client = _cluster(n)
        try:
            load.append(_load_average())
            stats: dict = {}
            t0 = time.perf_counter()
            m = fit(LabelTree(**kw), Xtr, Ytr, client=client, stats=stats)
            t = time.perf_counter() - t0
        finally:
            client.close()
            lc.close()
        st = m._get_state()[0]
        same = all(np.array_equal(ref[k], st[k]) for k in ref)
        out.append((f"Dask, {n} worker(s)", t, same, stats))
        print(out[-1], file=sys.stderr, flush=True)
    load.append(_load_average())
    print(f"\n{args.dataset}, LabelTree (defaults, seed 0); load average (1/5/15 min) before "
          f"each run and at the end: {'; '.join(load)}\n")
    print("| run | fit s | speed-up vs local | client CPU s | workers' CPU s (in tasks) | "
          "serial share | Amdahl: expected speed-up of 2 workers over 1 | the same, only "
          "the tasks' CPU divided | model == local |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (name, t, same, st), n in zip(out, [None, *args.workers], strict=True):
        if st is None:
            cells = f"{cpu_local:.1f} | | | | |"
        else:
            # the workers' CPU outside the tasks (receiving the data, imports) is paid by
            # every worker: it does not shrink with more workers
            c, task = st["client_cpu_s"], st["task_cpu_s"]
            fixed = c + (st["worker_cpu_s"] - task) / n
            cells = (f"{c:.1f} | {st['worker_cpu_s']:.1f} ({task:.1f}) | "
                     f"{100 * st['serial_share']:.1f} % | "
                     f"{expected_speedup(st['serial_share'], 2):.2f}x | "
                     f"{(fixed + task) / (fixed + task / 2):.2f}x |")
        print(f"| {name} | {t:.1f} | {t_local / t:.2f}x | {cells} {'yes' if same else 'NO'} |")
    dask = [(name, t) for name, t, _, st in out if st is not None]
    if len(dask) >= 2:
        print(f"\nmeasured: {dask[-1][0]} is {dask[0][1] / dask[-1][1]:.2f}x {dask[0][0]}'s "
              "speed (wall time; on a loaded machine, indicative only)")


# ---------------------------------------------------------------------- xl: 1M labels
XL_PEERS = ("pecos-xrlinear", "omikuji-parabel", "napkinxc-plt")
XL_METHODS = ("labelwise-dask", "labelwise-local", *XL_PEERS)
ROOT = Path(__file__).resolve().parent.parent
GIB = 1024.0


def _utc() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())


def _xl_dask(args, folder: Path, workdir: Path, watch) -> dict:
    """labelwise train --model tree --dask <a LocalCluster of 2 workers>, then predict."""
    rec: dict = {"worker_memory": args.worker_memory, "workers": 2}
    lc, client = _cluster(2, args.worker_memory)
    model_dir = workdir / "model"
    try:
        rec["worker_pids"] = sorted(client.run(os.getpid).values())
        cmd = [sys.executable, "-m", "labelwise.cli.main", "train", str(folder / "train.txt"),
               "--model", "tree", "--dask", lc.scheduler_address, "--out", str(model_dir),
               "--quiet"]
        rec["command"] = ("labelwise train " + " ".join(cmd[4:])).replace(
            lc.scheduler_address, "tcp://<LocalCluster(n_workers=2, threads_per_worker=1, "
            f"memory_limit={args.worker_memory!r})>")
        env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), PYTHONUNBUFFERED="1")
        log = workdir / "labelwise-dask.log"
        c0, t0 = time.process_time(), time.perf_counter()
        with open(log, "wb") as logf:
            proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env,
                                    start_new_session=True)
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                if time.perf_counter() - t0 > args.timeout:
                    os.killpg(proc.pid, signal.SIGKILL)
                    pid, status, usage = os.wait4(proc.pid, 0)
                    rec.update(status="timeout", error=f"killed after {args.timeout:.0f} s")
                    break
                time.sleep(0.5)
        rec["wall_s"] = time.perf_counter() - t0
        watch.sample()  # the workers' last CPU seconds, before the cluster closes
        rec["train_peak_total_mb"] = watch.reset_peak()  # training alone, not the prediction
        # what follows runs in this process, which the watchdog never kills: past the cap it
        # would only kill the idle children left (multiprocessing's resource tracker) and
        # mark the fit killed; the prediction's own peak is recorded instead
        watch.cap_mb = float("inf")
        rec["scheduler_cpu_s"] = time.process_time() - c0  # this process: the scheduler
    finally:
        client.close()
        lc.close()
    rec["client_cpu_s"] = usage.ru_utime + usage.ru_stime
    rec["processes"] = {str(pid): {k: p[k] for k in ("hwm_mb", "cpu_s", "cmdline")}
                        for pid, p in watch.procs.items()}
    workers = {pid: p for pid, p in watch.procs.items()
               if pid in rec["worker_pids"] or "spawn_main" in p["cmdline"]}
    rec["worker_processes_seen"] = len(workers)  # more than 2: a worker was restarted
    rec["worker_peak_rss_mb"] = [p["hwm_mb"] for _, p in sorted(workers.items())]
    rec["worker_cpu_s"] = [p["cpu_s"] for _, p in sorted(workers.items())]
    client_proc = watch.procs.get(proc.pid)
    rec["client_peak_rss_mb"] = client_proc["hwm_mb"] if client_proc else None
    rec["scheduler_peak_rss_mb"] = watch.procs[os.getpid()]["hwm_mb"]  # this process
    tail = log.read_text(errors="replace")[-2000:]
    if "status" in rec:
        rec["log_tail"] = tail
        return rec
    code = os.waitstatus_to_exitcode(status)
    found = re.search(r"in ([0-9.]+) s; saved", tail)
    if code != 0 or found is None:
        rec.update(status="failed", error=f"exit {code}", log_tail=tail)
        return rec
    rec.update(status="ok", train_s=float(found.group(1)),
               train_cpu_s=rec["client_cpu_s"] + sum(rec["worker_cpu_s"])
               + rec["scheduler_cpu_s"], cli_line=tail.strip().splitlines()[-1])
    # predict the test rows with the saved pipeline, as a user would in Python
    from labelwise.io.xc import read_xc
    from labelwise.pipeline import Pipeline

    sys.path.insert(0, str(ROOT / "benchmarks" / "peers"))
    from _common import topk_csr

    te = read_xc(folder / "test.txt", index_base=0)
    t0, c0 = time.perf_counter(), time.process_time()
    pipe = Pipeline.load(model_dir, mmap=True)
    S = pipe.decision_function(te.X, k=5)
    rec["predict_s"], rec["predict_cpu_s"] = time.perf_counter() - t0, time.process_time() - c0
    watch.sample()
    rec["predict_peak_total_mb"] = watch.peak_total_mb  # this process: load and predict
    labels, scores = topk_csr(S, 5)
    ids = np.array([int(name) for name in pipe.labels_.names], np.int64)
    rec["_labels"], rec["_scores"] = np.where(labels >= 0, ids[labels], -1), scores
    return rec


def _xl_peer(args, folder: Path, workdir: Path, watch) -> dict:
    import xmc

    spec = xmc.LABELWISE["tree"] if args.method == "labelwise-local" else xmc.PEERS[args.method]
    return xmc.run_method(args.method, spec, folder, workdir, threads=args.threads,
                          timeout=args.timeout)


def _xl_records(path: Path) -> list[dict]:
    return json.loads(path.read_text())["runs"] if path.exists() else []


def xl_table(recs: list[dict]) -> str:
    """Markdown table of the latest record of each method (XL_METHODS order)."""
    latest = {r["method"]: r for r in recs}
    head = ("| method | finished? | train s (wall) | train CPU s | predict s | peak RSS GiB | "
            "P@1 | P@3 | P@5 | PSP@5 | load average (1 min: min-mean-max) | started |")
    lines = [head, "|" + "---|" * 12]
    for m in [m for m in XL_METHODS if m in latest]:
        r = latest[m]
        load = (f"{r['load_min']:.1f}-{r['load_mean']:.1f}-{r['load_max']:.1f}"
                if "load_min" in r else "-")
        if r["status"] != "ok":
            why = r.get("error", r["status"])
            lines.append(f"| {m} | no: {why} | {r.get('wall_s', 0):.0f} (at the stop) | | | "
                         f"{r['peak_total_mb'] / GIB:.1f} (all processes) | | | | | {load} | "
                         f"{r['started']} |")
            continue
        rss = f"{r.get('train_peak_total_mb', r['peak_total_mb']) / GIB:.1f} (all processes)"
        if "worker_peak_rss_mb" in r:
            rss += ("; workers " + " / ".join(f"{v / GIB:.1f}" for v in r["worker_peak_rss_mb"])
                    + "; client " + (f"{r['client_peak_rss_mb'] / GIB:.1f}"
                                     if r.get("client_peak_rss_mb") else "not read")
                    + f"; scheduler {r['scheduler_peak_rss_mb'] / GIB:.1f}")
        if "predict_peak_total_mb" in r:
            rss += f"; loading + predicting {r['predict_peak_total_mb'] / GIB:.1f}"
        lines.append(
            f"| {m} | yes | {r['train_s']:.0f} | {r['train_cpu_s']:.0f} | {r['predict_s']:.1f} | "
            f"{rss} | {r['p@1']:.2f} | {r['p@3']:.2f} | {r['p@5']:.2f} | {r['psp@5']:.2f} | "
            f"{load} | {r['started']} |")
    return "\n".join(lines)


def xl(args) -> None:
    """One method on the 1M-label set (or only the table): the record appended to --records."""
    import tempfile

    import procwatch
    from labelwise.atomic import atomic_write

    records = Path(args.records)
    if args.method != "table":
        import xmc
        from labelwise.io.xc import read_xc
        from labelwise.metrics import inverse_propensities

        folder = data.prepare(args.dataset, args.cache)
        base = {"method": args.method, "dataset": args.dataset, "started": _utc(),
                "timeout_s": args.timeout, "rss_cap_mb": args.rss_cap * GIB,
                "threads": args.threads, "load_before": procwatch.load_average()}
        print(f"[xl] {args.method} on {args.dataset}, started {base['started']}", file=sys.stderr,
              flush=True)
        with tempfile.TemporaryDirectory(prefix="dask-xl-", dir=args.workdir) as tmp, \
                procwatch.Watch(args.rss_cap * GIB,
                                include_self=args.method == "labelwise-dask") as watch:
            run = _xl_dask if args.method == "labelwise-dask" else _xl_peer
            rec = dict(base, **run(args, folder, Path(tmp), watch))
        rec.update(watch.load_summary(), ended=_utc(), rss_trace=watch.trace,
                   peak_total_mb=max(watch.peak_total_mb, rec.get("train_peak_total_mb", 0.0)))
        if watch.killed_at_mb is not None:
            rec.update(status="killed", error=f"killed at {watch.killed_at_mb / GIB:.1f} GiB "
                                              f"(cap {args.rss_cap:g} GiB)")
        if rec["status"] == "ok":
            meta = json.loads((folder / "meta.json").read_text())
            Y_train = read_xc(folder / "train.txt", index_base=0).Y
            inv = inverse_propensities(Y_train, meta["propensity"])
            del Y_train
            Y_test = read_xc(folder / "test.txt", index_base=0).Y
            rec.update(xmc.quality(rec, Y_test, inv))
        for key in ("_labels", "_scores"):
            rec.pop(key, None)
        print(json.dumps({k: v for k, v in rec.items() if k != "log_tail"}), file=sys.stderr,
              flush=True)
        recs = [*_xl_records(records), rec]
        records.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(records, "w", encoding="utf-8") as f:
            json.dump({"runs": recs}, f, indent=1)
    recs = [r for r in _xl_records(records) if r["dataset"] == args.dataset]
    print(f"\n{args.dataset}: LabelTree defaults (labelwise), the peers' defaults; 2 threads or "
          f"2 single-threaded Dask workers; records in {records}\n")
    print(xl_table(recs))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=("federated", "scale", "xl"))
    ap.add_argument("--dataset", help="scale: the dataset (default synthetic-quick); xl: the "
                                      "dataset (default synthetic-1m)")
    ap.add_argument("--datasets", nargs="+", default=["bibtex", "delicious", "cooking"],
                    help="federated: the datasets")
    ap.add_argument("--models", nargs="+", default=["ovr", "tree"], choices=("ovr", "tree"))
    ap.add_argument("--rounds", type=int, nargs="+", default=[1, 8],
                    help="federated: rounds (one partitioned fit per value)")
    ap.add_argument("--cache", default=str(data.DEFAULT_CACHE))
    ap.add_argument("--partitions", type=int, default=5)
    ap.add_argument("--alpha", type=float, default=0.3)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--method", choices=(*XL_METHODS, "table"), default="table",
                    help="xl: the one method to run (its record is appended), or only the table")
    ap.add_argument("--timeout", type=float, default=7200.0, help="xl: seconds per run")
    ap.add_argument("--rss-cap", type=float, default=19.0,
                    help="xl: GiB of resident memory (all processes of a run) at which it is killed")
    ap.add_argument("--worker-memory", default="9GiB", help="xl: each Dask worker's memory limit")
    ap.add_argument("--threads", type=int, default=2, help="xl: threads of the local runs")
    ap.add_argument("--records", default=str(ROOT / "bench-results" / "dask_xl.json"))
    ap.add_argument("--workdir", default=None, help="xl: scratch folder (default: the system's)")
    args = ap.parse_args(argv)
    if args.what == "federated":
        federated(args)
    elif args.what == "xl":
        args.dataset = args.dataset or "synthetic-1m"
        xl(args)
    else:
        args.dataset = args.dataset or "synthetic-quick"
        scale(args)


if __name__ == "__main__":
    main()
