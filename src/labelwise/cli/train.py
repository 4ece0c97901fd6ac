"""``labelwise train``: fit a pipeline (featurizer + model) on a training set and save it.

Text data (a table with a text column: csv/tsv/jsonl/parquet, fastText lines, Reuters)
gets a featurizer, ``--features tfidf`` by default; numeric data (XC, LIBSVM, ARFF, feature
tables) goes to the model as it is. The result is a pipeline directory
(:mod:`labelwise.pipeline_store`) that ``labelwise tune`` extends with calibration and a
decision policy, and that ``predict`` and ``evaluate`` read.
"""

from __future__ import annotations

import argparse

from ._common import (
    add_column_arguments,
    add_format_argument,
    column_options,
    load_dataset,
    parse_options,
)

HELP = "train a pipeline (ovr: one-vs-rest linear; tree: label tree for extreme label sets) and save it"

#: CLI model name -> (module, class)
MODELS = {
    "ovr": ("labelwise.models.ovr", "OneVsRest"),
    "tree": ("labelwise.models.tree", "LabelTree"),
}

#: --features choices
FEATURES = ("tfidf", "embeddings", "tfidf+embeddings")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("train", metavar="TRAIN", help="training data (file, folder or registry name[:split])")
    p.add_argument("--model", choices=sorted(MODELS), default="tree", help="model family (default: tree)")
    p.add_argument("--features", choices=FEATURES,
                   help="featurizer for text data (default: tfidf); not for numeric data")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="model parameter, repeatable (e.g. --set C=2 --set loss=logistic)")
    p.add_argument("--feature-set", action="append", default=[], metavar="KEY=VALUE",
                   help="tf-idf parameter, repeatable (e.g. --feature-set min_df=2 --feature-set 'ngram_range=[1,2]')")
    p.add_argument("--embedding-model", metavar="DIR",
                   help="sentence-transformers folder for --features embeddings (default: the shipped all-MiniLM-L6-v2)")
    p.add_argument("--threads", type=int, help="worker threads (default: all CPUs)")
    p.add_argument("--seed", type=int, default=0, help="random_state (default 0)")
    p.add_argument("--out", required=True, metavar="MODEL", help="pipeline directory to write (atomically)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_column_arguments(p)
    add_format_argument(p)


def _instance(cls, params: dict, what: str):
    from labelwise.errors import LabelwiseError

    valid = cls().get_params()
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise LabelwiseError(
            f"unknown parameter(s) {', '.join(unknown)} for {what}; valid: {', '.join(sorted(valid))}"
        )
    try:
        return cls(**params)
    except (TypeError, ValueError) as e:
        raise LabelwiseError(f"{what}: {e}") from None


def make_model(name: str, sets: list[str], threads: int | None, seed: int):
    import importlib

    from labelwise.errors import LabelwiseError

    module, cls_name = MODELS[name]
    try:
        cls = getattr(importlib.import_module(module), cls_name)
    except (ImportError, AttributeError):
        raise LabelwiseError(f"model {name!r} is not available in this version of labelwise") from None
    params = parse_options(sets)
    valid = cls().get_params()
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise LabelwiseError(
            f"unknown parameter(s) {', '.join(unknown)} for --model {name}; valid: {', '.join(sorted(valid))}"
        )
    if threads is not None:
        params["n_threads"] = threads
    params.setdefault("random_state", seed)
    try:
        return cls(**params)
    except (TypeError, ValueError) as e:
        raise LabelwiseError(f"--set: {e}") from None


def make_featurizer(name: str, feature_sets: list[str], embedding_model: str | None):
    """The featurizer of a --features choice (tf-idf parameters from --feature-set)."""
    from labelwise.features import Fusion, SentenceEmbeddings, Tfidf

    params = parse_options(feature_sets)
    for key in ("ngram_range", "char_ngram_range"):
        if isinstance(params.get(key), list):
            params[key] = tuple(params[key])
    tfidf = _instance(Tfidf, params, "--feature-set") if "tfidf" in name else None
    emb = SentenceEmbeddings(model=embedding_model) if "embeddings" in name else None
    if tfidf is not None and emb is not None:
        return Fusion([("tfidf", tfidf), ("embeddings", emb)])
    return tfidf if tfidf is not None else emb


def run(args: argparse.Namespace) -> int:
    import time

    from labelwise.errors import LabelwiseError
    from labelwise.pipeline import Pipeline
    from labelwise.progress import show_progress

    model = make_model(args.model, args.set, args.threads, args.seed)
    data = load_dataset(args.train, args.format, args.option, column_options(args))
    featurizer = None
    if data.x_kind == "text":
        featurizer = make_featurizer(args.features or "tfidf", args.feature_set, args.embedding_model)
    elif args.features or args.feature_set or args.embedding_model:
        raise LabelwiseError(f"--features/--feature-set/--embedding-model: {args.train} holds numeric "
                             f"features ({data.x_kind}), not texts")
    pipe = Pipeline(featurizer, model, random_state=args.seed)
    start = time.perf_counter()
    with show_progress(not args.quiet):
        try:
            pipe.fit(data)
        except ValueError as e:  # parameter validation of the estimator
            if isinstance(e, LabelwiseError):
                raise
            raise LabelwiseError(f"--set: {e}") from None
    seconds = time.perf_counter() - start
    pipe.save(args.out)
    feats = "" if featurizer is None else f" on {args.features or 'tfidf'} features"
    print(f"trained {type(model).__name__}{feats} on {data.n_samples} rows, {data.n_labels} labels "
          f"in {seconds:.2f} s; saved to {args.out}")
    return 0
