"""napkinXC PLT runner (``.venv-peers-napkinxc``); protocol in ``_common.py``.

``napkinxc.models.PLT(model_dir, threads=N)`` with every other setting at its default
(hierarchical balanced 2-means tree, max 100 leaves per node, logistic loss via liblinear,
C=10, weight threshold 0.1, beam/exact search). ``predict_proba(X, top_k=k)``.
"""

from importlib.metadata import version

from _common import Clock, parse_args, read_xc, topk_rows, write_result
from napkinxc.models import PLT

args = parse_args()
clock = Clock()
with clock("load"):
    X, Y = read_xc(args.train, labels_as="list")
    Xt, _ = read_xc(args.test, labels_as="list")
model = PLT(f"{args.workdir}/napkinxc-model", threads=args.threads)
with clock("train"):
    model.fit(X, Y)
with clock("predict"):
    rows = model.predict_proba(Xt, top_k=args.k)
labels, scores = topk_rows(rows, args.k)
params = {"threads": args.threads, "note": "PLT defaults"}
write_result(args.out, labels, scores, clock, params, version("napkinxc"))
