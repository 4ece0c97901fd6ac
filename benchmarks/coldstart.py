"""Cold start: the first train + predict after a fresh install, against the warm time.

For each install kind, from an empty numba cache (its own ``LABELWISE_NUMBA_CACHE`` in a
temporary folder, ``NUMBA_CACHE_DIR`` unset):

- ``editable``: a copy of ``src/`` (no ``__pycache__``) put on ``PYTHONPATH``, as an
  editable install runs it;
- ``wheel``: ``pip wheel`` of a copy of the project, ``pip install --no-deps --target``
  into a temporary folder, then the whole folder made read-only (``chmod a-w``), so
  nothing can be written next to the installed sources.

and for each kind two sequences, each starting from an empty cache:

- ``bare``: no install step; run 1 is what a user who never ran the warm-up pays;
- ``warmup``: the install step runs ``python -m labelwise.warmup`` (as ``make venv`` does;
  its wall and CPU time are reported separately), then run 1 is the first train + predict.
- ``concurrent``: no install step; the warm-up starts in one background process at the same
  moment as run 1 (what a lazy "compile the rest in the background on the first kernel
  call" would gain at best).

Every run is a fresh subprocess that loads Bibtex (MULAN split) with
``labelwise.datasets.load`` (``LABELWISE_DATASETS_MIRROR``), then fits and predicts
(``decision_function``, k=10) a default ``LabelTree`` and a default ``OneVsRest``. Run 2 in
the same cache is the warm time; ``gap`` = run 1 - run 2 of the summed fit + predict
seconds. Each run also reports how many kernels it compiled (numba cache misses), its
import time and its CPU seconds (user + system, all threads): on a shared machine the CPU
seconds are the steadier figure.

    .venv/bin/python benchmarks/coldstart.py --datasets ../shared/datasets
    .venv/bin/python benchmarks/coldstart.py --kinds wheel --sequences warmup

The result is printed as a markdown table and written to ``bench-results/coldstart.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

RUN = textwrap.dedent("""
    import json, resource, sys, time
    t0 = time.perf_counter()
    import labelwise
    from labelwise.datasets import load
    from labelwise.models import LabelTree, OneVsRest
    from numba.core.registry import CPUDispatcher
    out = {"labelwise": labelwise.__file__, "import_s": time.perf_counter() - t0}
    t = time.perf_counter()
    train, test = load("mulan-bibtex", split="train"), load("mulan-bibtex", split="test")
    out["load_s"] = time.perf_counter() - t
    total = 0.0
    for model in (LabelTree(random_state=0), OneVsRest(random_state=0)):
        name = type(model).__name__
        t = time.perf_counter()
        model.fit(train)
        fit = time.perf_counter() - t
        t = time.perf_counter()
        model.decision_function(test.X, k=10)
        predict = time.perf_counter() - t
        out[name] = {"fit_s": fit, "predict_s": predict}
        total += fit + predict
    out["train_predict_s"] = total
    misses = 0
    for mod_name, module in list(sys.modules.items()):
        if mod_name.startswith("labelwise."):
            for obj in vars(module).values():
                if isinstance(obj, CPUDispatcher) and obj.py_func.__module__ == mod_name:
                    misses += sum(obj.stats.cache_misses.values())
    out["kernels_compiled"] = misses
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out["cpu_s"] = usage.ru_utime + usage.ru_stime
    print(json.dumps(out))
""")


def _env(path: Path, cache: Path, datasets: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("NUMBA_CACHE_DIR", "PYTHONPATH", "NUMBA_CACHE_LOCATOR_CLASSES")}
    env.update(PYTHONPATH=str(path), LABELWISE_NUMBA_CACHE=str(cache),
               LABELWISE_DATASETS_MIRROR=str(datasets), PYTHONDONTWRITEBYTECODE="1")
    return env


def _copy_project(dest: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.nbi", "*.nbc", "*.egg-info")
    dest.mkdir(parents=True)
    shutil.copytree(REPO / "src", dest / "src", ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, dest / name)
    return dest


def _install(kind: str, tmp: Path) -> tuple[Path, float]:
    """The folder to put on PYTHONPATH for ``kind``, and the seconds its install took."""
    project = _copy_project(tmp / "project")
    if kind == "editable":
        return project / "src", 0.0
    start = time.perf_counter()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"),
                    str(project)], check=True)
    (wheel,) = (tmp / "dist").glob("labelwise-*.whl")
    target = tmp / "site"
    subprocess.run([*pip, "install", "--no-deps", "--no-compile", "--target", str(target),
                    str(wheel)], check=True)
    for path in [target, *target.rglob("*")]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    return target, time.perf_counter() - start


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(env: dict[str, str], cwd: Path) -> dict:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", RUN], env=env, cwd=cwd, capture_output=True,
                         text=True)
    if out.returncode != 0:
        raise SystemExit(f"error: benchmark run failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.splitlines()[-1])
    result["process_s"] = time.perf_counter() - start
    return result


def _written_next_to_sources(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*")
                  if p.suffix in (".nbi", ".nbc"))


def measure(kind: str, sequence: str, datasets: Path) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"labelwise-coldstart-{kind}-") as name:
        tmp = Path(name)
        try:
            path, install_s = _install(kind, tmp)
            cache = tmp / "cache"
            env = _env(path, cache, datasets)
            record = {"kind": kind, "sequence": sequence, "install_s": install_s}
            if sequence == "warmup":
                cpu0, start = _children_cpu(), time.perf_counter()
                subprocess.run([sys.executable, "-m", "labelwise.warmup", "--quiet"], env=env,
                               cwd=tmp, check=True)
                record["warmup_s"] = time.perf_counter() - start
                record["warmup_cpu_s"] = _children_cpu() - cpu0
            if sequence == "concurrent":
                start = time.perf_counter()
                warmup = subprocess.Popen([sys.executable, "-c", "from labelwise import warmup; "
                                           "warmup.spawn(jobs=1).wait()"], env=env, cwd=tmp)
                record["first"] = _run(env, tmp)
                warmup.wait()
                record["warmup_s"] = time.perf_counter() - start
            else:
                record["first"] = _run(env, tmp)
            record["warm"] = _run(env, tmp)
            if not record["first"]["labelwise"].startswith(str(path)):
                raise SystemExit(f"error: the run imported {record['first']['labelwise']}, "
                                 f"not the {kind} install under {path}")
            record["gap_s"] = record["first"]["train_predict_s"] - record["warm"]["train_predict_s"]
            record["written_next_to_sources"] = _written_next_to_sources(path)
            return record
        finally:
            for p in [tmp, *tmp.rglob("*")]:  # the read-only install, so it can be removed
                if not p.is_symlink():
                    p.chmod(p.stat().st_mode | stat.S_IWUSR)


def _table(records: list[dict]) -> str:
    lines = ["| install | install step | first train+predict | warm | gap | kernels compiled "
             "(first / warm) | first run CPU | warm run CPU |",
             "|---|---|---|---|---|---|---|---|"]
    for r in records:
        step = {"bare": "none", "concurrent": "none (warm-up beside run 1)",
                "warmup": f"warm-up {r.get('warmup_s', 0):.1f} s ({r.get('warmup_cpu_s', 0):.0f} s CPU)"
                }[r["sequence"]]
        first, warm = r["first"], r["warm"]
        lines.append(
            f"| {r['kind']} | {step} | {first['train_predict_s']:.2f} s | "
            f"{warm['train_predict_s']:.2f} s | {r['gap_s']:+.2f} s | "
            f"{first['kernels_compiled']} / {warm['kernels_compiled']} | "
            f"{first['cpu_s']:.1f} s | {warm['cpu_s']:.1f} s |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=str(REPO.parent / "shared" / "datasets"),
                        help="folder laid out like ../shared/datasets")
    parser.add_argument("--kinds", default="editable,wheel", help="editable,wheel")
    parser.add_argument("--sequences", default="bare,warmup", help="bare,warmup,concurrent")
    parser.add_argument("--out", default=str(REPO / "bench-results" / "coldstart.json"))
    args = parser.parse_args(argv)
    datasets = Path(args.datasets).resolve()
    if not (datasets / "mulan-bibtex").is_dir():
        print(f"error: {datasets}/mulan-bibtex not found (--datasets DIR)", file=sys.stderr)
        return 2
    kinds = args.kinds.split(",")
    sequences = args.sequences.split(",")
    bad = (sorted(set(kinds) - {"editable", "wheel"})
           + sorted(set(sequences) - {"bare", "warmup", "concurrent"}))
    if bad:
        parser.error(f"unknown kind or sequence: {', '.join(bad)}")
    records = []
    for kind in kinds:
        for sequence in sequences:
            record = measure(kind, sequence, datasets)
            records.append(record)
            print(json.dumps(record), file=sys.stderr, flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"cpus": os.cpu_count(), "load": os.getloadavg(),
                               "records": records}, indent=1))
    print(_table(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
