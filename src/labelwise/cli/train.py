"""``labelwise train``: fit a model on a training set and save it as a model directory."""

from __future__ import annotations

import argparse

from ._common import add_format_argument, load_dataset, parse_options

HELP = "train a model (ovr: one-vs-rest linear; tree: label tree for extreme label sets) and save it"

#: CLI model name -> (module, class)
MODELS = {
    "ovr": ("labelwise.models.ovr", "OneVsRest"),
    "tree": ("labelwise.models.tree", "LabelTree"),
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("train", metavar="TRAIN", help="training data (file, folder or registry name[:split])")
    p.add_argument("--model", choices=sorted(MODELS), default="tree", help="model family (default: tree)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="model parameter, repeatable (e.g. --set C=2 --set loss=logistic)")
    p.add_argument("--threads", type=int, help="worker threads (default: all CPUs)")
    p.add_argument("--seed", type=int, default=0, help="random_state (default 0)")
    p.add_argument("--out", required=True, metavar="MODEL", help="model directory to write (atomically)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_format_argument(p)


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


def run(args: argparse.Namespace) -> int:
    import time

    from labelwise.errors import LabelwiseError
    from labelwise.progress import show_progress

    model = make_model(args.model, args.set, args.threads, args.seed)
    data = load_dataset(args.train, args.format, args.option)
    start = time.perf_counter()
    with show_progress(not args.quiet):
        try:
            model.fit(data)
        except ValueError as e:  # parameter validation of the estimator
            if isinstance(e, LabelwiseError):
                raise
            raise LabelwiseError(f"--set: {e}") from None
    seconds = time.perf_counter() - start
    model.save(args.out)
    print(f"trained {type(model).__name__} on {data.n_samples} rows, {data.n_labels} labels "
          f"in {seconds:.2f} s; saved to {args.out}")
    return 0
