"""``labelwise train``: fit a pipeline (featurizer + model) on a training set and save it.

Text data (a table with a text column: csv/tsv/jsonl/parquet, fastText lines, Reuters)
gets a featurizer; numeric data (XC, LIBSVM, ARFF, feature tables) goes to the model as it
is. The result is a pipeline directory (:mod:`labelwise.pipeline_store`) that
``labelwise tune`` extends with calibration and a decision policy, and that ``predict`` and
``evaluate`` read.

Model families (``--model``) and what they take:

================  ====================================================  ========================
model             class                                                 features (text data)
================  ====================================================  ========================
ovr               :class:`~labelwise.models.ovr.OneVsRest`              tfidf (default),
tree              :class:`~labelwise.models.tree.LabelTree`             embeddings, both
mlp               :class:`~labelwise.models.neural.MLPHead`             embeddings (default),
                                                                        tfidf, both
finetune          :class:`~labelwise.models.neural.FineTuned`           none: they fine-tune
fewshot-finetune  :class:`~labelwise.models.neural.FineTunedFewShot`    the encoder on the texts
attention         :class:`~labelwise.models.neural.LabelAttention`      none: token states of
                                                                        the frozen encoder
zeroshot          :class:`~labelwise.models.zeroshot.ZeroShot`          embeddings only (label
fewshot           :class:`~labelwise.models.fewshot.FewShot`            names live in the
                                                                        encoder's space)
chain             :class:`~labelwise.models.chains.ClassifierChain`     tfidf (default),
powerset          :class:`~labelwise.models.powerset.LabelPowerset`     embeddings, both
rakel             :class:`~labelwise.models.powerset.RAkEL`
mlknn             :class:`~labelwise.models.mlknn.MLkNN`
forest            :class:`~labelwise.models.forest.LabelForest`
clr               :class:`~labelwise.models.CalibratedLabelRanking`
plst              :class:`~labelwise.models.embedding.LabelEmbedding`
codes             :class:`~labelwise.models.codes.OutputCodes`
================  ====================================================  ========================

Numeric data fits ovr, tree, mlp (MLPHead takes sparse or dense features; sparse rows are
densified a mini-batch at a time) and the label-dependence families (chain, powerset, rakel, mlknn, forest, clr,
plst, codes); the others need
texts. For a handful of examples per
label, fewshot is instant and fewshot-finetune (minutes on a CPU) is the more accurate.

``--embedding-model DIR`` is the sentence encoder of the embeddings featurizer, of
fine-tuning and of the zero-/few-shot label vectors (default: the shipped all-MiniLM-L6-v2).
For zeroshot and fewshot the pipeline's embeddings featurizer is built from the model's own
encoder settings (``--set batch_size=``, ``max_seq_length=``, ``cache=``), so texts and
label names are embedded alike.

zeroshot: the label space is the data's labels; the data's rows fit only the probability
mapping (temperature and bias, :meth:`~labelwise.models.zeroshot.ZeroShot.fit_calibration`).
``--labels-file FILE`` gives the label space instead, one label per line, ``name`` or
``name<TAB>description`` (blank lines skipped; descriptions join the label texts): then TRAIN
may be left out (no training rows at all, the default mapping), or its labels must all be in
the file (its columns are mapped onto the file's labels by name). fewshot takes
``--labels-file`` too (labels of the file without examples are scored zero-shot), but needs
TRAIN; so does fewshot-finetune (such labels start from their names and learn from the other
labels' examples as negatives).

``--model auto`` chooses the family and its settings (:mod:`labelwise.auto`): candidates
from a table of rules on the data's size (rows, labels, features, density, distinct label
sets), compared by iterative-stratified cross-validation on the training rows for
``--objective`` (micro-f1, macro-f1, samples-f1, map, p@1; thresholds tuned inside the folds),
within ``--budget`` (``90s``, ``10m``, ``1h``: the whole command, reading and saving included);
the leaderboard is printed and saved in the pipeline's ``pipeline.json`` (``tuning.auto``),
and the winner is fitted on all training rows, calibrated and thresholded as ``tune`` would.

``--set KEY=VALUE`` sets any parameter of the model class (the value read as JSON, or as
Python's ``None``, ``True``, ``False``, else as text); ``--threads`` sets the model's
``n_threads`` where it has one and torch's thread count while training (sentence encoding,
neural heads); ``--seed`` is the model's ``random_state`` where it has one and the
pipeline's.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from typing import Any

from ..checks import MISSING_RULES
from ._common import (
    add_column_arguments,
    add_format_argument,
    column_options,
    load_dataset,
    parse_options,
)

HELP = ("train a pipeline (ovr, tree, mlp, finetune, fewshot-finetune, zeroshot, fewshot, "
        "attention, ...: see 'labelwise train --help') and save it")

#: CLI model name -> (module, class)
MODELS = {
    "ovr": ("labelwise.models.ovr", "OneVsRest"),
    "tree": ("labelwise.models.tree", "LabelTree"),
    "mlp": ("labelwise.models.neural.mlp", "MLPHead"),
    "finetune": ("labelwise.models.neural.finetune", "FineTuned"),
    "fewshot-finetune": ("labelwise.models.neural.fewshot_tuned", "FineTunedFewShot"),
    "attention": ("labelwise.models.neural.attention", "LabelAttention"),
    "zeroshot": ("labelwise.models.zeroshot", "ZeroShot"),
    "fewshot": ("labelwise.models.fewshot", "FewShot"),
    "chain": ("labelwise.models.chains", "ClassifierChain"),
    "powerset": ("labelwise.models.powerset", "LabelPowerset"),
    "rakel": ("labelwise.models.powerset", "RAkEL"),
    "mlknn": ("labelwise.models.mlknn", "MLkNN"),
    "forest": ("labelwise.models.forest", "LabelForest"),
    "clr": ("labelwise.models.pairwise", "CalibratedLabelRanking"),
    "plst": ("labelwise.models.embedding", "LabelEmbedding"),
    "codes": ("labelwise.models.codes", "OutputCodes"),
}

#: --features choices
FEATURES = ("tfidf", "embeddings", "tfidf+embeddings")

#: --features on text data when none is given (None: the model reads the texts itself)
DEFAULT_FEATURES: dict[str, str | None] = {
    "ovr": "tfidf", "tree": "tfidf", "mlp": "embeddings", "finetune": None,
    "fewshot-finetune": None, "zeroshot": "embeddings", "fewshot": "embeddings",
    "chain": "tfidf", "powerset": "tfidf", "rakel": "tfidf",
    "mlknn": "tfidf", "forest": "tfidf", "clr": "tfidf", "plst": "tfidf", "codes": "tfidf",
    "attention": None}

#: models that fine-tune the encoder on the raw texts (no featurizer)
ENCODER_MODELS = ("finetune", "fewshot-finetune")

#: models that read the token states of the frozen encoder (no featurizer)
TOKEN_MODELS = ("attention",)

#: models that need texts (refused on numeric data)
TEXT_MODELS = (*ENCODER_MODELS, *TOKEN_MODELS, "zeroshot", "fewshot")

#: models whose label vectors come from the encoder (embeddings features only)
SHOT_MODELS = ("zeroshot", "fewshot")

#: models that take --labels-file (label names are part of the model)
LABEL_NAME_MODELS = (*SHOT_MODELS, "fewshot-finetune")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("train", metavar="TRAIN", nargs="?",
                   help="training data (file, folder or registry name[:split]); optional only "
                        "for --model zeroshot with --labels-file")
    p.add_argument("--model", choices=[*MODELS, "auto"], default="tree",
                   help="model family (default: tree): ovr, tree (linear, on features); mlp "
                        "(neural head, on embeddings by default); finetune (fine-tunes the "
                        "sentence encoder on the texts); zeroshot, fewshot (label-name and "
                        "example embeddings); fewshot-finetune (fewshot's prototypes, then the "
                        "encoder fine-tuned on the few examples); chain, powerset, rakel, "
                        "mlknn, forest, clr, plst, codes (label dependence, small label sets); "
                        "attention (label queries attending over the encoder's token states); "
                        "auto (chosen by cross-validation within --budget)")
    p.add_argument("--budget", default="10m", metavar="DURATION",
                   help="--model auto: time for the whole command, e.g. 90s, 10m, 1h (default 10m)")
    p.add_argument("--objective", choices=("micro-f1", "macro-f1", "samples-f1", "map", "p@1"),
                   default="micro-f1", help="--model auto: what the candidates are compared on "
                                            "(default micro-f1)")
    p.add_argument("--cv", type=int, default=3,
                   help="--model auto: cross-validation folds (default 3)")
    p.add_argument("--features", choices=FEATURES,
                   help="featurizer for text data (default: tfidf for ovr/tree, embeddings for "
                        "mlp/zeroshot/fewshot; none for finetune and fewshot-finetune); not for "
                        "numeric data")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="model parameter, repeatable (e.g. --set C=2 --set loss=logistic "
                        "--set normalize=None); values are JSON or None/True/False")
    p.add_argument("--feature-set", action="append", default=[], metavar="KEY=VALUE",
                   help="featurizer parameter, repeatable: tf-idf's (e.g. --feature-set min_df=2 "
                        "--feature-set 'ngram_range=[1,2]') or the embeddings' (batch_size, "
                        "max_seq_length, cache, cache_dir)")
    p.add_argument("--embedding-model", metavar="DIR",
                   help="sentence-transformers folder for embeddings, fine-tuning and zero-/few-"
                        "shot (default: the shipped all-MiniLM-L6-v2)")
    p.add_argument("--labels-file", metavar="FILE",
                   help="zeroshot/fewshot/fewshot-finetune: the label space, one 'name' or 'name<TAB>description' "
                        "per line")
    p.add_argument("--scale", choices=("auto", "standard", "maxabs", "none"), default="auto",
                   help="per-column scaling of numeric features, fitted on the training rows "
                        "(default auto: dense standardised, sparse max-abs scaled when its "
                        "column maxima spread over more than 100x, binary/tf-idf unchanged; "
                        "forests, which scaling leaves unchanged, take X as given)")
    p.add_argument("--missing", choices=MISSING_RULES, default="median",
                   help="missing values (NaN, ARFF's '?') in numeric features: fill each with "
                        "its column's median (default) or mean over the training rows (saved "
                        "with the model, applied to every later input too), or refuse them")
    p.add_argument("--threads", type=int,
                   help="worker threads (model threads and torch threads; default: all CPUs)")
    p.add_argument("--seed", type=int, default=0, help="random_state (default 0)")
    p.add_argument("--out", required=True, metavar="MODEL",
                   help="pipeline directory to write (atomically): a new or empty folder, or an "
                        "earlier model, which it replaces; any other folder is refused")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--dask", metavar="CLUSTER",
                   help="train on Dask: local:N (N worker processes here) or a scheduler address "
                        "tcp://HOST:8786; the model is the same as a local run's (--model ovr, tree). "
                        "A folder or glob TRAIN of .parquet / XC / LIBSVM files (or --byte-ranges) "
                        "is read as partitions on the workers and X is never gathered")
    p.add_argument("--byte-ranges", type=int, metavar="N",
                   help="with --dask: cut each XC/LIBSVM file into N byte ranges of whole lines, "
                        "one partition each")
    p.add_argument("--worker-memory", metavar="SIZE",
                   help="with --dask on partitions: the per-worker memory the estimated peak is "
                        "checked against (e.g. 4GiB; default: each worker's Dask memory limit)")
    add_column_arguments(p)
    add_format_argument(p)


def _instance(cls, params: dict, what: str, *, exclude: tuple[str, ...] = ()):
    from labelwise.errors import LabelwiseError

    valid = set(cls().get_params()) - set(exclude)
    unknown = sorted(set(params) - valid)
    if unknown:
        raise LabelwiseError(
            f"unknown parameter(s) {', '.join(unknown)} for {what}; valid: {', '.join(sorted(valid))}"
        )
    try:
        return cls(**params)
    except (TypeError, ValueError) as e:
        raise LabelwiseError(f"{what}: {e}") from None


def model_class(name: str):
    import importlib

    from labelwise.errors import LabelwiseError

    module, cls_name = MODELS[name]
    try:
        return getattr(importlib.import_module(module), cls_name)
    except (ImportError, AttributeError):
        raise LabelwiseError(f"model {name!r} is not available in this version of labelwise") from None


def make_model(name: str, sets: list[str], threads: int | None, seed: int,
               embedding_model: str | None = None):
    """The model of ``--model name`` with its --set parameters, threads, seed and encoder."""
    from labelwise.errors import LabelwiseError

    cls = model_class(name)
    params = parse_options(sets)
    valid = cls().get_params()
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise LabelwiseError(
            f"unknown parameter(s) {', '.join(unknown)} for --model {name}; valid: {', '.join(sorted(valid))}"
        )
    if "encoder" in params:
        raise LabelwiseError("--set encoder: give the encoder folder with --embedding-model DIR")
    if threads is not None:
        if threads < 1:
            raise LabelwiseError(f"--threads {threads}: expected a positive number")
        if "n_threads" in valid:
            params["n_threads"] = threads
    if "random_state" in valid:
        params.setdefault("random_state", seed)
    if "encoder" in valid and embedding_model is not None:
        params["encoder"] = embedding_model
    try:
        return cls(**params)
    except (TypeError, ValueError) as e:
        raise LabelwiseError(f"--set: {e}") from None


def make_featurizer(name: str, feature_sets: list[str], embedding_model: str | None):
    """The featurizer of a --features choice; each --feature-set key goes to the featurizer
    that has it (tf-idf or embeddings)."""
    from labelwise.errors import LabelwiseError
    from labelwise.features import Fusion, SentenceEmbeddings, Tfidf

    params = parse_options(feature_sets)
    for key in ("ngram_range", "char_ngram_range"):
        if isinstance(params.get(key), list):
            params[key] = tuple(params[key])
    tf_keys = set(Tfidf().get_params()) if "tfidf" in name else set()
    emb_keys = set(SentenceEmbeddings().get_params()) - {"model", "progress"} \
        if "embeddings" in name else set()
    unknown = sorted(set(params) - tf_keys - emb_keys)
    if unknown:
        raise LabelwiseError(f"unknown parameter(s) {', '.join(unknown)} for --feature-set with "
                             f"--features {name}; valid: {', '.join(sorted(tf_keys | emb_keys))}")
    tfidf = emb = None
    if tf_keys:
        tfidf = _instance(Tfidf, {k: v for k, v in params.items() if k in tf_keys},
                          "--feature-set")
    if emb_keys:
        emb = _instance(SentenceEmbeddings, {
            "model": embedding_model,
            **{k: v for k, v in params.items() if k in emb_keys}}, "--feature-set")
    if tfidf is not None and emb is not None:
        return Fusion([("tfidf", tfidf), ("embeddings", emb)])
    return tfidf if tfidf is not None else emb


def shot_featurizer(model: Any):
    """The embeddings featurizer of a zero-/few-shot model: its own encoder settings."""
    from labelwise.features import SentenceEmbeddings

    return SentenceEmbeddings(model=model.encoder, batch_size=model.batch_size,
                              max_seq_length=model.max_seq_length, cache=model.cache,
                              progress=model.progress)


def read_labels_file(path: str):
    """A LabelSpace from a file of ``name`` or ``name<TAB>description`` lines."""
    from labelwise.errors import DataFormatError, LabelError
    from labelwise.labels import LabelSpace

    names: list[str] = []
    descriptions: list[str | None] = []
    seen: dict[str, int] = {}
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except UnicodeDecodeError as e:
        raise DataFormatError(f"not UTF-8 text ({e.reason})", path=path) from None
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        name, tab, description = line.partition("\t")
        name = name.strip()
        if not name:
            raise DataFormatError("empty label name", path=path, line=i, field="name")
        if "\t" in description:
            raise DataFormatError("expected 'name' or 'name<TAB>description' (one tab at most)",
                                  path=path, line=i)
        if name in seen:
            raise DataFormatError(f"label {name!r} was already given on line {seen[name]}",
                                  path=path, line=i, field="name")
        seen[name] = i
        names.append(name)
        descriptions.append((description.strip() or None) if tab else None)
    if not names:
        raise DataFormatError("no label names", path=path)
    try:
        return LabelSpace(names, descriptions=descriptions if any(descriptions) else None)
    except LabelError as e:
        raise DataFormatError(str(e), path=path) from None


def onto_labels(data: Any, space: Any, where: str):
    """``data`` with its label columns mapped by name onto the label space ``space``."""
    import numpy as np
    import scipy.sparse as sp

    from labelwise.dataset import Dataset
    from labelwise.errors import DataFormatError

    missing = [n for n in data.labels.names if n not in space]
    if missing:
        shown = ", ".join(map(repr, missing[:10])) + (", ..." if len(missing) > 10 else "")
        raise DataFormatError(f"{len(missing)} label(s) of the data are not in --labels-file "
                              f"{where}: {shown}", path=where)
    cols = space.indices(data.labels.names).astype(np.int64)
    Y = data.Y.tocsr()
    Y = sp.csr_matrix((Y.data, cols[Y.indices], Y.indptr), shape=(Y.shape[0], len(space)))
    Y.sort_indices()
    return Dataset(data.X, Y, space, groups=data.groups, ids=data.ids, meta=data.meta)


@contextlib.contextmanager
def torch_threads(threads: int | None, needed: bool) -> Iterator[None]:
    """torch's thread count set to ``threads`` for the block (restored after), when torch
    does the work (sentence encoding, neural models) and --threads was given."""
    if threads is None or not needed:
        yield
        return
    from labelwise.models.neural._torch import import_torch

    torch = import_torch("sentence encoding and the neural models")
    before = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _check_options(args: argparse.Namespace) -> str | None:
    """The --features choice in effect on text data; refuses impossible combinations."""
    from labelwise.errors import LabelwiseError

    name = args.model
    if args.labels_file is not None and name not in LABEL_NAME_MODELS:
        raise LabelwiseError(f"--labels-file: only for --model {', '.join(LABEL_NAME_MODELS)}, "
                             f"not {name}")
    if args.train is None:
        if not (name == "zeroshot" and args.labels_file is not None):
            raise LabelwiseError("TRAIN is required (only --model zeroshot --labels-file FILE "
                                 "trains without data)")
        if column_options(args) or args.format or args.option:
            raise LabelwiseError("--text-column/--labels-column/--format/--option: no TRAIN "
                                 "data to read")
    if name in ENCODER_MODELS:
        if args.features or args.feature_set:
            raise LabelwiseError(f"--features/--feature-set: --model {name} trains the sentence "
                                 "encoder on the raw texts and takes no featurizer (choose the "
                                 "encoder with --embedding-model DIR, its settings with --set)")
        return None
    if name in TOKEN_MODELS:
        if args.features or args.feature_set:
            raise LabelwiseError(f"--features/--feature-set: --model {name} reads the token "
                                 "states of the frozen sentence encoder from the raw texts and "
                                 "takes no featurizer (choose the encoder with --embedding-model "
                                 "DIR, its settings with --set)")
        return None
    if name in SHOT_MODELS:
        if args.features not in (None, "embeddings"):
            raise LabelwiseError(f"--features {args.features}: --model {name} compares texts "
                                 "with label-name embeddings in the encoder's space and needs "
                                 "--features embeddings (the default)")
        if args.feature_set:
            raise LabelwiseError(f"--feature-set: --model {name} embeds texts with its own "
                                 "encoder settings; set them with --set (batch_size, "
                                 "max_seq_length, cache)")
        return "embeddings"
    return args.features or DEFAULT_FEATURES[name]


def fit_pipeline(args: argparse.Namespace):
    """(fitted pipeline, training Dataset or None, seconds) for parsed ``train`` arguments."""
    import time

    from labelwise.errors import LabelwiseError
    from labelwise.pipeline import Pipeline
    from labelwise.progress import show_progress

    features = _check_options(args)
    model = make_model(args.model, args.set, args.threads, args.seed, args.embedding_model)
    if _partitioned(args):
        return _fit_partitions(args, model, features)
    space = None if args.labels_file is None else read_labels_file(args.labels_file)
    data = None
    if args.train is not None:
        data = load_dataset(args.train, args.format, args.option, column_options(args))
        if space is not None:
            data = onto_labels(data, space, args.labels_file)
    text = data is None or data.x_kind == "text"
    featurizer = None
    if text and args.model in SHOT_MODELS:
        featurizer = shot_featurizer(model)
    elif text and features is not None:
        featurizer = make_featurizer(features, args.feature_set, args.embedding_model)
    elif not text:
        if args.model in TEXT_MODELS:
            raise LabelwiseError(f"--model {args.model} needs texts; {args.train} holds numeric "
                                 f"features ({data.x_kind})")
        if args.features or args.feature_set or args.embedding_model:
            raise LabelwiseError(f"--features/--feature-set/--embedding-model: {args.train} holds "
                                 f"numeric features ({data.x_kind}), not texts")
    pipe = Pipeline(featurizer, model, random_state=args.seed,
                    scale=getattr(args, "scale", "auto"),
                    missing=getattr(args, "missing", "median"))
    uses_torch = args.model in ("mlp", *TEXT_MODELS) or "embeddings" in (features or "")
    start = time.perf_counter()
    with show_progress(not args.quiet), torch_threads(args.threads, uses_torch):
        try:
            if data is None:  # zero-shot from the label names alone
                featurizer.fit()
                model.fit(labels=space)
            elif getattr(args, "dask", None):
                from labelwise.distributed import connect, training_on

                with connect(args.dask) as client, training_on(model, client):
                    pipe.fit(data)
            else:
                pipe.fit(data)
        except ValueError as e:  # parameter validation of the estimator
            if isinstance(e, LabelwiseError):
                raise
            raise LabelwiseError(f"--set: {e}") from None
    return pipe, data, time.perf_counter() - start


def _partitioned(args: argparse.Namespace) -> bool:
    from labelwise.errors import LabelwiseError

    dask = getattr(args, "dask", None)
    ranges = getattr(args, "byte_ranges", None)
    if not dask:
        if ranges is not None or getattr(args, "worker_memory", None) is not None:
            raise LabelwiseError("--byte-ranges/--worker-memory: only with --dask")
        return False
    from labelwise.distributed.partitions import is_partitioned

    return args.train is not None and is_partitioned(args.train, ranges)


def _fit_partitions(args: argparse.Namespace, model: Any, features: str | None):
    """train DIR_OR_GLOB --dask ...: partitions read, featurised and trained on the workers."""
    import time

    from labelwise.distributed import connect
    from labelwise.distributed.partitions import fit_pipeline
    from labelwise.errors import LabelwiseError
    from labelwise.progress import show_progress

    if args.model not in ("ovr", "tree"):
        raise LabelwiseError(f"--dask on partitions trains --model ovr or tree, not {args.model}")
    if features not in (None, "tfidf") or args.scale not in ("auto", "none"):
        raise LabelwiseError("--dask on partitions: texts get tfidf features and numeric "
                             "features are used as given (no --features other than tfidf, no "
                             "--scale)")
    limit = None
    if args.worker_memory is not None:
        from dask.utils import parse_bytes

        try:
            limit = parse_bytes(args.worker_memory)
        except ValueError:
            raise LabelwiseError(f"--worker-memory {args.worker_memory}: expected a size such "
                                 "as 4GiB") from None
    featurizer = make_featurizer("tfidf", args.feature_set, None)
    opts = {**parse_options(args.option), **column_options(args)}
    start = time.perf_counter()
    with show_progress(not args.quiet), connect(args.dask) as client:
        try:
            pipe, parts = fit_pipeline(model, args.train, client=client, featurizer=featurizer,
                                byte_ranges=args.byte_ranges or 1, format=args.format,
                                options=opts, memory_limit=limit, random_state=args.seed)
        except ValueError as e:
            if isinstance(e, LabelwiseError):
                raise
            raise LabelwiseError(f"--set: {e}") from None
    return pipe, _Counted(parts), time.perf_counter() - start


class _Counted:
    """What ``run`` reports of partitioned training data (never loaded here)."""

    def __init__(self, parts: Any) -> None:
        self.n_samples = f"{parts.n_samples} partitioned"
        self.n_labels = len(parts.labels)


def run_auto(args: argparse.Namespace, started: float) -> int:
    """``--model auto``: AutoModel within what is left of the budget; prints the leaderboard."""
    import time

    from labelwise.auto import AutoModel, format_leaderboard, parse_budget
    from labelwise.errors import LabelwiseError
    from labelwise.progress import show_progress

    if args.set:
        raise LabelwiseError("--set: --model auto chooses the settings itself")
    if getattr(args, "dask", None):
        raise LabelwiseError("--dask: not for --model auto")
    if args.train is None:
        raise LabelwiseError("TRAIN is required for --model auto")
    budget = parse_budget(args.budget)
    data = load_dataset(args.train, args.format, args.option, column_options(args))
    featurizer = None
    if data.x_kind == "text":
        featurizer = make_featurizer(args.features or "tfidf", args.feature_set,
                                     args.embedding_model)
    elif args.features or args.feature_set or args.embedding_model:
        raise LabelwiseError(f"--features/--feature-set/--embedding-model: {args.train} holds "
                             f"numeric features ({data.x_kind}), not texts")
    save_reserve = 1.0 + 1e-8 * float(data.Y.shape[1]) * (
        data.X.shape[1] if hasattr(data.X, "shape") else 1)  # writing the model folder
    left = budget - (time.perf_counter() - started) - save_reserve
    if left <= 0:
        raise LabelwiseError(f"--budget {args.budget}: reading the data already took "
                             f"{time.perf_counter() - started:.1f} s")
    auto = AutoModel(budget=left, objective=args.objective, cv=args.cv, featurizer=featurizer,
                     scale=getattr(args, "scale", "auto"),
                     missing=getattr(args, "missing", "median"), n_threads=args.threads,
                     random_state=args.seed)
    with show_progress(not args.quiet):
        auto.fit(data)
    auto.save(args.out)
    print(format_leaderboard(auto.leaderboard_, args.objective))
    c = auto.chosen_
    print(f"chose {c['candidate']} ({args.objective} {c['mean_score']:.4f}, {args.cv}-fold "
          f"cross-validation) on {data.n_samples} rows, {data.n_labels} labels; "
          f"{time.perf_counter() - started:.1f} s of the --budget {budget:.0f} s; saved to "
          f"{args.out} (leaderboard in pipeline.json, tuning.auto)")
    return 0


def process_age() -> float:
    """Seconds since this process started, when the process is the labelwise command
    (``labelwise ...`` or ``python -m labelwise ...``; Linux /proc), so that the interpreter's
    start-up counts against ``--budget`` too; 0.0 otherwise (``main()`` called from a
    program, which started long before) or where unknown."""
    import os
    import sys
    from pathlib import Path

    program = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path()
    if program.name != "labelwise" and "labelwise" not in program.parts:
        return 0.0
    try:
        with open("/proc/self/stat", encoding="ascii") as f:
            start_ticks = float(f.read().rpartition(")")[2].split()[19])
        with open("/proc/uptime", encoding="ascii") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0


def run(args: argparse.Namespace) -> int:
    import time

    from ._common import check_output_dir

    started = time.perf_counter() - (process_age() if args.model == "auto" else 0.0)
    check_output_dir(args.out, args.train, args.labels_file, args.embedding_model)
    if args.model == "auto":
        return run_auto(args, started)
    pipe, data, seconds = fit_pipeline(args)
    pipe.save(args.out)
    feats = ""
    if pipe.featurizer is not None:
        feats = f" on {args.features or DEFAULT_FEATURES[args.model]} features"
    rows = (f"from {len(pipe.model.labels_)} label names (no training rows)" if data is None
            else f"on {data.n_samples} rows, {data.n_labels} labels")
    scaling = pipe._explain_scaling() if pipe.featurizer is None else None
    if scaling is not None and "reason" in scaling:
        feats = f" on numeric features, scaling none (--scale auto; {scaling['reason']})"
    elif scaling is not None:
        feats = (f" on {scaling['kind']} features, scaling {scaling['method_in_effect']} "
                 f"(--scale {scaling['method']}; column maxima spread {scaling['spread']:.3g})")
    missing = (scaling or {}).get("missing") or {}
    if missing.get("values"):
        feats += (f", {missing['values']} missing values filled with the column "
                  f"{scaling['missing_rule']}s (--missing)")
    print(f"trained {type(pipe.model).__name__}{feats} {rows} in {seconds:.2f} s; "
          f"saved to {args.out}")
    return 0
