"""PECOS XR-Linear runner (``.venv-peers-pecos``, numpy<2); protocol in ``_common.py``.

As PECOS's README and its ``pecos.xmc.xlinear.train`` command do by default: PIFA label
embeddings (``LabelEmbeddingFactory.create(Y, X, method="pifa")``), the default hierarchical
k-means cluster chain (``Indexer.gen``), then ``XLinearModel.train`` with its defaults; all
of it counts in ``train_s``. Features as given (tf-idf / binary). Prediction:
``predict(X, only_topk=k)`` with the default beam size.
"""

from importlib.metadata import version

from _common import Clock, parse_args, read_xc, topk_csr, write_result
from pecos.xmc import Indexer, LabelEmbeddingFactory
from pecos.xmc.xlinear.model import XLinearModel

args = parse_args()
clock = Clock()
with clock("load"):
    X, Y = read_xc(args.train)
    Xt, _ = read_xc(args.test)
with clock("train"):
    label_feat = LabelEmbeddingFactory.create(Y, X, method="pifa")
    chain = Indexer.gen(label_feat, threads=args.threads)
    model = XLinearModel.train(X, Y, C=chain, threads=args.threads)
with clock("predict"):
    P = model.predict(Xt, only_topk=args.k, threads=args.threads)
labels, scores = topk_csr(P, args.k)
params = {"threads": args.threads, "note": "pifa + Indexer.gen defaults + XLinearModel.train defaults"}
write_result(args.out, labels, scores, clock, params, version("libpecos"))
