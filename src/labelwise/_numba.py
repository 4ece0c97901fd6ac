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

Names that cannot collide: numba names each compiled function by its qualified name, its
argument types and a number from a per-process counter, and a cached kernel carries the
code of every function it calls (numba's own sort, allocation and closure implementations
included) under those names. Two processes that compile different functions of the same
qualified name and types (numba's quicksort for a sort and for an argsort) can give them
the same number; a third that loads both kernels from the cache links one name to two
bodies and LLVM keeps one of them, so the other kernel silently runs the wrong code
(numba issue #10486; here a tf-idf kernel sorted with an argsort and wrote a duplicate
feature index). :func:`install_unique_ids` (run by :func:`njit`) replaces the counter with
random 64-bit numbers drawn from the operating system, so no two compilations anywhere share
a name; :data:`CACHE_SCHEME` is part of the folder name, so no kernel compiled under the
counter is ever loaded beside them.

Kernels shipped in a wheel: the wheel's build (``setup.py``) runs
``python -m labelwise.warmup --ship`` with ``NUMBA_CPU_NAME=generic`` into the package folder
:data:`SHIPPED_ROOT`, beside a ``manifest.json`` that holds the numba version, the sources'
digest and the sha256 of every file. :class:`KernelCache` (the cache of every kernel made
by :func:`njit`) looks for a signature in this order:

1. the user-writable cache above, compiled for this machine's CPU (what a warm-up or an
   earlier run wrote);
2. the shipped folder, under the key of this CPU and then under the key of numba's
   ``generic`` CPU of this machine's target triple (baseline instructions, valid on every
   CPU of that triple); numba's own key check refuses any other CPU's entry;
3. else numba compiles it and writes it to 1. The shipped folder is never written.

A shipped file is read only when the manifest matches this numba and these sources, the
folder lies inside the package (no symlink out of it) and the file's sha256 is the
manifest's; anything else is a miss, with one :class:`KernelCacheWarning` for a file that
is listed but does not match. An unreadable entry in the user cache is a miss as well
(numba itself would raise).

Nothing here compiles anything: :mod:`labelwise.warmup` fills the cache ahead of use.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import pickle
import secrets
import sys
import warnings
from functools import cache
from pathlib import Path

import numba
from numba.core import caching

__all__ = ["njit", "cache_root", "cache_folder", "KERNEL_FILES", "KernelCacheLocator",
           "links_hash_secrets", "links_runtime", "install_locator", "KernelCache",
           "KernelCacheWarning", "prepare_cached_load", "SHIPPED_ROOT", "PORTABLE_CPU", "shipped_manifest",
           "install_unique_ids", "CACHE_SCHEME"]

PACKAGE_DIR = Path(__file__).resolve().parent

# Where a wheel carries its precompiled kernels (absent from a source checkout).
SHIPPED_ROOT = PACKAGE_DIR / "_kernel_cache"
MANIFEST_NAME = "manifest.json"
# numba's CPU name for code that runs on every CPU of a target triple (NUMBA_CPU_NAME).
PORTABLE_CPU = "generic"

#: the cache's naming scheme, part of the folder name: 2 = functions named with random ids
#: (:func:`install_unique_ids`); folders of scheme 1 (numba's per-process counter) may hold
#: kernels whose names collide, and are never read
CACHE_SCHEME = 2

# Every module (relative to the package) whose functions are decorated with this module's
# njit; tests/test_numba_cache.py checks the list against the sources.
KERNEL_FILES = (
    "features/_term_kernels.py",
    "io/_xc_kernels.py",
    "metrics/_kernels.py",
    "models/_chain_kernels.py",
    "models/_dcd.py",
    "models/_dcd_gram.py",
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
    digest = hashlib.sha256(f"scheme {CACHE_SCHEME}\0".encode())
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


class KernelCacheWarning(RuntimeWarning):
    """A cache entry that was listed or present but could not be used (it is compiled instead)."""


@cache
def shipped_manifest() -> dict | None:
    """The shipped kernels' manifest for this numba and these sources, else None.

    None when the package carries no kernels for them (a source checkout, another numba or
    Python, changed sources), when the folder is a link out of the package, or when
    ``$LABELWISE_SHIPPED_KERNELS`` is ``0`` (as :mod:`labelwise.warmup` sets it, so that it
    compiles this CPU's own kernels into the user cache).
    """
    if os.environ.get("LABELWISE_SHIPPED_KERNELS") == "0":
        return None
    folder = cache_folder(SHIPPED_ROOT)
    try:
        if not folder.resolve(strict=True).is_relative_to(PACKAGE_DIR):
            warnings.warn(f"labelwise: {folder} leads out of the package; its kernels are not "
                          "used", KernelCacheWarning, stacklevel=2)
            return None
        manifest = json.loads((folder / MANIFEST_NAME).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        warnings.warn(f"labelwise: {folder / MANIFEST_NAME} is unreadable ({exc}); the shipped "
                      "kernels are not used", KernelCacheWarning, stacklevel=2)
        return None
    if (not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict)
            or manifest.get("numba") != numba.__version__
            or manifest.get("sources") != _sources_digest()):
        return None
    return manifest


class _ShippedCacheFile(caching.IndexDataCacheFile):
    """numba's index + data files, read from the shipped folder only after a sha256 check."""

    def __init__(self, cache_path: Path, filename_base: str, source_stamp, files: dict):
        super().__init__(str(cache_path), filename_base, source_stamp)
        self._folder = cache_path
        self._files = files  # {path relative to the cache folder: sha256}
        self._rel = cache_path.relative_to(cache_folder(SHIPPED_ROOT))
        self._index = None

    def _verified(self, name: str) -> bytes | None:
        expected = self._files.get((self._rel / name).as_posix())
        if expected is None:
            return None  # not shipped
        path = self._folder / name
        try:
            data = path.read_bytes()
        except OSError as exc:
            problem = f"unreadable ({exc})"
        else:
            if hashlib.sha256(data).hexdigest() == expected:
                return data
            problem = "does not match its sha256 in the manifest"
        warnings.warn(f"labelwise: shipped kernel file {path} {problem}; compiling instead",
                      KernelCacheWarning, stacklevel=2)
        return None

    def _load_index(self):
        if self._index is None:  # read and checked once: the folder is read-only
            self._index = {}
            data = self._verified(self._index_name)
            if data is not None:
                stream = io.BytesIO(data)
                if pickle.load(stream) == self._version:
                    stamp, overloads = pickle.loads(stream.read())
                    if stamp == self._source_stamp:
                        self._index = overloads
        return self._index

    def _load_data(self, name):
        data = self._verified(name)
        if data is None:
            raise OSError(f"{name} is not a verified shipped file")  # load() reads it as a miss
        return pickle.loads(data)

    def _save_index(self, overloads):
        raise RuntimeError("the shipped kernel cache is read-only")

    def _save_data(self, name, data):
        raise RuntimeError("the shipped kernel cache is read-only")


class _Magic:
    """Stands in for a codegen in numba's ``_index_key``: only its ``magic_tuple`` is read."""

    def __init__(self, magic: tuple):
        self._magic = magic

    def magic_tuple(self) -> tuple:
        return self._magic


class KernelCache(caching.FunctionCache):
    """numba's per-function cache, plus the read-only kernels shipped in a wheel.

    Loads from the user-writable cache its locator chose (numba's check: this numba, this
    source stamp, this CPU), else from the shipped folder under this CPU's key or the
    portable ``generic`` key of this target triple; saves only to the user-writable cache.
    Any error while reading an entry is a miss with a :class:`KernelCacheWarning`.
    """

    def __init__(self, py_func):
        super().__init__(py_func)
        rebuild = self._impl.rebuild

        def rebuild_linked(target_context, payload):
            if links_runtime(payload):
                initialize_runtime(target_context)
            if links_hash_secrets(payload):
                import numba.cpython.hashing  # noqa: F401  (injects _numba_hashsecret_*)
            if not _LIGHT_LOAD:
                return rebuild(target_context, payload)
            # numba's rebuild, its library read without parsing the bitcode kept for
            # linking into other kernels (unserialize_lazily); the codegen's method is
            # replaced for this call only (under numba's compiler lock, held by the
            # dispatcher through the whole load)
            codegen = target_context.codegen()
            codegen.unserialize_library = lambda state: unserialize_lazily(codegen, state)
            try:
                return rebuild(target_context, payload)
            finally:
                del codegen.unserialize_library

        self._impl.rebuild = rebuild_linked
        self._shipped = None
        self._shipped_failed = False
        manifest = shipped_manifest()
        py_file = getattr(self._impl.locator, "_py_file", None)
        if manifest is None or py_file is None:
            return
        try:
            rel = Path(py_file).resolve().relative_to(PACKAGE_DIR)
        except (OSError, ValueError):
            return  # not one of ours
        stamp = (_sources_digest(), _file_digest(py_file))
        self._shipped = _ShippedCacheFile(cache_folder(SHIPPED_ROOT) / rel.parent,
                                          self._impl.filename_base, stamp, manifest["files"])

    def load_overload(self, sig, target_context):
        """numba's ``load_overload`` without its full ``target_context.refresh()`` before a
        cache hit (see :func:`prepare_cached_load`); a miss refreshes as numba does, before
        the compiler runs. With a numba whose internals differ (no guard or runtime set-up
        to call), numba's own ``load_overload`` runs instead."""
        if not _LIGHT_LOAD:
            return super().load_overload(sig, target_context)
        prepare_cached_load(target_context)
        with self._guard_against_spurious_io_errors():
            data = self._load_overload(sig, target_context)
            if data is not None:
                return data
        # a miss: numba compiles next, with every registry and the extensions' entry points
        # (deferred by njit's dispatchers to this point: _init_extensions_when_compiling),
        # and the runtime (read from its file, not compiled again by numba's refresh)
        from numba.core import entrypoints

        entrypoints.init_all()
        initialize_runtime(target_context)
        target_context.refresh()
        return None

    def _load_overload(self, sig, target_context):
        with _environments_of_unimported_numba_modules():
            return self._load_overload_now(sig, target_context)

    def _load_overload_now(self, sig, target_context):
        try:
            data = super()._load_overload(sig, target_context)
        except Exception as exc:  # a truncated or foreign file in the user cache: a miss
            warnings.warn(f"labelwise: unreadable kernel cache entry for {self._name} in "
                          f"{self._cache_path} ({type(exc).__name__}: {exc}); compiling instead",
                          KernelCacheWarning, stacklevel=2)
            data = None
        if data is not None or self._shipped is None or not self._enabled:
            return data
        if self._shipped_failed:
            return None
        host = target_context.codegen().magic_tuple()
        for magic in (host, (host[0], PORTABLE_CPU, "")):
            key = self._index_key(sig, _Magic(magic))
            try:
                payload = self._shipped.load(key)
                if payload is not None:
                    return self._impl.rebuild(target_context, payload)
            except Exception as exc:
                self._shipped_failed = True
                warnings.warn(f"labelwise: unusable shipped kernel for {self._name} "
                              f"({type(exc).__name__}: {exc}); compiling instead",
                              KernelCacheWarning, stacklevel=2)
                return None
        return None

    def _save_overload(self, sig, data):
        try:
            self._cache_file._load_index()
        except Exception:  # unreadable (warned at load): start the index again
            self._cache_file.flush()
        super()._save_overload(sig, data)


def _rebuild_env_without_import(modname, consts, env_name):
    """numba's ``_rebuild_env`` (how a cached kernel's pickled environments come back), except
    that the environment of a function of a numba module not imported yet gets a stand-in
    globals dict (only ``__name__``) instead of importing the module.

    A cached kernel carries an environment for every function it calls, numba's own
    included (``numba.np.arrayobj``'s for an allocation); numba's rebuild imports each
    one's module for its globals dict. Compiled nopython code never reads those globals
    (only object mode looks names up in them); it reads the environment's constants,
    which are restored here as numba restores them. Importing ``numba.np.arrayobj`` (and
    its unicode, hashing, random and sorting modules) is ~15 ms of a fresh process's first
    fit; the kernels run the same code either way (tests/test_numba_cache.py)."""
    from numba.core.environment import Environment, lookup_environment

    env = lookup_environment(env_name)
    if env is not None:
        return env
    if not (isinstance(modname, str) and modname.startswith("numba.")) \
            or modname in sys.modules:
        return _NUMBA_REBUILD_ENV(modname, consts, env_name)
    env = Environment({"__name__": modname})
    env.consts[:] = consts
    env.env_name = env_name
    Environment._memo[env_name] = env
    return env


def _numba_rebuild_env():
    from numba.core import environment

    rebuild = getattr(environment, "_rebuild_env", None)
    if not callable(rebuild) or not hasattr(environment.Environment, "_memo") \
            or not callable(getattr(environment, "lookup_environment", None)):
        return None
    return rebuild


#: numba's own ``_rebuild_env`` (None with a numba whose internals differ: then unchanged)
_NUMBA_REBUILD_ENV = _numba_rebuild_env()


@contextlib.contextmanager
def _environments_of_unimported_numba_modules():
    """While a kernel is read from the cache, pickle's reference to numba's
    ``_rebuild_env`` finds :func:`_rebuild_env_without_import` (numba's compiler lock,
    held by the dispatcher through the load, keeps other loads out meanwhile)."""
    if _NUMBA_REBUILD_ENV is None:
        yield
        return
    from numba.core import environment

    environment._rebuild_env = _rebuild_env_without_import
    try:
        yield
    finally:
        environment._rebuild_env = _NUMBA_REBUILD_ENV


def _light_load_supported() -> bool:
    from numba.core.runtime import _nrt_python, nrtdynmod, rtsys

    return (hasattr(caching.Cache, "_guard_against_spurious_io_errors")
            and hasattr(caching.Cache, "_load_overload")
            and callable(getattr(rtsys, "initialize", None))
            and isinstance(getattr(rtsys, "_init", None), bool)
            and isinstance(getattr(_nrt_python, "c_helpers", None), dict)
            and callable(getattr(nrtdynmod, "create_nrt_module", None)))


#: whether :meth:`KernelCache.load_overload` can skip numba's full refresh (numba's internals
#: it relies on are present; checked once at import)
_LIGHT_LOAD = _light_load_supported()


def prepare_cached_load(target_context) -> None:
    """What a compiled kernel read from the cache needs of numba before it is linked.

    numba's ``load_overload`` first refreshes the whole target context: it imports and
    installs every typing and lowering registry numba has (hundreds of ``@overload``
    templates), which only compiling uses and which is most of a fresh process's first
    kernel call (0.3 s on a quiet 2-core machine, 1-2 s under load). Linking cached object
    code needs only the symbols it calls: numba's C helpers and exception classes and the
    math library (put in LLVM's symbol table when the context is made), the runtime (NRT:
    :meth:`rtsys.initialize`, which registers its functions and compiles its atomics), the
    hash secrets ``numba.cpython.hashing`` injects on import (imported by
    :class:`KernelCache` before it links code that names them: :func:`links_hash_secrets`;
    the import costs a fresh process ~10 ms) and the threading layer of parallel kernels
    (their ``reload_init`` runs it at rebuild). Linking code that calls the runtime without
    it crashes (an unresolved NRT symbol): :class:`KernelCache` sets it up
    (:func:`initialize_runtime`) before it links code that names it
    (:func:`links_runtime`); a kernel compiled without it (``_nrt=False``: no reference
    counting, no allocation) links without it, ~3 ms less in a fresh process. Nothing is
    left to do before the read itself: this hook is where a caller may still refresh
    numba's registries (the tests compare with numba's own way)."""


def _payload_names(payload, name: bytes) -> bool:
    """Whether a cached compile result (numba's reduced ``CompileResult``: its first item
    the library as (name, "object", (object code, bitcode))) holds ``name`` in its code;
    True when it is not in that form."""
    try:
        kind, blobs = payload[0][1], payload[0][2]
    except (TypeError, IndexError, KeyError):
        return True
    if kind != "object" or not isinstance(blobs, tuple):
        return True
    return any(not isinstance(b, bytes) or name in b for b in blobs)


def links_runtime(payload) -> bool:
    """Whether a cached compile result names a function of numba's runtime (``NRT_*``:
    reference counting, allocation, the array adapters of a kernel's Python wrapper); True
    when it is not in numba's usual form. A kernel compiled with ``_nrt=False`` names none."""
    return _payload_names(payload, b"NRT_")


def links_hash_secrets(payload) -> bool:
    """Whether a cached compile result names the hash secrets ``numba.cpython.hashing`` puts
    in LLVM's symbol table; True when it is not in numba's usual form."""
    return _payload_names(payload, b"_numba_hashsecret")


#: first bytes of a cached runtime file (then sha256 of the rest, the object code's length
#: as 8 little-endian bytes, the object code, the bitcode numba links into new kernels)
_RUNTIME_MAGIC = b"labelwise numba runtime 1\n"


def runtime_file(codegen) -> Path:
    """Where the runtime's compiled functions are cached for this numba, llvmlite and CPU
    (the folder already names the numba version and the kernels' sources)."""
    import llvmlite

    key = repr((numba.__version__, llvmlite.__version__, codegen.magic_tuple()))
    return cache_folder() / f"runtime-{hashlib.sha256(key.encode()).hexdigest()[:16]}.bin"


def _read_runtime(path: Path) -> tuple[bytes, bytes] | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    head = len(_RUNTIME_MAGIC)
    body = data[head + 32:]
    if (not data.startswith(_RUNTIME_MAGIC) or len(body) < 8
            or hashlib.sha256(body).digest() != data[head:head + 32]):
        return None
    n = int.from_bytes(body[:8], "little")
    if n > len(body) - 8:
        return None
    return body[8:8 + n], body[8 + n:]


def _write_runtime(path: Path, obj: bytes, bitcode: bytes) -> None:
    from .atomic import atomic_write

    body = len(obj).to_bytes(8, "little") + obj + bitcode
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path, "wb") as f:
            f.write(_RUNTIME_MAGIC + hashlib.sha256(body).digest() + body)
    except OSError:
        pass  # an unwritable cache: compiled again by the next process, as numba does


def initialize_runtime(target_context) -> None:
    """numba's ``rtsys.initialize``, with its one compiled part (the atomic reference
    counting functions every kernel calls, an LLVM module numba compiles in every process)
    read as object code from :func:`runtime_file` when an earlier process wrote it.

    The C functions are registered as numba does; the module is loaded the way numba loads
    a cached kernel (``unserialize_library``). A missing, damaged (sha256) or unloadable file
    means numba's own compilation, whose object code is then written for the next process.
    Runtime statistics (``NUMBA_NRT_STATS``) and a user's ``NUMBA_CACHE_DIR`` (where labelwise
    writes nothing) keep numba's own path."""
    from llvmlite import binding as ll
    from numba.core import config
    from numba.core.compiler_lock import global_compiler_lock
    from numba.core.runtime import _nrt_python, nrtdynmod, rtsys

    if rtsys._init:
        return
    if config.NRT_STATS or config.CACHE_DIR:  # statistics; the user's cache folder wins
        rtsys.initialize(target_context)
        return
    with global_compiler_lock:
        if rtsys._init:
            return
        for py_name, address in _nrt_python.c_helpers.items():
            ll.add_symbol(py_name if py_name.startswith("_") else "NRT_" + py_name, address)
        codegen = target_context.codegen()
        path = runtime_file(codegen)
        cached = _read_runtime(path)
        if cached is not None:
            library = codegen.unserialize_library(("nrt", "object", cached))
        else:
            ir_mod, library = nrtdynmod.create_nrt_module(target_context)
            library.enable_object_caching()
            library.add_ir_module(ir_mod)
            library.finalize()
            library.get_pointer_to_function("NRT_incref")  # emits the object code
            _, _, (obj, bitcode) = library.serialize_using_object_code()
            _write_runtime(path, obj, bitcode)
        rtsys._library = library
        rtsys._init = True


def elf_defined_symbols(obj: bytes) -> set[str] | None:
    """The names of the global and weak symbols an ELF64 little-endian relocatable object
    defines (numba's object code on x86-64 and aarch64 Linux); None for any other format or
    a malformed file."""
    import struct

    try:
        if obj[:6] != b"\x7fELF\x02\x01":
            return None
        shoff = struct.unpack_from("<Q", obj, 0x28)[0]
        shentsize, shnum = struct.unpack_from("<HH", obj, 0x3A)
        sections = [struct.unpack_from("<IIQQQQII", obj, shoff + i * shentsize)
                    for i in range(shnum)]
        names = set()
        for _, kind, _, _, offset, size, link, _ in sections:
            if kind != 2:  # SHT_SYMTAB
                continue
            strings = sections[link][4]
            for k in range(size // 24):
                name, info, _, shndx = struct.unpack_from("<IBBH", obj, offset + 24 * k)
                if shndx != 0 and info >> 4 in (1, 2):  # defined; STB_GLOBAL, STB_WEAK
                    start = strings + name
                    names.add(obj[start:obj.index(b"\0", start)].decode())
        return names
    except (struct.error, ValueError, IndexError, UnicodeDecodeError):
        return None


@cache
def _lazy_library_class(base: type) -> type:
    """``base`` (numba's JIT code library) whose module for linking into other kernels is
    parsed from its bitcode on first use, not when the library is read from the cache."""

    class LazyLinkLibrary(base):
        @property
        def _shared_module(self):
            module = self.__dict__.get("_lw_shared_module")
            if module is None and self.__dict__.get("_lw_bitcode") is not None:
                from llvmlite import binding as ll

                module = self.__dict__["_lw_shared_module"] = ll.parse_bitcode(
                    self.__dict__.pop("_lw_bitcode"))
            return module

        @_shared_module.setter
        def _shared_module(self, module):
            self.__dict__["_lw_shared_module"] = module

    LazyLinkLibrary.__name__ = LazyLinkLibrary.__qualname__ = f"Lazy{base.__name__}"
    return LazyLinkLibrary


def unserialize_lazily(codegen, state):
    """numba's ``unserialize_library`` for object code, without parsing the library's
    bitcode (the module other kernels would link it from: ~2-3 ms for a large kernel in a
    fresh process): the symbols it defines, which numba takes from that module, are read
    from the object code's ELF symbol table (a superset: numba's list adds the private
    constants, which nothing looks up), and the module is parsed only if another kernel
    links this one. Anything else (bitcode state, a non-ELF object) goes numba's way."""
    base = codegen._library_class
    try:
        name, kind, (object_code, bitcode) = state
    except (TypeError, ValueError):
        return base._unserialize(codegen, state)
    defined = elf_defined_symbols(object_code) if kind == "object" else None
    if (defined is None or not isinstance(bitcode, bytes)
            or not isinstance(getattr(codegen._engine, "_defined_symbols", None), set)
            or not all(hasattr(base, a) for a in ("enable_object_caching",
                                                  "_set_compiled_object",
                                                  "_finalize_final_module"))):
        return base._unserialize(codegen, state)
    library = codegen.create_library(name)
    library.__class__ = _lazy_library_class(type(library))
    library._lw_bitcode = bitcode
    library.enable_object_caching()
    library._set_compiled_object(object_code)
    library._finalize_final_module()
    codegen._engine._defined_symbols |= defined
    return library


def _impl_class():
    return getattr(caching, "CacheImpl", None) or caching._CacheImpl


class _RandomIds:
    """Stands in for numba's counter of function ids (``FunctionIdentity._unique_ids``):
    endless random 64-bit numbers (top bit set, so never one of the counter's small numbers
    handed out before), drawn from the operating system, so a forked process draws its own."""

    def __iter__(self):
        return self

    def __next__(self) -> int:
        return secrets.randbits(63) | 1 << 63


def install_unique_ids() -> None:
    """Have numba name every function compiled from now on in this process with a random
    id (see the module's docstring: names that cannot collide). Idempotent."""
    from numba.core.bytecode import FunctionIdentity

    if not isinstance(FunctionIdentity.__dict__.get("_unique_ids"), _RandomIds):
        FunctionIdentity._unique_ids = _RandomIds()


def install_locator() -> None:
    """Put :class:`KernelCacheLocator` after numba's locator for ``NUMBA_CACHE_DIR``."""
    classes = _impl_class()._locator_classes
    if KernelCacheLocator in classes:
        return
    user = getattr(caching, "UserProvidedCacheLocator", None) or getattr(
        caching, "_UserProvidedCacheLocator", None)
    at = classes.index(user) + 1 if user in classes else 0
    classes.insert(at, KernelCacheLocator)


def _init_extensions_when_compiling() -> None:
    """Replaces numba's hook that runs every installed package's ``numba_extensions`` entry
    point before a dispatcher's first call (reading every distribution's metadata: ~6 ms of
    a fresh process): a labelwise kernel read from the cache links without them (its
    arguments are numpy arrays and numbers), and a cache miss runs them before numba
    compiles (:meth:`KernelCache.load_overload`)."""


def njit(func=None, /, **options):
    """``numba.njit`` with ``cache=True`` through :class:`KernelCache`, compiled lazily.

    ``@njit`` or ``@njit(**options)``; no eager signatures (no work at import).
    """
    install_locator()
    install_unique_ids()
    cached = options.pop("cache", True)

    def decorate(py_func):
        dispatcher = numba.njit(cache=False, **options)(py_func)
        if cached and hasattr(dispatcher, "enable_caching"):  # not under NUMBA_DISABLE_JIT
            dispatcher._cache = KernelCache(dispatcher.py_func)
            if _LIGHT_LOAD:
                dispatcher._compilation_chain_init_hook = _init_extensions_when_compiling
        return dispatcher

    if func is None:
        return decorate
    if not callable(func):
        raise TypeError("labelwise's njit compiles lazily: pass options as keywords, "
                        "never a signature")
    return decorate(func)
