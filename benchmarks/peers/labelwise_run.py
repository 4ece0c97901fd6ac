"""labelwise runner (the project's own ``.venv``); protocol in ``_common.py``.

Variants: ``ovr`` (``labelwise.models.OneVsRest``) and ``tree`` (``labelwise.models.LabelTree``
when it exists), each with its default settings and ``n_threads=--threads``; ``tree3`` is
LabelTree with ``n_trees=3``, the ensemble size of omikuji's Parabel and Bonsai defaults. Files are read
with ``labelwise.io.read_xc``. Before the timed fit, the same model class is fitted once on
the first 64 training rows and asked for top-k, so that numba's compilation (or its cache
load) is timed apart (``warmup_s``) rather than in ``train_s``.
"""

import warnings
from importlib.metadata import version

from _common import Clock, parse_args, topk_csr, write_result

import labelwise.models as M
from labelwise.io.xc import read_xc

args = parse_args(("ovr", "tree", "tree3"))
clock = Clock()
cls = {"ovr": "OneVsRest", "tree": "LabelTree", "tree3": "LabelTree"}[args.variant]
settings = {"n_trees": 3} if args.variant == "tree3" else {}
if not hasattr(M, cls):
    raise SystemExit(f"labelwise.models has no {cls} yet")
Model = getattr(M, cls)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    with clock("load"):
        tr = read_xc(args.train, index_base=0)
        te = read_xc(args.test, index_base=0)
    with clock("warmup"):
        Model(n_threads=args.threads).fit(tr.X[:64], tr.Y[:64]).decision_function(
            te.X[:8], k=args.k)
    model = Model(n_threads=args.threads, **settings)
    with clock("train"):
        model.fit(tr.X, tr.Y)
    with clock("predict"):
        S = model.decision_function(te.X, k=args.k)
labels, scores = topk_csr(S, args.k)
params = {k: (v if isinstance(v, int | float | str | bool | None) else repr(v))
          for k, v in model.get_params().items()}
write_result(args.out, labels, scores, clock, params, version("labelwise"))
