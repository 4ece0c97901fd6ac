"""The main job end to end on a real dataset (``make demo``).

1. ``info``: statistics of the Enron email corpus with its annotators' categories
   (1,702 emails, 53 labels, the mailbox owner as group).
2. A leak-free split: group-aware iterative stratification (no mailbox on both sides), with the
   split's quality measures (label and label-pair distribution).
3. A label-frequency baseline (every item gets the training frequencies as scores), evaluated
   with the full metric suite; the report is written as JSON and HTML.
4. A label tree trained on Bibtex (MULAN split: 4,880 train / 2,515 test, 159 labels), evaluated,
   saved, reloaded, and a few of its predictions printed with label names.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

__all__ = ["main"]


def _section(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 70 - len(title)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labelwise.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="../shared/datasets", help="folder laid out like ../shared/datasets")
    parser.add_argument("--out", default="demo-output", help="folder for the report files")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    if not Path(args.datasets).is_dir():
        print(f"error: dataset folder {args.datasets} not found (make demo DATASETS=/path)", file=sys.stderr)
        return 2
    os.environ.setdefault("LABELWISE_DATASETS_MIRROR", str(Path(args.datasets).resolve()))

    from labelwise.datasets import load
    from labelwise.metrics import evaluate
    from labelwise.report import write_report
    from labelwise.split import split_report, train_test_split

    name = "enron-berkeley-annotated"
    _section(f"1. info: {name}")
    ds = load(name)
    stats = ds.stats()
    for key in ("n_samples", "n_labels", "label_cardinality", "rows_without_labels", "n_groups"):
        print(f"{key:<22} {stats[key]:.4g}" if isinstance(stats[key], float) else f"{key:<22} {stats[key]}")

    _section("2. leak-free split (group-aware iterative stratification, 20% test)")
    train_idx, test_idx = train_test_split(ds, test_size=0.2, random_state=args.seed)  # groups from ds
    shared = set(ds.groups[train_idx]) & set(ds.groups[test_idx])
    quality = split_report(ds.Y, [test_idx, train_idx])
    print(f"train {len(train_idx)} rows, test {len(test_idx)} rows; mailboxes on both sides: {len(shared)}")
    print("split quality: " + ", ".join(f"{k}={v:.4g}" for k, v in quality.items() if isinstance(v, float)))
    if shared:
        print("error: the group-aware split put a mailbox on both sides", file=sys.stderr)
        return 1

    _section("3. label-frequency baseline, evaluated")
    train, test = ds.subset(train_idx), ds.subset(test_idx)
    freq = np.asarray(train.Y.sum(axis=0)).ravel() / train.n_samples
    S = np.tile(freq, (test.n_samples, 1))
    report = evaluate(test.Y, S, k=(1, 3, 5), Y_train=train.Y, label_names=list(ds.labels.names))
    m = report["metrics"]
    for key in ("p@1", "p@3", "p@5", "ndcg@5", "psp@5", "micro_f1", "macro_f1", "map", "macro_auroc"):
        if key in m:
            print(f"{key:<12} {m[key]:.4f}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "baseline-report.json").write_text(json.dumps(report, indent=1))
    write_report(out / "baseline-report.html", test.Y, S, report, title=f"label-frequency baseline on {name}")
    top = np.argsort(-freq, kind="stable")[:5]
    shown = [f"{ds.labels.name(j)} ({ds.labels.description(int(j))})" if ds.labels.description(int(j)) else ds.labels.name(j) for j in top]
    print("the baseline's top-5 for every email: " + "; ".join(shown))
    print(f"\nreports: {out / 'baseline-report.json'}  {out / 'baseline-report.html'}")
    return _tree_demo(out, args.seed)


def _tree_demo(out: Path, seed: int) -> int:
    import time

    from labelwise.datasets import load
    from labelwise.metrics import evaluate
    from labelwise.models import LabelTree, load_model
    from labelwise.report import write_report

    _section("4. label tree on Bibtex (MULAN train/test split)")
    train, test = load("mulan-bibtex", split="train"), load("mulan-bibtex", split="test")
    model = LabelTree(random_state=seed)
    start = time.perf_counter()
    model.fit(train)
    fit_s = time.perf_counter() - start
    model.save(out / "bibtex-tree")
    model = load_model(out / "bibtex-tree")
    start = time.perf_counter()
    S = model.decision_function(test.X, k=10)
    predict_s = time.perf_counter() - start
    report = evaluate(test.Y, S, k=(1, 3, 5), Y_train=train.Y, label_names=list(test.labels.names))
    m = report["metrics"]
    print(f"trained in {fit_s:.2f} s on {train.n_samples} rows; top-10 for {test.n_samples} rows in {predict_s:.2f} s")
    print("  ".join(f"{key} {m[key]:.4f}" for key in ("p@1", "p@3", "p@5", "ndcg@5", "psp@5")))
    write_report(out / "bibtex-tree-report.html", test.Y, S, report, title="LabelTree on Bibtex")
    print("a few predictions (top-3, * = a true label):")
    for i in range(3):
        row = S.getrow(i)
        order = np.argsort(-row.data, kind="stable")[:3]
        truth = set(test.label_names(i))
        shown = [f"{'*' if test.labels.name(int(row.indices[j])) in truth else ''}{test.labels.name(int(row.indices[j]))} ({row.data[j]:.2f})" for j in order]
        print(f"  item {i}: " + ", ".join(shown) + f"   | true: {', '.join(sorted(truth))}")
    print(f"report: {out / 'bibtex-tree-report.html'}; model: {out / 'bibtex-tree'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
