"""Benchmark: labelwise iterative stratification against the ``iterative-stratification`` package.

Both split the same label matrix into 5 folds (``MultilabelStratifiedKFold(5, shuffle=True)``
versus ``IterativeStratifiedKFold(5)``, order 1 and order 2). For each data set the table gives
wall time for seed 0 (labelwise: median of ``--repeats`` runs after a warm-up that compiles
the numba kernels; iterstrat: one run, it needs a dense Y), the time ratio labelwise/iterstrat,
and the quality measures LD, LPD (lower is better), ED and FLZ of
:mod:`labelwise.split.quality`, averaged over ``--seeds`` random states (iterstrat: one seed on
data over ``--iterstrat-one-seed-over`` rows), with an unstratified shuffled ``KFold`` as
the baseline.

Data sets: a synthetic power-law label matrix (default 100,000 rows x 1,000 labels, 3-5
labels per row drawn with probability ~ 1/rank), yeast (LIBSVM file read with scikit-learn's
``load_svmlight_file``), and the MULAN ARFF files bibtex and delicious read with
``labelwise.read`` (skipped with a message when the reader or the files are absent).

Run::

    .venv/bin/python benchmarks/splits.py [--rows 100000] [--labels 1000] [--repeats 3]
        [--datasets DIR] [--skip-iterstrat-over 200000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

REPO = Path(__file__).resolve().parents[1]


def power_law_labels(n: int, q: int, seed: int = 0) -> sp.csr_matrix:
    """n rows, each with 3..5 draws from labels 0..q-1 with probability ~ 1/(rank+1)."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, q + 1)
    p /= p.sum()
    per_row = rng.integers(3, 6, size=n)
    draws = rng.choice(q, size=int(per_row.sum()), p=p)
    rows = np.repeat(np.arange(n), per_row)
    Y = sp.csr_matrix((np.ones(draws.size, np.float32), (rows, draws)), shape=(n, q))
    Y.data[:] = 1.0  # repeated draws in a row collapse to one positive
    Y.sort_indices()
    return Y


def load_sets(args: argparse.Namespace) -> list[tuple[str, sp.csr_matrix]]:
    sets = [(f"synthetic {args.rows}x{args.labels}", power_law_labels(args.rows, args.labels))]
    from labelwise.dataset import as_label_matrix

    yeast = Path(args.datasets) / "libsvm-yeast-napkinxc" / "yeast_train.txt"
    if yeast.exists():
        from sklearn.datasets import load_svmlight_file

        _, labels = load_svmlight_file(str(yeast), multilabel=True, zero_based=False)
        sets.append(("yeast (libsvm train)", as_label_matrix([sorted(int(j) for j in r) for r in labels], 14)))
    else:
        print(f"skip yeast: {yeast} is absent", file=sys.stderr)
    for name in ("bibtex", "delicious"):
        path = Path(args.datasets) / f"mulan-{name}" / f"{name}.arff"
        try:
            import labelwise

            ds = labelwise.read(path)
        except Exception as e:  # reader missing or file absent: say so and go on
            print(f"skip {name}: cannot read {path} with labelwise.read ({type(e).__name__}: {e})", file=sys.stderr)
            continue
        sets.append((f"{name} (mulan arff)", ds.Y))
    return sets


def timed(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--labels", type=int, default=1_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--datasets", default=str(REPO.parent / "shared" / "datasets"))
    ap.add_argument("--skip-iterstrat-over", type=int, default=200_000, help="rows above which iterstrat is not run")
    ap.add_argument("--seeds", type=int, default=5, help="quality measures are means over this many seeds")
    ap.add_argument(
        "--iterstrat-one-seed-over", type=int, default=50_000,
        help="rows above which iterstrat runs for one seed only (it is slow)",
    )
    ap.add_argument("--json", help="also write the rows as JSON here")
    args = ap.parse_args(argv)

    from sklearn.model_selection import KFold

    from labelwise.split import IterativeStratifiedKFold, split_report

    try:
        from iterstrat.ml_stratifiers import MultilabelStratifiedKFold
    except ImportError:
        MultilabelStratifiedKFold = None
        print("iterative-stratification is not installed: pip install iterative-stratification", file=sys.stderr)

    warm = power_law_labels(200, 20, 1)
    for order in (1, 2):  # compile the numba kernels outside the timings
        list(IterativeStratifiedKFold(5, order=order, random_state=0).split(None, warm))

    rows = []
    for name, Y in load_sets(args):
        n = Y.shape[0]
        print(f"== {name}: {n} rows, {Y.shape[1]} labels, {Y.nnz / n:.2f} labels/row", file=sys.stderr)
        seeds = list(range(args.seeds))
        results = {}
        for order in (1, 2):
            t, _ = timed(
                lambda o=order, Y=Y: list(IterativeStratifiedKFold(5, order=o, random_state=0).split(None, Y)),
                args.repeats,
            )
            folds = [list(IterativeStratifiedKFold(5, order=order, random_state=s).split(None, Y)) for s in seeds]
            results[f"labelwise order={order}"] = (t, folds)
        if MultilabelStratifiedKFold is not None and n <= args.skip_iterstrat_over:
            dense = Y.toarray().astype(bool)
            it_seeds = seeds if n <= args.iterstrat_one_seed_over else seeds[:1]
            times, folds = [], []
            for s in it_seeds:
                cv = MultilabelStratifiedKFold(5, shuffle=True, random_state=s)
                t, f = timed(lambda cv=cv, n=n, dense=dense: list(cv.split(np.zeros(n), dense)), 1)
                times.append(t)
                folds.append(f)
            results["iterstrat"] = (times[0], folds)
            del dense
        results["KFold (unstratified)"] = (
            float("nan"),
            [list(KFold(5, shuffle=True, random_state=s).split(np.zeros(n))) for s in seeds],
        )
        base = results.get("iterstrat", (float("nan"),))[0]
        for method, (t, folds) in results.items():
            reps = [split_report(Y, f) for f in folds]
            rows.append(
                {
                    "data": name,
                    "method": method,
                    "seconds": t,
                    "ratio": t / base if base == base and t == t else float("nan"),
                    "seeds": len(reps),
                    **{m: float(np.mean([r[m] for r in reps])) for m in ("ld", "lpd", "ed", "flz")},
                }
            )
            r = rows[-1]
            print(
                f"   {method:<22} {r['seconds']:9.3f}s  ratio {r['ratio']:.4f}  LD {r['ld']:.6f}  "
                f"LPD {r['lpd']:.6f}  ED {r['ed']:.1f}  FLZ {r['flz']:.1f}",
                file=sys.stderr,
            )

    header = "| data | method | time (s) | time / iterstrat | seeds | LD | LPD | ED | FLZ |"
    print(header)
    print("|" + "---|" * 9)
    for r in rows:
        print(
            f"| {r['data']} | {r['method']} | {r['seconds']:.3f} | {r['ratio']:.4f} | {r['seeds']} | "
            f"{r['ld']:.4g} | {r['lpd']:.4g} | {r['ed']:.1f} | {r['flz']:.1f} |"
        )
    if args.json:
        clean = [{k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()} for r in rows]
        Path(args.json).write_text(json.dumps(clean, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
