"""Where numba keeps labelwise's compiled kernels, and the ``njit`` every kernel module uses.

Every kernel module decorates with :func:`njit` from here (numba's ``njit`` with
``cache=True``). The first such decoration puts :class:`KernelCacheLocator` into numba's
list of cache locators, right after the one for a user's ``NUMBA_CACHE_DIR``, so:

- with ``NUMBA_CACHE_DIR`` set, numba's own locator keeps the cache there (the user's
  setting wins; labelwise never sets or changes it);
- else the kernels of a file inside this package are cached under :func:`cache_root`
  (``$LABELWISE_NUMBA_CACHE`` or ``~/.cache/labelwise/numba``), never next to the sources,
  so an editable install, a wheel in a read-only ``site-packages`` and every other install
  of the same sources on the machine share one cache;
- if that folder cannot be written, numba's own locators decide (``__pycache__`` when
  writable, else ``~/.cache/numba``), as before.

The cache is keyed on content, not on where or when a file was installed: the folder name
holds the numba and Python versions and a sha256 over every kernel module's source
(:data:`KERNEL_FILES`), and each function's stamp is that digest plus its own file's. A
kernel that calls into another module (the tree's kernels call the solver in ``_dcd.py``)
is therefore recompiled when either file changes; numba's own per-file stamp would keep the
stale caller. A new install of the same sources finds the cache of an earlier one.

Nothing here compiles anything: :mod:`labelwise.warmup` fills the cache ahead of use.
"""

from __future__ import annotations

import hashlib
import os
import sys
from functools import cache
from pathlib import Path

import numba
from numba.core import caching

__all__ = ["njit", "cache_root", "cache_folder", "KERNEL_FILES", "KernelCacheLocator",
           "install_locator"]

PACKAGE_DIR = Path(__file__).resolve().parent

# Every module (relative to the package) whose functions are decorated with this module's
# njit; tests/test_numba_cache.py checks the list against the sources.
KERNEL_FILES = (
    "io/_xc_kernels.py",
    "metrics/_kernels.py",
    "models/_chain_kernels.py",
    "models/_dcd.py",
    "models/_forest_grow.py",
    "models/_pairwise_kernels.py",
    "models/_tree_kernels.py",
    "models/_tree_layout.py",
    "models/forest.py",
    "models/topk.py",
    "split/_kernels.py",
)


def cache_root() -> Path:
    """``$LABELWISE_NUMBA_CACHE``, else ``~/.cache/labelwise/numba``.

    A variable of its own, not ``$LABELWISE_CACHE_HOME`` (the embedding cache's home): a
    run that points the embedding cache at a fresh folder must not recompile every kernel.
    """
    env = os.environ.get("LABELWISE_NUMBA_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "labelwise" / "numba"


@cache
def _sources_digest() -> str:
    digest = hashlib.sha256()
    for rel in KERNEL_FILES:
        digest.update(rel.encode() + b"\0" + (PACKAGE_DIR / rel).read_bytes() + b"\0")
    return digest.hexdigest()


@cache
def _file_digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def cache_folder(root: Path | None = None) -> Path:
    """The folder under ``root`` (default :func:`cache_root`) that these sources use."""
    tag = (f"numba{numba.__version__}-py{sys.version_info[0]}{sys.version_info[1]}"
           f"-{_sources_digest()[:16]}")
    return (cache_root() if root is None else root) / tag


class KernelCacheLocator(caching._CacheLocator):
    """numba cache locator for the functions of a file inside this package."""

    def __init__(self, py_func, py_file: str):
        self._py_file = py_file
        self._lineno = py_func.__code__.co_firstlineno
        rel = Path(py_file).resolve().relative_to(PACKAGE_DIR)
        self._cache_path = str(cache_folder() / rel.parent)

    def get_cache_path(self) -> str:
        return self._cache_path

    def get_source_stamp(self):
        return (_sources_digest(), _file_digest(self._py_file))

    def get_disambiguator(self) -> str:
        return str(self._lineno)

    @classmethod
    def from_function(cls, py_func, py_file: str):
        try:
            Path(py_file).resolve().relative_to(PACKAGE_DIR)
        except (OSError, ValueError):
            return None  # not one of ours: numba's own locators decide
        if not os.path.isfile(py_file):
            return None
        self = cls(py_func, py_file)
        try:
            self.ensure_cache_path()
        except OSError:
            return None  # the user folder cannot be written: numba's own locators decide
        return self


def _impl_class():
    return getattr(caching, "CacheImpl", None) or caching._CacheImpl


def install_locator() -> None:
    """Put :class:`KernelCacheLocator` after numba's locator for ``NUMBA_CACHE_DIR``."""
    classes = _impl_class()._locator_classes
    if KernelCacheLocator in classes:
        return
    user = getattr(caching, "UserProvidedCacheLocator", None) or getattr(
        caching, "_UserProvidedCacheLocator", None)
    at = classes.index(user) + 1 if user in classes else 0
    classes.insert(at, KernelCacheLocator)


def njit(*args, **kwargs):
    """``numba.njit`` with ``cache=True``, cached where :class:`KernelCacheLocator` says."""
    install_locator()
    kwargs.setdefault("cache", True)
    return numba.njit(*args, **kwargs)
