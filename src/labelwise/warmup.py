"""Fill numba's cache with every labelwise kernel: ``python -m labelwise.warmup``.

A fresh install compiles its kernels on first use (about 40 s of CPU for the first
train + predict of a label tree and a one-vs-rest model on Bibtex). This module does that
work ahead of time: each group of :data:`GROUPS` runs a small synthetic problem through
the public API (the same calls, dtypes and array layouts as real use) in its own process,
up to ``--jobs`` (default 2) processes at once, and each writes what it compiles to the
cache of :mod:`labelwise._numba` (``$LABELWISE_NUMBA_CACHE``, ``~/.cache/labelwise/numba``
or a user's ``NUMBA_CACHE_DIR``). A second run finds everything cached (about 5 s of
CPU, mostly imports). ``make venv`` runs it once after installing.

Groups (the first two about equal compile work, so two processes finish together; the
third, smaller, follows):

- ``tree``: :class:`~labelwise.models.LabelTree` fit (PIFA, balanced 2-means, node solver,
  layout) and decision_function (beam search), including a node of few long rows solved on
  its Gram matrix built over two threads (long documents such as e-mails take that path);
- ``linear``: :class:`~labelwise.models.OneVsRest` fit with both losses and
  decision_function, top-k of dense and sparse scores, ``evaluate`` on both kinds of
  scores, a group-aware iterative split, an XC file written and read back, and a
  :class:`~labelwise.features.Tfidf` with character n-grams fitted and applied;
- ``families``: the label-dependence families with kernels of their own, fitted and
  applied on sparse and dense features: :class:`~labelwise.models.LabelForest` (random
  forest and extra-trees), :class:`~labelwise.models.CalibratedLabelRanking`, and the chain
  (greedy and beam), powerset, RAkEL, ML-kNN, PLST and output-code models around them.

The warm-up ignores kernels shipped in a wheel (``LABELWISE_SHIPPED_KERNELS=0``), so
after a wheel install it compiles this CPU's own (host-tuned) kernels, which are then
found first.

``--ship`` (what a wheel's build runs, see ``setup.py``) compiles the same groups for
numba's ``generic`` CPU into a temporary cache and moves the result into this package's
``_kernel_cache`` folder with a manifest (numba version, sources' digest, sha256 of every
file), where :class:`labelwise._numba.KernelCache` finds it on any CPU of the same target
triple.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["GROUPS", "warm_group", "spawn", "pack", "ship", "main"]

GROUPS = ("tree", "linear", "families")


def _problem(n_samples: int = 300, n_features: int = 200, n_labels: int = 40, seed: int = 0,
             density: float = 0.05):
    """A small sparse multi-label problem with learnable labels (float32 CSR, like real data)."""
    import numpy as np
    import scipy.sparse as sp

    from .dataset import Dataset

    rng = np.random.default_rng(seed)
    X = sp.random(n_samples, n_features, density=density, format="csr", dtype=np.float32,
                  random_state=seed)
    W = rng.standard_normal((n_features, n_labels)).astype(np.float32)
    S = np.asarray(X @ W)
    Y = (S >= np.quantile(S, 0.9, axis=0)).astype(np.int8)
    Y[np.arange(n_samples), np.argmax(S, axis=1)] = 1  # every row has a label
    groups = np.arange(n_samples) % 30
    return Dataset(X, sp.csr_matrix(Y), groups=groups)


def _warm_tree() -> None:
    from .models import LabelTree

    ds = _problem(n_samples=600, n_labels=120)
    model = LabelTree(branching=4, max_leaf_size=8, beam_size=4, random_state=0).fit(ds)
    model.decision_function(ds.X[:50], k=5)
    # the defaults (a wide root) also take split_tasks's lockstep-block test
    # (count_row_features), which the deep small-leaf tree above never reaches
    LabelTree(random_state=0).fit(ds).decision_function(ds.X[:50], k=10)
    # few long rows (at least n/2 values a row, spread over more features than one lockstep
    # block holds) and one leaf of labels, like e-mails: the root is solved on its Gram
    # matrix, cut over two threads, which build the matrix together
    long_rows = _long_rows()
    LabelTree(random_state=0, n_threads=2).fit(long_rows).decision_function(long_rows.X, k=5)


def _long_rows(n_samples: int = 400, row_length: int = 250, n_features: int = 1_000_000,
               n_labels: int = 100, seed: int = 0):
    """Few long sparse rows over a wide vocabulary, random labels (every row and label used)."""
    import numpy as np
    import scipy.sparse as sp

    from .dataset import Dataset

    rng = np.random.default_rng(seed)
    cols = np.sort(rng.choice(n_features, size=(n_samples, row_length)), axis=1)
    X = sp.csr_matrix((rng.random(cols.size, dtype=np.float32), cols.ravel(),
                       np.arange(0, cols.size + 1, row_length)), shape=(n_samples, n_features))
    X.sum_duplicates()
    Y = rng.random((n_samples, n_labels)) < 0.2
    Y[np.arange(n_samples), rng.integers(0, n_labels, n_samples)] = True
    Y[rng.integers(0, n_samples, n_labels), np.arange(n_labels)] = True
    return Dataset(X, sp.csr_matrix(Y.astype(np.int8)))


def _warm_linear() -> None:
    import numpy as np

    from .io import read, write
    from .metrics import evaluate
    from .models import OneVsRest
    from .models.topk import topk_csr, topk_dense
    from .split import train_test_split

    ds = _problem()
    train_idx, test_idx = train_test_split(ds, test_size=0.3, random_state=0)
    train, test = ds.subset(train_idx), ds.subset(test_idx)
    for loss in ("squared_hinge", "logistic"):
        S = OneVsRest(loss=loss, random_state=0).fit(train).decision_function(test.X, k=5)
    evaluate(test.Y, S, k=(1, 3, 5), Y_train=train.Y)
    dense = np.asarray(S.todense(), dtype=np.float32)
    evaluate(test.Y, dense, k=(1, 3, 5), Y_train=train.Y)
    topk_dense(dense, 3)
    topk_csr(S.tocsr(), 3)
    with tempfile.TemporaryDirectory(prefix="labelwise-warmup-") as tmp:
        path = Path(tmp) / "warm.xc"
        write(ds, path)
        read(path)
    _warm_tfidf()


def _warm_tfidf() -> None:
    from .features import Tfidf

    words = ["kivi", "kausi", "asuin", "paikka", "röykkiö", "cat", "dog", "pot"]
    texts = [" ".join(words[(i * j) % len(words)] for j in range(1, 6)) for i in range(40)]
    Tfidf(char_ngram_range=(3, 5)).fit(texts).transform(texts)


def _warm_families() -> None:
    import numpy as np

    from .dataset import Dataset
    from .models import (
        CalibratedLabelRanking,
        ClassifierChain,
        LabelEmbedding,
        LabelForest,
        LabelPowerset,
        MLkNN,
        OutputCodes,
        RAkEL,
    )

    sparse = _problem(n_samples=200, n_features=40, n_labels=6, density=0.3)
    dense = Dataset(np.asarray(sparse.X.todense()), sparse.Y)
    for ds in (sparse, dense):
        for kind in ("random", "extra"):
            LabelForest(kind=kind, n_estimators=4, random_state=0).fit(ds).predict_proba(ds.X)
    for model in (CalibratedLabelRanking(), ClassifierChain(inference="greedy"),
                  ClassifierChain(inference="beam"), LabelPowerset(), RAkEL(random_state=0),
                  MLkNN(), LabelEmbedding(), OutputCodes(random_state=0)):
        model.fit(sparse).decision_function(sparse.X, k=3)


_WARMERS = {"tree": _warm_tree, "linear": _warm_linear, "families": _warm_families}


def warm_group(name: str) -> None:
    """Run one group's workload in this process (compiling or loading its kernels)."""
    if name not in _WARMERS:
        raise ValueError(f"unknown warm-up group {name!r}; known: {', '.join(GROUPS)}")
    _WARMERS[name]()


def spawn(*, jobs: int = 1, env: dict[str, str] | None = None,
          cwd: str | os.PathLike[str] | None = None) -> subprocess.Popen:
    """Start ``python -m labelwise.warmup --quiet --jobs N`` in the background and return it.

    For a long-lived process (a server) that wants its kernels compiled while it starts
    up; the caller waits on or ignores the returned process. Kernels the caller needs
    before the warm-up has cached them are compiled by the caller as usual, and every
    compiled kernel is found by later calls once written.
    """
    return subprocess.Popen([sys.executable, "-m", "labelwise.warmup", "--quiet", "--jobs",
                             str(jobs)], env=env, cwd=cwd)


def _run_parallel(groups: list[str], jobs: int, quiet: bool,
                  env: dict[str, str] | None = None) -> int:
    cmd = [sys.executable, "-m", "labelwise.warmup", "--jobs", "1", "--group"]
    pending, running, failed = list(groups), [], 0
    while pending or running:
        while pending and len(running) < jobs:
            name = pending.pop(0)
            running.append((name, time.perf_counter(), subprocess.Popen([*cmd, name], env=env)))
        name, start, proc = running.pop(0)
        if proc.wait() != 0:
            failed += 1
            print(f"error: warm-up group {name!r} exited with {proc.returncode}", file=sys.stderr)
        elif not quiet:
            print(f"warm-up {name}: {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return failed


def pack(built: Path, root: Path) -> Path:
    """Copy the cache folder ``built`` (a ``cache_folder`` filled for the ``generic`` CPU) to
    ``root/<its name>`` with a manifest; return the new folder.

    The manifest holds the numba version, the sources' digest and the sha256 of every
    ``.nbi``/``.nbc`` file; :class:`labelwise._numba.KernelCache` reads nothing else.
    """
    import numba

    from . import _numba

    dest = root / built.name
    files = {}
    for path in sorted(built.rglob("*")):
        if path.suffix in (".nbi", ".nbc") and path.is_file():
            rel = path.relative_to(built)
            (dest / rel.parent).mkdir(parents=True, exist_ok=True)
            data = path.read_bytes()
            (dest / rel).write_bytes(data)
            files[rel.as_posix()] = hashlib.sha256(data).hexdigest()
    if not any(name.endswith(".nbi") for name in files):
        raise RuntimeError(f"nothing cached under {built}; no kernels shipped")
    manifest = {"numba": numba.__version__, "python": list(sys.version_info[:2]),
                "sources": _numba._sources_digest(), "cpu": _numba.PORTABLE_CPU, "files": files}
    (dest / _numba.MANIFEST_NAME).write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return dest


def ship(*, jobs: int = 2, quiet: bool = False) -> Path:
    """Compile every group for numba's ``generic`` CPU into this package's ``_kernel_cache``.

    Replaces what that folder held and returns the folder of these sources. Raises
    ``RuntimeError`` when a group fails or nothing was compiled.
    """
    from . import _numba

    if _numba.SHIPPED_ROOT.is_symlink():
        raise RuntimeError(f"{_numba.SHIPPED_ROOT} is a link; refusing to write through it")
    shutil.rmtree(_numba.SHIPPED_ROOT, ignore_errors=True)  # else the warm-up would load it
    with tempfile.TemporaryDirectory(prefix="labelwise-ship-") as tmp:
        env = {k: v for k, v in os.environ.items()
               if k not in ("NUMBA_CACHE_DIR", "NUMBA_CPU_FEATURES", "NUMBA_CACHE_LOCATOR_CLASSES")}
        env.update(NUMBA_CPU_NAME=_numba.PORTABLE_CPU, LABELWISE_NUMBA_CACHE=tmp,
                   PYTHONPATH=os.pathsep.join(
                       [str(_numba.PACKAGE_DIR.parent), *filter(None, [env.get("PYTHONPATH")])]))
        if _run_parallel(list(GROUPS), min(jobs, len(GROUPS)), quiet, env=env):
            raise RuntimeError("the warm-up failed; no kernels shipped")
        dest = pack(_numba.cache_folder(Path(tmp)), _numba.SHIPPED_ROOT)
    if not quiet:
        print(f"shipped {len(list(dest.rglob('*.nb?')))} kernel cache files in {dest}",
              file=sys.stderr)
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labelwise.warmup",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2, help="processes at once (default 2)")
    parser.add_argument("--group", choices=GROUPS, action="append",
                        help="warm only this group (repeatable; default: all)")
    parser.add_argument("--quiet", action="store_true", help="print nothing on success")
    parser.add_argument("--ship", action="store_true",
                        help="compile for numba's generic CPU into this package's _kernel_cache "
                             "(a wheel build step)")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be >= 1")
    if args.ship:
        if args.group:
            parser.error("--ship compiles every group")
        try:
            ship(jobs=args.jobs, quiet=args.quiet)
        except (RuntimeError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0
    groups = args.group or list(GROUPS)
    # compile this CPU's kernels into the user cache even where a wheel ships portable ones
    os.environ["LABELWISE_SHIPPED_KERNELS"] = "0"
    start = time.perf_counter()
    if args.jobs == 1 and len(groups) == 1:
        warm_group(groups[0])
        return 0
    failed = _run_parallel(groups, min(args.jobs, len(groups)), args.quiet)
    if failed:
        return 1
    if not args.quiet:
        from ._numba import cache_folder

        where = os.environ.get("NUMBA_CACHE_DIR") or cache_folder()
        print(f"numba kernels cached in {where} ({time.perf_counter() - start:.1f} s)",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
