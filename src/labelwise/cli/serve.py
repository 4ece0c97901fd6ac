"""``labelwise serve MODEL_DIR... | --models-dir DIR``: an HTTP API over saved models.

Every model or pipeline directory is served under its directory's name (``--models-dir``:
each subdirectory holding a model). Binds 127.0.0.1 unless ``--host`` says otherwise.
Routes, errors and settings: :mod:`labelwise.serve` (and ``/docs`` on the running server).
``--workers N`` loads the models once and forks N uvicorn workers that share that memory
(:mod:`labelwise.serve.prefork`; ``--workers-mode spawn``: uvicorn's own workers, each loading
the memory-mapped models itself); ``/metrics`` sums over the workers (prometheus-client's
multiprocess mode, in a temporary folder removed at exit).
"""

from __future__ import annotations

import argparse

HELP = "serve models over HTTP: predict, labels, learn, reload, metrics (needs labelwise[serve])"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model_dirs", metavar="MODEL_DIR", nargs="*",
                   help="model or pipeline directories, served under their directory names")
    p.add_argument("--models-dir", metavar="DIR",
                   help="serve every model or pipeline directory found in DIR")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--workers-mode", choices=["fork", "spawn"], default="fork",
                   help="with --workers N > 1: 'fork' (default) loads the models once and forks "
                        "the workers, which share its memory; 'spawn' uses uvicorn's workers, "
                        "each a fresh interpreter that loads the models itself")
    p.add_argument("--token-file", metavar="F",
                   help="file holding the bearer token of the write routes (learn, reload); "
                        "without it those routes answer 403")
    p.add_argument("--allow-learn", metavar="NAME", nargs="+", action="extend", default=[],
                   help="models that POST /v1/models/NAME/learn may change")
    p.add_argument("--review-db", metavar="URL",
                   help="review database (SQLite path or postgresql://...): turns on the "
                        "/v1/review routes (labelwise review init creates it)")
    p.add_argument("--review-train", metavar="NAME=DATA", action="append", default=[],
                   help="training data of a served model for POST /v1/review/learn with "
                        "retrain (repeatable)")
    p.add_argument("--max-items", type=int, default=1000,
                   help="most items per predict request (default 1000)")
    p.add_argument("--max-body", default="8MiB",
                   help="largest request body, e.g. 8MiB (default), 512KiB, 1000000")
    p.add_argument("--batch-wait-ms", type=float, default=None,
                   help="micro-batching: how long a model call waits for more requests (default "
                        "0: it takes the requests already queued, never waits)")
    p.add_argument("--no-batching", action="store_true",
                   help="one model call per request (no micro-batching)")
    p.add_argument("--max-batch", type=int, default=256,
                   help="micro-batching: most items in one model call (default 256)")
    p.add_argument("--log-level", default="info",
                   choices=["critical", "error", "warning", "info", "debug"],
                   help="uvicorn's log level (default info)")
    p.add_argument("--access-log", action="store_true",
                   help="log one line per request (uvicorn's access log; off by default: it "
                        "costs about a millisecond per request)")


def model_paths(dirs: list[str], models_dir: str | None) -> dict[str, str]:
    """Served name -> directory; refuses missing directories and clashing names."""
    from pathlib import Path

    from labelwise.errors import LabelwiseError
    from labelwise.serve.registry import is_model_dir

    paths: list[Path] = [Path(d) for d in dirs]
    if models_dir is not None:
        root = Path(models_dir)
        if not root.is_dir():
            raise LabelwiseError(f"--models-dir {models_dir}: no such directory")
        found = sorted(p for p in root.iterdir() if not p.name.startswith(".") and is_model_dir(p))
        if not found:
            raise LabelwiseError(f"--models-dir {models_dir}: holds no model or pipeline "
                                 "directory")
        paths += found
    if not paths:
        raise LabelwiseError("give MODEL_DIR... or --models-dir DIR")
    out: dict[str, str] = {}
    for p in paths:
        if not is_model_dir(p):
            raise LabelwiseError(f"{p}: not a labelwise model or pipeline directory")
        name = p.resolve().name
        if name in out:
            raise LabelwiseError(f"two models named {name!r}: {out[name]} and {p} (a model is "
                                 "served under its directory's name)")
        out[name] = str(p.resolve())
    return out


def run(args: argparse.Namespace) -> int:
    import os
    import shutil
    import sys
    import tempfile

    from labelwise.errors import LabelwiseError
    from labelwise.serve import require
    from labelwise.serve.settings import BATCH_WAIT_MS, ServeSettings, parse_size

    require()
    if args.workers < 1:
        raise LabelwiseError(f"--workers must be >= 1, got {args.workers}")
    if not 0 <= args.port <= 65535:
        raise LabelwiseError(f"--port must be in 0..65535, got {args.port}")
    models = model_paths(args.model_dirs, args.models_dir)
    settings = ServeSettings(
        models=models,
        token_file=None if args.token_file is None else os.path.abspath(args.token_file),
        allow_learn=tuple(args.allow_learn), max_items=args.max_items,
        max_body=parse_size(args.max_body),
        batch_wait_ms=BATCH_WAIT_MS if args.batch_wait_ms is None else args.batch_wait_ms,
        max_batch=args.max_batch, state_dir=None, batching=not args.no_batching,
        extra=_review_extra(args, models))
    settings.read_token()  # a missing or empty token file fails here, not in a worker
    import uvicorn

    own_dirs = []
    if args.workers > 1:
        import dataclasses

        # the workers tell each other about reloads here (labelwise.serve.registry)
        state = tempfile.mkdtemp(prefix="labelwise-serve-")
        own_dirs.append(state)
        settings = dataclasses.replace(settings, state_dir=state)
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            own_dirs.append(tempfile.mkdtemp(prefix="labelwise-metrics-"))
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = own_dirs[-1]
    os.environ["LABELWISE_SERVE_SETTINGS"] = settings.to_json()
    names = ", ".join(settings.models)
    print(f"serving {names} on http://{args.host}:{args.port} ({args.workers} worker(s)); "
          "API docs at /docs", file=sys.stderr)
    try:
        if args.workers > 1 and args.workers_mode == "fork":
            from labelwise.serve.prefork import serve_prefork

            return serve_prefork(settings, host=args.host, port=args.port, workers=args.workers,
                                 log_level=args.log_level, access_log=args.access_log)
        uvicorn.run("labelwise.serve.app:create_app_from_env", factory=True, host=args.host,
                    port=args.port, workers=args.workers, log_level=args.log_level,
                    access_log=args.access_log, timeout_graceful_shutdown=10)
    finally:
        for d in own_dirs:
            shutil.rmtree(d, ignore_errors=True)
    return 0


def _review_extra(args, models: dict[str, str]) -> dict[str, str]:
    """--review-db URL and --review-train NAME=DATA as the settings' extra entries."""
    import os

    from labelwise.errors import LabelwiseError

    extra = {} if args.review_db is None else {"review_db": args.review_db}
    for spec in args.review_train:
        name, sep, data = spec.partition("=")
        if not sep or not name or not data:
            raise LabelwiseError(f"--review-train: expected NAME=DATA, got {spec!r}")
        if name not in models:
            raise LabelwiseError(f"--review-train {spec}: no served model named {name!r} "
                                 f"(served: {', '.join(models)})")
        if not os.path.exists(data):
            raise LabelwiseError(f"--review-train {spec}: no file or folder {data}")
        extra[f"review_train:{name}"] = os.path.abspath(data)
    return extra
