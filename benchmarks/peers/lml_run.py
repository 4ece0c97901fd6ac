"""LibMultiLabel linear tree runner (``.venv-peers-lml``); protocol in ``_common.py``.

``libmultilabel.linear.train_tree(y, x, options="-m N")``: defaults (K=100, dmax=10,
liblinear's default solver and C) with liblinear-multicore's thread count set to N.
Prediction: ``TreeModel.predict_values(x)`` (beam width 10) returns dense
(rows x labels) scores, so test rows go in blocks of about 2e7 / n_labels rows; the top-k
of each block is kept.
"""

import os
import sys
from importlib.metadata import version

import numpy as np
from _common import Clock, parse_args, read_xc, topk_dense, write_result
from libmultilabel import linear

args = parse_args()
clock = Clock()
with clock("load"):
    X, Y = read_xc(args.train)
    Xt, _ = read_xc(args.test)
Y = Y.astype(np.float64).tocsr()
X = X.astype(np.float64).tocsr()
Xt = Xt.astype(np.float64).tocsr()
options = f"-m {args.threads}"
with clock("train"):
    stdout = sys.stdout
    sys.stdout = sys.stderr  # the tree prints progress and memory estimates
    try:
        model = linear.train_tree(Y, X, options=options, verbose=False)
    finally:
        sys.stdout = stdout
with clock("predict"):
    block = max(1, min(4096, int(2e7 / Y.shape[1])))
    parts = [topk_dense(np.asarray(model.predict_values(Xt[a:a + block])), args.k)
             for a in range(0, Xt.shape[0], block)]
labels = np.vstack([p[0] for p in parts])
scores = np.vstack([p[1] for p in parts])
params = {"options": options, "K": 100, "dmax": 10, "block_rows": block,
          "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")}
write_result(args.out, labels, scores, clock, params, version("libmultilabel"))
