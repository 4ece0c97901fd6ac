"""Writes tests/data/store_v1 with labelwise b84a00d (the formats before labelwise.store).

Run with that version's sources on PYTHONPATH::

    git archive b84a00d src | tar -x -C /tmp/old
    PYTHONPATH=/tmp/old/src python tests/data/make_store_v1.py tests/data/store_v1
"""

import sys
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from labelwise.features import Tfidf
from labelwise.models import LabelTree, OneVsRest
from labelwise.pipeline import Pipeline

out = Path(sys.argv[1])
texts = ["red apple pie", "green apple tart", "red cherry jam", "blue berry jam", "green pear tart",
         "red berry pie", "blue plum jam", "green apple jam", "red plum tart", "blue cherry pie",
         "red pear jam", "blue apple tart"]
Y = sp.csr_matrix(np.array([[("pie" in t), ("jam" in t), ("red" in t)] for t in texts],
                           dtype=np.float32))
labels = ["pie", "jam", "red"]
p = Pipeline(Tfidf(), OneVsRest(C=1.0)).fit(texts, Y, labels=labels)
p.tune(texts, Y, cv=2, k=3, objective="micro-f1")
p.save(out / "pipeline")
p.featurizer.save(out / "featurizer")
X = p.featurizer.transform(texts)
LabelTree().fit(X, Y, labels=labels).save(out / "tree")
np.save(out / "expected_pipeline_proba.npy", p.predict_proba(texts, k=3).toarray())
(out / "texts.txt").write_text("\n".join(texts) + "\n")
