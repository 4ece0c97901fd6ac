"""``ZeroShot``: labels scored by the cosine similarity of text and label-text embeddings.

Each label gets one vector: the normalised mean of the sentence embeddings of its texts,
which are the label name put into each template (default ``"{label}"`` and
``"This text is about {label}."``; ``_`` and ``-`` in names read as spaces when
``humanize_names``) plus its description from the label space when it has one. Label texts
are embedded once, at ``fit``. An input (a text, or an embedding row from the same encoder)
is normalised and scored against every label::

    u_j               = unit(v_j - beta * mean_l v_l),  beta = L / (L + 8)   (center_labels)
    score(x, j)       = cos(x, u_j)                              (decision_function)
    probability(x, j) = sigmoid((score - bias) / temperature)    (predict_proba)

*Centering* (``center_labels=True``, the default) removes from every label vector what all
the label texts share (the template's wording, the encoder's common direction), so a score
measures how much more x resembles label j than labels in general. Measured with per-label
thresholds tuned without the test split: GoEmotions macro/micro-F1 0.169/0.327 -> 0.200/0.343;
Reuters R90 (cryptic names such as "acq") 0.360/0.457 -> 0.345/0.473. The mean of
``L`` labels is shrunk by ``beta = L / (L + 8)`` so that a label space of one or two labels
is not centred to nothing (beta = 1/9 for one label, 0.78 for 28, 0.92 for 90); the
``label_embeddings_`` kept (and saved) are the uncentred ``v_j`` (a zero vector stays zero and
takes no part in the mean), and the centring is
recomputed from all current labels whenever the model scores, so labels added later move
the mean. ``center_labels=False`` scores ``cos(x, v_j)``.

``temperature`` (0.05) and ``bias`` (0.22) default to a mapping read off all-MiniLM-L6-v2,
where a text's cosine with a fitting label name typically lies around 0.3-0.5 and with
others around 0.0-0.2, and centring lowers cosines by about 0.08 (GoEmotions dev: the 90th
percentile of negative pairs moves from 0.20 to 0.12); for ``center_labels=False`` a bias
of 0.3 fits better; they can be fitted with :meth:`ZeroShot.fit_calibration` from a
handful of labelled items: a two-parameter logistic regression of the labels on the cosines
(Newton's method). ``predict`` without a threshold keeps labels with probability above 0.5,
i.e. cosine above ``bias``. Fitted probabilities are honest rather than generous: on
GoEmotions (28 labels, ~1.2 positives per item) few pairs reach 0.5, so F1-oriented label
sets should come from thresholds tuned by the decision layer, not from 0.5.

Scale: scores are computed as row blocks ``E_b @ V.T`` of at most ``block_entries`` values,
and only each row's top k is kept (a CSR matrix), so 10K+ labels never need an
(n_samples, n_labels) array.

``X`` may be a list of texts (embedded with ``encoder``, through the embedding cache), a
:class:`~labelwise.Dataset` holding texts, or precomputed embeddings (n_samples, dim) from
the same encoder (rows are normalised here).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..dataset import Dataset, as_label_matrix
from ..errors import DataFormatError
from ..labels import LabelSpace
from .base import MultiLabelModel, _check_k, sigmoid
from .topk import topk_dense

__all__ = ["ZeroShot", "center_shift", "check_templates", "fit_sigmoid"]

DEFAULT_TEMPLATES = ("{label}", "This text is about {label}.")
CENTER_PRIOR = 8.0  # labels at which half of the label mean is subtracted


def center_shift(V: np.ndarray) -> np.ndarray:
    """(dim,) float64: ``beta * mean of V's non-zero rows``, ``beta = L / (L + CENTER_PRIOR)``
    with L the number of non-zero rows (a label without a vector takes no part)."""
    V = np.asarray(V, dtype=np.float64)
    live = np.any(V != 0, axis=1)
    L = int(live.sum())
    if L == 0:
        return np.zeros(V.shape[1], dtype=np.float64)
    return (L / (L + CENTER_PRIOR)) * V[live].mean(axis=0)


def fit_sigmoid(scores: np.ndarray, y: np.ndarray, *, max_iter: int = 100) -> tuple[float, float]:
    """(temperature, bias) maximising the likelihood of y under sigmoid((s - bias) / temperature).

    A logistic regression of y (0/1) on one feature by Newton's method (a tiny ridge keeps it
    finite on separable data). Raises DataFormatError when y lacks positives or negatives, or
    when higher scores do not mean more positives.
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == y.size:
        raise DataFormatError("calibration needs both positive and negative (item, label) pairs",
                              field="Y")
    mu, sd = s.mean(), s.std()
    if sd <= 0:
        raise DataFormatError("calibration needs scores that differ", field="X")
    z = (s - mu) / sd
    a, c = 1.0, float(np.log(n_pos / (y.size - n_pos)))
    ridge = 1e-6 * y.size
    for _ in range(max_iter):
        p = sigmoid(a * z + c)
        w = p * (1 - p)
        g = np.array([np.dot(p - y, z) + ridge * a, np.sum(p - y)])
        H = np.array([[np.dot(w, z * z) + ridge, np.dot(w, z)], [np.dot(w, z), w.sum() + 1e-12]])
        step = np.linalg.solve(H, g)
        a, c = a - step[0], c - step[1]
        if np.max(np.abs(step)) < 1e-10:
            break
    if not a > 0:
        raise DataFormatError("higher scores do not mean more positive labels here; "
                              "cannot calibrate", field="Y")
    # a*z + c = (s - bias) / T  with  z = (s - mu) / sd
    temperature = sd / a
    bias = mu - c * sd / a
    return float(temperature), float(bias)


def check_templates(templates: Any) -> list[str]:
    """The label-text templates as a list; ValueError unless each is a string with {label}."""
    if isinstance(templates, str):
        raise ValueError(f"templates must be a list of strings holding '{{label}}', got the "
                         f"string {templates!r}")
    try:
        out = list(templates)
    except TypeError:
        raise ValueError(f"templates must be a list of strings holding '{{label}}', got "
                         f"{templates!r}") from None
    if not out or not all(isinstance(t, str) and "{label}" in t for t in out):
        raise ValueError(f"templates must be strings holding '{{label}}', got {out!r}")
    return out


class ZeroShot(MultiLabelModel):
    """Zero-shot multi-label scoring from label names, descriptions and templates.

    Parameters
    ----------
    encoder: a local sentence-transformers folder; None = the shipped all-MiniLM-L6-v2.
    templates: format strings with ``{label}``; each is filled with every label name.
    use_descriptions: add the label space's descriptions to the label texts.
    humanize_names: read ``_`` and ``-`` in label names as spaces.
    temperature, bias: the default probability mapping (see the module docstring).
    block_entries: most scores held at once (rows per block = block_entries // n_labels).
    batch_size, max_seq_length, cache, progress: passed to
        :class:`~labelwise.features.SentenceEmbeddings`.
    center_labels: score against centred label vectors (see the module docstring).
    """

    _persist_name = "ZeroShot"
    #: the arrays a saved ZeroShot holds: name -> (dtypes, ndim) (checked on load)
    _saved_arrays = {"label_embeddings": (("<f4",), 2)}
    _encoder_param = "encoder"

    def __init__(self, *, encoder: str | None = None,
                 templates: Sequence[str] = DEFAULT_TEMPLATES, use_descriptions: bool = True,
                 humanize_names: bool = True, temperature: float = 0.05, bias: float = 0.22,
                 block_entries: int = 1 << 22, batch_size: int = 64,
                 max_seq_length: int | None = None, cache: bool = True,
                 progress: bool | None = None, center_labels: bool = True) -> None:
        self.encoder = encoder
        self.templates = templates
        self.use_descriptions = use_descriptions
        self.humanize_names = humanize_names
        self.temperature = temperature
        self.bias = bias
        self.block_entries = block_entries
        self.batch_size = batch_size
        self.max_seq_length = max_seq_length
        self.cache = cache
        self.progress = progress
        self.center_labels = center_labels

    # ------------------------------------------------------------------ embedding
    def _featurizer(self):
        from ..features.embeddings import SentenceEmbeddings

        return SentenceEmbeddings(model=self.encoder, batch_size=self.batch_size,
                                  max_seq_length=self.max_seq_length, cache=self.cache,
                                  progress=self.progress)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length float32 embeddings (n, dim) of texts with this model's encoder."""
        return self._featurizer().transform(list(texts))

    def label_texts(self, labels: LabelSpace) -> list[list[str]]:
        """The texts embedded for each label (templates filled with the name, + description)."""
        templates = check_templates(self.templates)
        descriptions = labels.descriptions if self.use_descriptions else None
        out = []
        for j, name in enumerate(labels.names):
            shown = name.replace("_", " ").replace("-", " ").strip() if self.humanize_names else name
            texts = [t.replace("{label}", shown or name) for t in templates]
            if descriptions is not None and descriptions[j]:
                texts.append(descriptions[j])
            out.append(texts)
        return out

    def embed_labels(self, labels: LabelSpace) -> np.ndarray:
        """(n_labels, dim) float32 unit vectors: the mean embedding of each label's texts."""
        per_label = self.label_texts(labels)
        flat = [t for texts in per_label for t in texts]
        E = self.embed(flat)
        owner = np.repeat(np.arange(len(per_label)), [len(t) for t in per_label])
        V = np.zeros((len(per_label), E.shape[1]), dtype=np.float64)
        np.add.at(V, owner, E)
        return _unit_rows(V)

    def _as_embeddings(self, X: Any) -> np.ndarray:
        """X (texts, a Dataset, or embeddings) as unit-length float32 (n, dim)."""
        if isinstance(X, Dataset):
            X = X.X
        if isinstance(X, list | tuple) and (len(X) == 0 or isinstance(X[0], str)):
            E = self.embed(X)
        else:
            if sp.issparse(X):
                X = X.toarray()
            E = np.asarray(X)
            if E.ndim != 2 or E.dtype.kind not in "fiu":
                raise DataFormatError(f"X must be texts or a 2-D numeric array of embeddings, got "
                                      f"{E.dtype} with shape {E.shape}", field="X")
            if not np.all(np.isfinite(E)):
                r, c = np.argwhere(~np.isfinite(E))[0]
                raise DataFormatError(f"X[{r}, {c}] = {E[r, c]!r}: features must be finite",
                                      field="X")
        dim = getattr(self, "n_features_in_", None)
        if dim is not None and E.shape[1] != dim:
            raise DataFormatError(f"X has {E.shape[1]} features (embedding dimensions), the "
                                  f"label vectors have {dim}", field="X")
        return _unit_rows(E)

    # ------------------------------------------------------------------ fitting
    def fit(self, X: Any = None, Y: Any = None, *, labels: LabelSpace | Sequence[str] | None = None):
        """Embed the label texts; with X and Y also fit the calibration on them.

        ``fit(labels=...)`` needs no data. ``fit(dataset)`` takes the labels (and X, Y for
        calibration) from a Dataset.
        """
        if isinstance(X, Dataset):
            if Y is not None or labels is not None:
                raise TypeError("fit(dataset) takes X, Y and labels from the dataset")
            X, Y, labels = X.X, X.Y, X.labels
        if labels is None:
            if Y is None:
                raise TypeError("ZeroShot.fit needs labels= (or Y, or a Dataset)")
            labels = LabelSpace.range(as_label_matrix(Y).shape[1])
        elif not isinstance(labels, LabelSpace):
            labels = LabelSpace(labels)
        if (X is None) != (Y is None):
            raise TypeError("give both X and Y (for calibration) or neither")
        V = self.embed_labels(labels)
        self._clear_fitted()
        self._set_label_vectors(V, labels)
        if X is not None:
            self.fit_calibration(X, Y)
        return self

    @classmethod
    def from_label_embeddings(cls, V: Any, labels: LabelSpace | Sequence[str] | None = None,
                              **params: Any):
        """A fitted model from label vectors V (n_labels, dim) computed elsewhere."""
        model = cls(**params)
        V = np.asarray(V)
        if V.ndim != 2 or V.shape[0] == 0 or not np.all(np.isfinite(V)):
            raise DataFormatError("label vectors must be a finite 2-D array (n_labels, dim)",
                                  field="V")
        if labels is None:
            labels = LabelSpace.range(V.shape[0])
        elif not isinstance(labels, LabelSpace):
            labels = LabelSpace(labels)
        if len(labels) != V.shape[0]:
            raise DataFormatError(f"{V.shape[0]} label vectors for {len(labels)} labels", field="V")
        model._set_label_vectors(_unit_rows(V), labels)
        return model

    def _set_label_vectors(self, V: np.ndarray, labels: LabelSpace) -> None:
        self.labels_ = labels
        self.n_features_in_ = int(V.shape[1])
        self.label_embeddings_ = np.ascontiguousarray(V, dtype=np.float32)
        self.temperature_ = float(self.temperature)
        self.bias_ = float(self.bias)
        if not self.temperature_ > 0 or not np.isfinite(self.bias_):
            raise ValueError(f"temperature must be > 0 and bias finite, got "
                             f"{self.temperature!r}, {self.bias!r}")

    def _label_vectors(self) -> np.ndarray:
        """The unit vectors scored against (label vectors, centred when ``center_labels``)."""
        return self._centered(self.label_embeddings_)

    def _center_shift(self, V: np.ndarray) -> np.ndarray:
        """What is subtracted from every label vector before scoring (zeros when off)."""
        if not self.center_labels:
            return np.zeros(V.shape[1], dtype=np.float64)
        return center_shift(V)

    def _centered(self, V: np.ndarray) -> np.ndarray:
        if not self.center_labels:
            return V
        V = np.asarray(V, dtype=np.float64)
        live = np.any(V != 0, axis=1, keepdims=True)  # zero vectors (no examples) stay zero
        return _unit_rows(np.where(live, V - self._center_shift(V), 0.0))

    def fit_calibration(self, X: Any, Y: Any, *, max_candidates: int = 50):
        """Fit ``temperature_`` and ``bias_`` on labelled items X (texts or embeddings), Y.

        Uses every (item, label) pair while n_samples * n_labels <= ``block_entries``; past
        that, each item's ``max_candidates`` best-scoring labels plus its positive labels.
        """
        self._check_fitted()
        E = self._as_embeddings(X)
        Yc = as_label_matrix(Y, len(self.labels_))
        if Yc.shape[0] != E.shape[0]:
            raise DataFormatError(f"X has {E.shape[0]} rows but Y has {Yc.shape[0]}")
        _, _, s, y = self._calibration_pairs(E, Yc, max_candidates)
        self.temperature_, self.bias_ = fit_sigmoid(s, y)
        return self

    def _calibration_pairs(self, E: np.ndarray, Y: sp.csr_matrix, max_candidates: int
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(rows, cols, scores, 0/1 targets) of the (item, label) pairs used for calibration."""
        n, L = Y.shape
        if n * L <= int(self.block_entries):
            S = next(self._score_blocks(E))[2]
            rows, cols = np.divmod(np.arange(n * L, dtype=np.int64), L)
            return rows, cols, S.ravel(), Y.toarray().ravel()
        parts = []
        kk = min(max_candidates, L)
        for a, b, S in self._score_blocks(E):
            top = np.argpartition(-S, kk - 1, axis=1)[:, :kk]
            M = sp.csr_matrix((np.ones(top.size, np.float32),
                               (np.repeat(np.arange(b - a), kk), top.ravel())), shape=S.shape)
            M = ((M + Y[a:b]) > 0).tocoo()
            parts.append((M.row.astype(np.int64) + a, M.col.astype(np.int64), S[M.row, M.col],
                          np.asarray(Y[a:b][M.row, M.col]).ravel()))
        return tuple(np.concatenate(p) for p in zip(*parts, strict=True))  # type: ignore[return-value]

    # ------------------------------------------------------------------ scoring
    def _score_blocks(self, E: np.ndarray):
        """Yield (start, end, E[start:end] @ V.T) row blocks of at most block_entries scores.

        Products are taken in float64 and rounded to float32, so a row's scores do not depend
        on which rows share its block (BLAS may sum differently for other block shapes)."""
        V = self._label_vectors().astype(np.float64)
        E = np.asarray(E, dtype=np.float64)
        rows = max(1, int(self.block_entries) // V.shape[0])
        for a in range(0, E.shape[0], rows):
            b = min(a + rows, E.shape[0])
            yield a, b, (E[a:b] @ V.T).astype(np.float32)

    def _decision_topk(self, X: Any, k: int) -> sp.csr_matrix:
        E = _unit_rows(X.toarray() if sp.issparse(X) else np.asarray(X))
        L = self._label_vectors().shape[0]
        parts = [topk_dense(S, k) for _, _, S in self._score_blocks(E)]
        if not parts:
            return sp.csr_matrix((0, L), dtype=np.float32)
        out = parts[0] if len(parts) == 1 else sp.csr_matrix(sp.vstack(parts, format="csr"))
        out.has_sorted_indices = True
        return out

    def decision_function(self, X: Any, *, k: int = 5) -> sp.csr_matrix:
        """Top-k cosine similarities (n_samples, n_labels) of X (texts or embeddings)."""
        self._check_fitted()
        return self._decision_topk(self._as_embeddings(X), _check_k(k))

    def predict(self, X: Any, *, k: int | None = None,
                threshold: float | None = None) -> sp.csr_matrix:
        """Label sets; ``threshold`` is a cosine (default ``bias_``: probability 0.5)."""
        self._check_fitted()
        return super().predict(self._as_embeddings(X), k=k, threshold=threshold)

    @property
    def default_threshold(self) -> float:  # type: ignore[override]
        self._check_fitted()
        return self.bias_

    def _to_probability(self, scores: np.ndarray) -> np.ndarray:
        return sigmoid((np.asarray(scores, dtype=np.float64) - self.bias_) / self.temperature_)

    # ------------------------------------------------------------------ persistence
    def _get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return ({"label_embeddings": self.label_embeddings_},
                {"temperature": self.temperature_, "bias": self.bias_})

    def _set_state(self, arrays: dict[str, np.ndarray], state: dict[str, Any]) -> None:
        if isinstance(self.templates, list):  # JSON turned the tuple into a list
            self.templates = tuple(self.templates)
        V = _checked_array(arrays, "label_embeddings", np.float32,
                           (len(self.labels_), self.n_features_in_))
        self.label_embeddings_ = V
        self.temperature_ = _checked_float(state, "temperature", positive=True)
        self.bias_ = _checked_float(state, "bias")


def _unit_rows(A: np.ndarray) -> np.ndarray:
    """Rows divided by their L2 norm (zero rows stay zero), as C-contiguous float32."""
    A = np.asarray(A, dtype=np.float64)
    norms = np.linalg.norm(A, axis=1, keepdims=True)
    out = np.divide(A, norms, out=np.zeros_like(A), where=norms > 0)
    return np.ascontiguousarray(out, dtype=np.float32)


def _checked_array(arrays: dict[str, np.ndarray], key: str, dtype: Any,
                   shape: tuple[int, ...]) -> np.ndarray:
    if key not in arrays:
        raise DataFormatError(f"array {key!r} is missing", field="arrays")
    a = arrays[key]
    if a.dtype != dtype or a.shape != shape:
        raise DataFormatError(f"array {key!r} is {a.dtype} {a.shape}, expected "
                              f"{np.dtype(dtype)} {shape}", field="arrays")
    return a


def _checked_float(state: dict[str, Any], key: str, *, positive: bool = False) -> float:
    v = state.get(key)
    if isinstance(v, bool) or not isinstance(v, int | float) or not np.isfinite(v) or (
            positive and v <= 0):
        raise DataFormatError(f"expected a finite{' positive' if positive else ''} number, "
                              f"got {v!r}", field=f"state.{key}")
    return float(v)

