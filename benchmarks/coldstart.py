"""Cold start: the first train + predict after a fresh install, against the warm time.

For each install kind, from an empty numba cache (its own ``LABELWISE_NUMBA_CACHE`` in a
temporary folder, ``NUMBA_CACHE_DIR`` unset):

- ``editable``: a copy of ``src/`` (no ``__pycache__``) put on ``PYTHONPATH``, as an
  editable install runs it;
- ``wheel``: ``pip wheel --no-deps`` of a copy of the project (with build isolation, as
  a user or CI builds it: the build step of ``setup.py`` compiles the kernels for numba's
  ``generic`` CPU into the wheel; ``--no-build-isolation`` builds with this environment's
  packages instead), then a fresh temporary venv (``python -m venv``) where
  ``pip install labelwise-*.whl`` installs it with its dependencies (from PyPI or pip's
  cache), then the venv's ``site-packages`` made read-only (``chmod a-w``), so nothing can
  be written next to the installed sources. The build's and the install's times are
  reported; ``LABELWISE_SHIP_KERNELS=0`` in the environment builds a wheel without
  kernels (today's state before this step).

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
seconds. Each run also reports how many kernels it compiled (numba cache misses) and
which, its import time, and the CPU seconds (user + system, all threads) of its train +
predict and of the whole process: on a shared machine the CPU seconds are the steadier
figure.

    .venv/bin/python benchmarks/coldstart.py --datasets ../shared/datasets
    .venv/bin/python benchmarks/coldstart.py --kinds wheel --sequences bare

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
    total, cpu0 = 0.0, time.process_time()
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
    out["train_predict_cpu_s"] = time.process_time() - cpu0
    misses, compiled = 0, []
    for mod_name, module in list(sys.modules.items()):
        if mod_name.startswith("labelwise."):
            for attr, obj in vars(module).items():
                if isinstance(obj, CPUDispatcher) and obj.py_func.__module__ == mod_name:
                    n = sum(obj.stats.cache_misses.values())
                    misses += n
                    compiled += [f"{mod_name}.{attr}"] if n else []
    out["kernels_compiled"] = misses
    out["compiled"] = sorted(compiled)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out["cpu_s"] = usage.ru_utime + usage.ru_stime
    print(json.dumps(out))
""")


class Install:
    """An installed labelwise: the python to run and the folder its package must come from."""

    def __init__(self, python: str, root: Path, pythonpath: str | None):
        self.python, self.root, self.pythonpath = python, root, pythonpath
        self.times: dict[str, float] = {}


def _env(install: Install, cache: Path, datasets: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("NUMBA_CACHE_DIR", "PYTHONPATH", "NUMBA_CACHE_LOCATOR_CLASSES",
                        "NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES", "VIRTUAL_ENV")}
    env.update(LABELWISE_NUMBA_CACHE=str(cache), LABELWISE_DATASETS_MIRROR=str(datasets),
               PYTHONDONTWRITEBYTECODE="1")
    if install.pythonpath:
        env["PYTHONPATH"] = install.pythonpath
    return env


def _copy_project(dest: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.nbi", "*.nbc", "*.egg-info",
                                    "_kernel_cache")
    dest.mkdir(parents=True)
    shutil.copytree(REPO / "src", dest / "src", ignore=ignore)
    for name in ("pyproject.toml", "README.md", "setup.py"):
        shutil.copy2(REPO / name, dest / name)
    return dest


def _timed(cmd: list[str], **kwargs) -> tuple[float, float]:
    """Run ``cmd`` (check=True); its wall seconds and the CPU seconds of its processes."""
    cpu0, start = _children_cpu(), time.perf_counter()
    subprocess.run(cmd, check=True, **kwargs)
    return time.perf_counter() - start, _children_cpu() - cpu0


def _install(kind: str, tmp: Path, *, isolation: bool) -> Install:
    project = _copy_project(tmp / "project")
    if kind == "editable":
        return Install(sys.executable, project / "src", str(project / "src"))
    pip = ["-m", "pip", "--disable-pip-version-check", "-q"]
    build = [sys.executable, *pip, "wheel", "--no-deps", "-w", str(tmp / "dist"), str(project)]
    build_s, build_cpu = _timed(build if isolation else [*build, "--no-build-isolation"],
                                cwd=tmp)
    (wheel,) = (tmp / "dist").glob("labelwise-*.whl")
    venv = tmp / "venv"
    venv_s, _ = _timed([sys.executable, "-m", "venv", str(venv)])
    python = str(venv / "bin" / "python")
    install_s, install_cpu = _timed([python, *pip, "install", str(wheel)], cwd=tmp)
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path("
                                "'purelib'))"], check=True, capture_output=True,
                               text=True).stdout.strip())
    for path in [site, *site.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    install = Install(python, site / "labelwise", None)
    install.times = {"build_s": build_s, "build_cpu_s": build_cpu, "venv_s": venv_s,
                     "install_s": install_s, "install_cpu_s": install_cpu,
                     "wheel_mb": wheel.stat().st_size / 2**20,
                     "shipped_files": len(list((site / "labelwise" / "_kernel_cache").rglob(
                         "*.nb?")))}
    return install


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(python: str, env: dict[str, str], cwd: Path) -> dict:
    start = time.perf_counter()
    out = subprocess.run([python, "-c", RUN], env=env, cwd=cwd, capture_output=True,
                         text=True)
    if out.returncode != 0:
        raise SystemExit(f"error: benchmark run failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.splitlines()[-1])
    result["process_s"] = time.perf_counter() - start
    return result


def _cache_files(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*")
                  if p.suffix in (".nbi", ".nbc"))


def measure(kind: str, sequence: str, datasets: Path, *, isolation: bool = True) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"labelwise-coldstart-{kind}-") as name:
        tmp = Path(name)
        try:
            install = _install(kind, tmp, isolation=isolation)
            cache = tmp / "cache"
            env = _env(install, cache, datasets)
            python = install.python
            record = {"kind": kind, "sequence": sequence, **install.times,
                      "load_before": os.getloadavg()}
            before = set(_cache_files(install.root))
            if sequence == "warmup":
                record["warmup_s"], record["warmup_cpu_s"] = _timed(
                    [python, "-m", "labelwise.warmup", "--quiet"], env=env, cwd=tmp)
            if sequence == "concurrent":
                start = time.perf_counter()
                warmup = subprocess.Popen([python, "-c", "from labelwise import warmup; "
                                           "warmup.spawn(jobs=1).wait()"], env=env, cwd=tmp)
                record["first"] = _run(python, env, tmp)
                warmup.wait()
                record["warmup_s"] = time.perf_counter() - start
            else:
                record["first"] = _run(python, env, tmp)
            record["warm"] = _run(python, env, tmp)
            record["load_after"] = os.getloadavg()
            if not record["first"]["labelwise"].startswith(str(install.root)):
                raise SystemExit(f"error: the run imported {record['first']['labelwise']}, "
                                 f"not the {kind} install under {install.root}")
            record["gap_s"] = record["first"]["train_predict_s"] - record["warm"]["train_predict_s"]
            record["written_next_to_sources"] = sorted(set(_cache_files(install.root)) - before)
            return record
        finally:
            for p in [tmp, *tmp.rglob("*")]:  # the read-only install, so it can be removed
                if not p.is_symlink():
                    p.chmod(p.stat().st_mode | stat.S_IWUSR)


def _table(records: list[dict]) -> str:
    lines = ["| install | install step | first train+predict | warm | gap | kernels compiled "
             "(first / warm) | train+predict CPU (first / warm) | process CPU (first / warm) "
             "| load avg |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        step = {"bare": "none", "concurrent": "none (warm-up beside run 1)",
                "warmup": f"warm-up {r.get('warmup_s', 0):.1f} s ({r.get('warmup_cpu_s', 0):.0f} s CPU)"
                }[r["sequence"]]
        kind = r["kind"]
        if kind == "wheel":
            kind = (f"wheel ({r['shipped_files']} shipped kernel files, {r['wheel_mb']:.1f} MB; "
                    f"build {r['build_s']:.0f} s, {r['build_cpu_s']:.0f} s CPU)")
        first, warm = r["first"], r["warm"]
        lines.append(
            f"| {kind} | {step} | {first['train_predict_s']:.2f} s | "
            f"{warm['train_predict_s']:.2f} s | {r['gap_s']:+.2f} s | "
            f"{first['kernels_compiled']} / {warm['kernels_compiled']} | "
            f"{first['train_predict_cpu_s']:.1f} / {warm['train_predict_cpu_s']:.1f} s | "
            f"{first['cpu_s']:.1f} / {warm['cpu_s']:.1f} s | "
            f"{r['load_before'][0]:.1f}-{r['load_after'][0]:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=str(REPO.parent / "shared" / "datasets"),
                        help="folder laid out like ../shared/datasets")
    parser.add_argument("--kinds", default="editable,wheel", help="editable,wheel")
    parser.add_argument("--sequences", default="bare,warmup", help="bare,warmup,concurrent")
    parser.add_argument("--out", default=str(REPO / "bench-results" / "coldstart.json"))
    parser.add_argument("--no-build-isolation", action="store_true",
                        help="build the wheel with this environment's numba and setuptools")
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
            record = measure(kind, sequence, datasets, isolation=not args.no_build_isolation)
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
