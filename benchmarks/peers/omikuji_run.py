"""omikuji runner (``.venv-peers-omikuji``); protocol in ``_common.py``.

Variants, as omikuji's README documents them:
- ``parabel``: ``default_hyper_param()`` unchanged (3 trees, balanced 2-means, max depth
  20, min branch size 100, hinge loss, C=1, weight threshold 0.1).
- ``bonsai``: the same with regular (unbalanced) k-means, ``cluster.k=100``, ``max_depth=3``.

Training reads the XC file itself (omikuji's own reader; that time counts in ``train_s``,
so ``load_s`` is only the test file). As ``omikuji test`` does by default
(``--max_sparse_density 0.1``), weight vectors denser than 10% are made dense before
prediction (``densify_weights(0.1)``, counted in ``train_s``). Prediction: ``Model.predict(pairs, beam_size=10,
top_k=k)`` per row (the README's defaults), rows split over ``--threads`` Python threads
(the cffi call releases the GIL).
"""

from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version

import omikuji
from _common import Clock, parse_args, read_xc, topk_rows, write_result

args = parse_args(("parabel", "bonsai"))
clock = Clock()
hp = omikuji.Model.default_hyper_param()
if args.variant == "bonsai":
    hp.cluster_balanced = False
    hp.cluster_k = 100
    hp.max_depth = 3
params = {k: getattr(hp, k) for k in dir(hp)}
with clock("load"):
    Xt, _ = read_xc(args.test, labels_as="list")
with clock("train"):
    model = omikuji.Model.train_on_data(args.train, hp, n_threads=args.threads)
    model.densify_weights(0.1)  # what `omikuji test` does by default (--max_sparse_density)
pairs = [list(zip(Xt.indices[Xt.indptr[i]:Xt.indptr[i + 1]].tolist(),
                  Xt.data[Xt.indptr[i]:Xt.indptr[i + 1]].tolist())) for i in range(Xt.shape[0])]
with clock("predict"):
    step = (len(pairs) + args.threads - 1) // args.threads

    def work(a):
        return [model.predict(p, top_k=args.k) for p in pairs[a:a + step]]

    with ThreadPoolExecutor(args.threads) as pool:
        rows = [r for part in pool.map(work, range(0, len(pairs), step)) for r in part]
labels, scores = topk_rows(rows, args.k)
write_result(args.out, labels, scores, clock, params, version("omikuji"))
