"""``labelwise review init|ingest|status|export|learn``: the review loop on a database.

- ``init --db URL``: create the schema (or migrate an older one) in a SQLite file or a
  PostgreSQL database (``postgresql://user@host:port/db``).
- ``ingest MODEL DATA --db URL --precision P [--audit-rate 0.02]``: predict DATA; labels the
  model's certified precision target accepts are auto-accepted, a random share of those items
  (the audit rate) goes to people as audits, items without a certified label are queued.
  MODEL must be tuned with ``--objective precision=P'`` (P' >= P).
- ``status --db URL [--json]``: items queued / auto-accepted / reviewed; per label the
  audited precision with its 95 % interval, paused when the interval lies below the target.
- ``export --db URL --out FILE``: JSONL of the decided items: ``id``, ``labels``, ``decided``
  (label -> "auto" or the reviewer).
- ``learn MODEL --db URL [--train DATA] [--include-auto]``: reviewed items feed ``learn``
  (zero-/few-shot labels and added labels); with ``--train DATA`` the pipeline is retrained
  on DATA plus the reviewed rows (supervised labels) and retuned with its own objective.
  ``--include-auto`` adds the auto-accepted items as pseudo-labels. Saved atomically.
"""

from __future__ import annotations

import argparse
import json
import sys

from ._common import add_format_argument, check_output_dir, load_dataset

HELP = "review loop: auto-accept certified labels, queue the rest for people (database)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="review_command", metavar="ACTION", required=True)

    def db(q):
        q.add_argument("--db", required=True, metavar="URL",
                       help="database: a SQLite file path or sqlite:///..., or "
                            "postgresql://user@host:port/db")

    q = sub.add_parser("init", help="create (or migrate) the review database")
    db(q)
    q = sub.add_parser("ingest", help="predict DATA and store items, predictions and decisions")
    q.add_argument("model", metavar="MODEL", help="pipeline tuned with --objective precision=P")
    q.add_argument("data", metavar="DATA", help="items (file, folder or registry name[:split])")
    db(q)
    q.add_argument("--precision", type=float, required=True, help="precision target")
    q.add_argument("--audit-rate", type=float, default=0.02,
                   help="share of auto-accepted items also sent to people (default 0.02)")
    q.add_argument("--top-k", type=int, default=5, help="candidates stored per item")
    q.add_argument("--seed", type=int, default=0, help="random state of the audit draw")
    add_format_argument(q)
    q = sub.add_parser("status", help="queue and audit figures")
    db(q)
    q.add_argument("--json", action="store_true", help="JSON instead of a table")
    q = sub.add_parser("export", help="decided items as JSONL")
    db(q)
    q.add_argument("--out", required=True, metavar="FILE", help="output JSONL (atomic)")
    q = sub.add_parser("learn", help="feed reviewed items back into the pipeline")
    q.add_argument("model", metavar="MODEL", help="text pipeline directory (rewritten)")
    db(q)
    q.add_argument("--train", metavar="DATA", help="training data: retrain on it plus the "
                                                   "reviewed rows (supervised labels)")
    q.add_argument("--include-auto", action="store_true",
                   help="also feed the auto-accepted labels back as pseudo-labels")
    add_format_argument(q)


def _open(args, *, create=False):
    from labelwise.review import open_db

    db = open_db(args.db, create=create)
    if db.migrated and db.migrated[0] is not None:
        print(f"note: {db.url}: schema migrated from {db.migrated[0]} to {db.migrated[1]}")
    return db


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def run(args: argparse.Namespace) -> int:
    return {"init": _init, "ingest": _ingest, "status": _status, "export": _export,
            "learn": _learn}[args.review_command](args)


def _init(args) -> int:
    from labelwise.review.db import head_revision

    with _open(args, create=True) as db:
        print(f"{db.url}: review schema {head_revision()}"
              + (" (created)" if db.migrated and db.migrated[0] is None else ""))
    return 0


def _ingest(args) -> int:
    from pathlib import Path

    from labelwise.pipeline import load_any
    from labelwise.review import loop

    pipe = load_any(args.model)
    data = load_dataset(args.data, args.format, args.option)
    with _open(args) as db:
        c = loop.ingest(db, pipe, args.model, data, precision=args.precision,
                        audit_rate=args.audit_rate, k=args.top_k, source=Path(args.data).name,
                        random_state=args.seed)
    print(f"ingested {c['items']} items: {c['auto']} auto-accepted, {c['audit']} audits, "
          f"{c['queued']} queued (certified threshold {c['threshold']:.4g})"
          + (f"; paused labels: {', '.join(c['paused'])}" if c["paused"] else ""))
    return 0


def _status(args) -> int:
    from labelwise.review import loop

    with _open(args) as db:
        st = loop.status(db)
    if args.json:
        print(json.dumps(st, indent=2))
        return 0
    a = st["audited_precision"]
    print(f"target {st['target']}: {st['items']} items, {st['auto_accepted']} auto-accepted, "
          f"{st['queued']} queued ({st['awaiting_audit']} audits), {st['reviewed']} reviewed; "
          + ("audited precision -" if a is None else
             f"audited precision {_pct(a['precision'])} [{_pct(a['interval'][0])}, "
             f"{_pct(a['interval'][1])}] of {a['audited']}"))
    print(f"{'label':<24}{'auto':>8}{'queued':>8}{'reviewed':>9}{'audited':>8}  precision [95% CI]")
    for r in st["labels"]:
        ci = ("" if r["interval"] is None else
              f" [{_pct(r['interval'][0])}, {_pct(r['interval'][1])}]")
        print(f"{r['label'][:23]:<24}{r['auto_accepted']:>8}{r['queued']:>8}{r['reviewed']:>9}"
              f"{r['audited']:>8}  {_pct(r['audited_precision'])}{ci}"
              + ("  PAUSED" if r["paused"] else ""))
    return 0


def _export(args) -> int:
    from labelwise.review import loop

    with _open(args) as db:
        n = loop.export(db, args.out)
    print(f"exported {n} decided items to {args.out}")
    return 0


def _learn(args) -> int:
    from labelwise.review.learn import learn_model

    check_output_dir(args.model, args.train, what="MODEL")
    train = None
    if args.train:
        train = load_dataset(args.train, args.format, args.option)
    with _open(args) as db:
        out = learn_model(db, args.model, train=train, include_auto=args.include_auto)
    for message in out["warnings"]:
        print(f"warning: {message}", file=sys.stderr)
    what = (f"retrained on {args.train} + {out['rows']} reviewed rows" if args.train
            else f"learned from {out['rows']} reviewed rows")
    if out["labels_added"]:
        what += f" (labels added: {', '.join(out['labels_added'])})"
    print(f"{what}; saved to {args.model} (serve picks it up on reload; those reviews can no "
          "longer be undone)")
    return 0
