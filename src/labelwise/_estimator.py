"""``Estimator``: the scikit-learn estimator protocol without importing scikit-learn.

``import sklearn.base`` costs about 1 s and ~125 MB of resident memory here (it pulls in
scipy.stats and, when installed, pandas and pyarrow), which would double the footprint of a
labelwise model that needs none of it. This base class implements what scikit-learn's
``clone``, ``get_params``/``set_params`` and its tools rely on, as ``BaseEstimator`` defines
it: the parameters are the keyword arguments of ``__init__`` (stored unchanged as attributes
of the same name), ``get_params(deep=True)`` adds ``component__param`` entries of nested
estimators, ``set_params`` sets both kinds. ``__sklearn_tags__`` (scikit-learn >= 1.6) imports
scikit-learn only when it is called; ``repr`` shows the parameters that differ from their
defaults.
"""

from __future__ import annotations

import inspect
from typing import Any

__all__ = ["Estimator"]


class Estimator:
    """Base class of labelwise models, featurizers and pipelines (scikit-learn compatible)."""

    @classmethod
    def _get_param_names(cls) -> list[str]:
        init = cls.__init__
        if init is object.__init__:
            return []
        names = []
        for p in inspect.signature(init).parameters.values():
            if p.name == "self" or p.kind == p.VAR_KEYWORD:
                continue
            if p.kind == p.VAR_POSITIONAL:
                raise RuntimeError(f"{cls.__name__}.__init__ takes *args: estimators must name "
                                   "every parameter in their signature")
            names.append(p.name)
        return sorted(names)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Parameter names mapped to their values (with nested ``name__param`` when deep)."""
        out: dict[str, Any] = {}
        for key in self._get_param_names():
            value = getattr(self, key)
            if deep and hasattr(value, "get_params") and not isinstance(value, type):
                out.update((f"{key}__{k}", v) for k, v in value.get_params().items())
            out[key] = value
        return out

    def set_params(self, **params: Any) -> Estimator:
        """Set parameters (``name`` or nested ``component__param``); returns self."""
        if not params:
            return self
        valid = self.get_params(deep=True)
        nested: dict[str, dict[str, Any]] = {}
        for key, value in params.items():
            name, delim, sub = key.partition("__")
            if name not in valid:
                raise ValueError(f"Invalid parameter {name!r} for estimator "
                                 f"{type(self).__name__}. Valid parameters are: "
                                 f"{self._get_param_names()!r}.")
            if delim:
                nested.setdefault(name, {})[sub] = value
            else:
                setattr(self, name, value)
                valid[name] = value
        for name, sub_params in nested.items():
            valid[name].set_params(**sub_params)
        return self

    def __sklearn_tags__(self) -> Any:
        from sklearn.base import BaseEstimator

        return BaseEstimator.__sklearn_tags__(self)

    def __repr__(self) -> str:
        """``Name(param=value, ...)`` with the parameters that differ from their defaults."""
        sig = inspect.signature(type(self).__init__).parameters
        shown = []
        for key in self._get_param_names():
            value, default = getattr(self, key), sig[key].default
            try:
                same = value is default or bool(value == default)
            except Exception:  # arrays and the like: show them
                same = False
            if not same:
                shown.append(f"{key}={value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"
