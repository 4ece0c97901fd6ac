"""Where numba's cache of labelwise's kernels goes (labelwise._numba) and what the warm-up covers.

The locator tests run a small kernel in subprocesses on a copy of the package (so the
cache and the package folder can be inspected and made read-only); the warm-up test checks
that after ``python -m labelwise.warmup`` a real fit + predict compiles nothing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import shared_dataset_dir
from labelwise import _numba

SRC = Path(_numba.__file__).resolve().parents[1]

# splitmix64_next is the smallest cached kernel (about 1 s to compile); the probe prints
# where its cache went and how it got there (hits = loaded from the cache).
PROBE = textwrap.dedent("""
    import json, numpy as np
    from labelwise import _numba
    from labelwise.split import _kernels as K
    K.splitmix64_next(np.zeros(1, np.uint64))
    cache = K.splitmix64_next._cache
    print(json.dumps({"path": cache.cache_path, "locator": type(cache._impl.locator).__name__,
                      "hits": sum(K.splitmix64_next.stats.cache_hits.values()),
                      "misses": sum(K.splitmix64_next.stats.cache_misses.values()),
                      "folder": str(_numba.cache_folder())}))
""")


def _env(src: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("NUMBA_CACHE_DIR", "LABELWISE_NUMBA_CACHE", "NUMBA_CACHE_LOCATOR_CLASSES")}
    env["PYTHONPATH"] = str(src)
    env.update(extra)
    return env


def _probe(src: Path, **extra: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE], env=_env(src, **extra), cwd=src,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.splitlines()[-1])


def _copy_package(dest: Path) -> Path:
    """A copy of src/labelwise without __pycache__ under dest/src; returns dest/src."""
    shutil.copytree(SRC / "labelwise", dest / "src" / "labelwise",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.nbi", "*.nbc"))
    return dest / "src"


def _read_only(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


@pytest.fixture
def writable_again(tmp_path):
    yield
    for path in [tmp_path, *tmp_path.rglob("*")]:  # so that pytest can remove tmp_path
        path.chmod(path.stat().st_mode | stat.S_IWUSR)


def _cache_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix in (".nbi", ".nbc"))


def test_every_kernel_module_uses_the_locator_and_is_listed():
    package = SRC / "labelwise"
    users, bypass = set(), []
    for path in package.rglob("*.py"):
        text = path.read_text()
        rel = path.relative_to(package).as_posix()
        if re.search(r"^from \.+_numba import njit$", text, re.M):
            users.add(rel)
        if re.search(r"^(from numba import .*\bn?jit\b|\s*@(nb|numba)\.n?jit\b)", text, re.M):
            bypass.append(rel)
    assert bypass == [], f"kernels compiled without labelwise._numba's cache locator: {bypass}"
    assert users == set(_numba.KERNEL_FILES)


def test_locator_comes_right_after_the_users_numba_cache_dir():
    from numba.core import caching

    _numba.install_locator()
    _numba.install_locator()  # idempotent
    classes = _numba._impl_class()._locator_classes
    assert classes.count(_numba.KernelCacheLocator) == 1
    user = getattr(caching, "UserProvidedCacheLocator", None) or caching._UserProvidedCacheLocator
    assert classes.index(_numba.KernelCacheLocator) == classes.index(user) + 1


def test_cache_root_follows_labelwise_numba_cache_only(monkeypatch, tmp_path):
    monkeypatch.setenv("LABELWISE_NUMBA_CACHE", str(tmp_path / "kernels"))
    monkeypatch.setenv("LABELWISE_CACHE_HOME", str(tmp_path / "embeddings"))
    assert _numba.cache_root() == tmp_path / "kernels"
    monkeypatch.delenv("LABELWISE_NUMBA_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert _numba.cache_root() == tmp_path / "home" / ".cache" / "labelwise" / "numba"


def test_locator_refuses_foreign_files_and_an_unwritable_folder(monkeypatch, tmp_path):
    from labelwise.split import _kernels as K

    py_func = K.splitmix64_next.py_func
    foreign = tmp_path / "other.py"
    foreign.write_text("x = 1\n")
    assert _numba.KernelCacheLocator.from_function(py_func, str(foreign)) is None
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")  # makedirs fails here even for root
    monkeypatch.setenv("LABELWISE_NUMBA_CACHE", str(blocker))
    assert _numba.KernelCacheLocator.from_function(py_func, K.__file__) is None
    monkeypatch.setenv("LABELWISE_NUMBA_CACHE", str(tmp_path / "kernels"))
    locator = _numba.KernelCacheLocator.from_function(py_func, K.__file__)
    assert Path(locator.get_cache_path()) == _numba.cache_folder() / "split"
    assert _numba.cache_folder().parent == tmp_path / "kernels"


def test_read_only_install_caches_in_the_user_folder_and_a_second_install_reuses_it(
        tmp_path, writable_again):
    first = _copy_package(tmp_path / "one")
    _read_only(first)
    cache = tmp_path / "cache"
    got = _probe(first, LABELWISE_NUMBA_CACHE=str(cache))
    assert got["locator"] == "KernelCacheLocator"
    assert Path(got["path"]) == Path(got["folder"]) / "split"
    assert Path(got["folder"]).parent == cache
    assert got["misses"] == 1 and got["hits"] == 0
    assert _cache_files(first) == []  # nothing written next to the sources
    assert {p.suffix for p in _cache_files(cache)} == {".nbi", ".nbc"}

    # another install of the same sources (other path, other mtimes) loads, compiles nothing
    second = _copy_package(tmp_path / "two")
    again = _probe(second, LABELWISE_NUMBA_CACHE=str(cache))
    assert again["folder"] == got["folder"]
    assert again["hits"] == 1 and again["misses"] == 0
    assert _cache_files(second) == []

    # a change to any kernel module (here the solver, which the tree's kernels call) moves
    # every kernel to a new folder, so no caller keeps a stale copy of its callee
    with open(second / "labelwise" / "models" / "_dcd.py", "a") as f:
        f.write("\n# changed\n")
    changed = _probe(second, LABELWISE_NUMBA_CACHE=str(cache))
    assert changed["folder"] != got["folder"]
    assert changed["misses"] == 1 and changed["hits"] == 0


def test_users_numba_cache_dir_wins(tmp_path):
    src = _copy_package(tmp_path / "pkg")
    numba_dir, home = tmp_path / "numba-dir", tmp_path / "home"
    got = _probe(src, NUMBA_CACHE_DIR=str(numba_dir), LABELWISE_NUMBA_CACHE=str(home))
    assert got["locator"] != "KernelCacheLocator"
    assert Path(got["path"]).is_relative_to(numba_dir)
    assert _cache_files(numba_dir) and not home.exists()


WARM_PROBE = textwrap.dedent("""
    import json, sys
    from numba.core.registry import CPUDispatcher
    from labelwise.datasets import load
    from labelwise.metrics import evaluate
    from labelwise.models import (CalibratedLabelRanking, ClassifierChain, LabelForest,
                                  LabelTree, OneVsRest)
    from labelwise.split import train_test_split
    from labelwise.warmup import _long_rows
    train, test = load("mulan-yeast", split="train"), load("mulan-yeast", split="test")
    for model in (LabelTree(random_state=0), OneVsRest(random_state=0),
                  LabelForest(n_estimators=10), LabelForest(kind="extra", n_estimators=10),
                  CalibratedLabelRanking(), ClassifierChain(inference="beam")):
        S = model.fit(train).decision_function(test.X, k=5)
        evaluate(test.Y, S, k=(1, 3, 5), Y_train=train.Y)
    train_test_split(train, test_size=0.2, random_state=0)
    # long e-mail-like rows: the root is solved on its Gram matrix built over two threads
    emails = _long_rows(seed=1)
    LabelTree(random_state=0, n_threads=2).fit(emails).decision_function(emails.X, k=5)
    misses = {}
    for name, module in list(sys.modules.items()):
        if name.startswith("labelwise."):
            for attr, obj in vars(module).items():
                if isinstance(obj, CPUDispatcher) and sum(obj.stats.cache_misses.values()):
                    misses[f"{name}.{attr}"] = sum(obj.stats.cache_misses.values())
    print(json.dumps(misses))
""")


@pytest.mark.datasets
def test_after_warmup_a_real_fit_and_predict_compile_nothing():
    # Uses the user's cache (warm after `make venv`): a cold one is filled here once, the
    # same compilation the rest of the suite would otherwise do. Every family with kernels
    # of its own (trees with block and Gram nodes, one-vs-rest, forests, pairwise, chains).
    mirror = shared_dataset_dir("mulan-yeast").parent
    env = {k: v for k, v in os.environ.items()}
    env["PYTHONPATH"] = str(SRC)
    env["LABELWISE_DATASETS_MIRROR"] = str(mirror)
    subprocess.run([sys.executable, "-m", "labelwise.warmup", "--quiet"], env=env, check=True)
    out = subprocess.run([sys.executable, "-c", WARM_PROBE], env=env, capture_output=True,
                         text=True, check=True)
    assert json.loads(out.stdout.splitlines()[-1]) == {}


# --- kernels shipped in a wheel (labelwise._numba.KernelCache, labelwise.warmup.pack) ---

SHIP_PROBE = textwrap.dedent("""
    import json, warnings, numpy as np
    warnings.simplefilter("always")
    from labelwise.split import _kernels as K
    with warnings.catch_warnings(record=True) as caught:
        value = K.splitmix64_next(np.zeros(1, np.uint64))
    print(json.dumps({"value": int(value),
                      "hits": sum(K.splitmix64_next.stats.cache_hits.values()),
                      "misses": sum(K.splitmix64_next.stats.cache_misses.values()),
                      "warnings": [f"{w.category.__name__}: {w.message}" for w in caught]}))
""")


def _splitmix64_first() -> int:
    """The first output of splitmix64 from state 0, computed in plain Python."""
    mask = (1 << 64) - 1
    z = 0x9E3779B97F4A7C15
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)


def _ship_probe(src: Path, cache: Path, **extra: str) -> dict:
    out = subprocess.run([sys.executable, "-c", SHIP_PROBE],
                         env=_env(src, LABELWISE_NUMBA_CACHE=str(cache), **extra), cwd=src,
                         capture_output=True, text=True, check=True)
    got = json.loads(out.stdout.splitlines()[-1])
    assert got["value"] == _splitmix64_first()  # whatever was loaded or compiled computes right
    return got


@pytest.fixture(scope="module")
def portable_build(tmp_path_factory):
    """splitmix64_next compiled for numba's generic CPU, as ``ship`` compiles every kernel."""
    root = tmp_path_factory.mktemp("portable")
    src = _copy_package(root)
    cache = root / "cache"
    got = _ship_probe(src, cache, NUMBA_CPU_NAME="generic")
    assert got["misses"] == 1
    return _numba.cache_folder(cache)


def _shipped_copy(dest: Path, build: Path) -> tuple[Path, Path]:
    """A package copy carrying ``build`` as its shipped kernels; (src, shipped folder)."""
    from labelwise.warmup import pack

    src = _copy_package(dest)
    folder = pack(build, src / "labelwise" / "_kernel_cache")
    return src, folder


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def _rehash(folder: Path, rel: str) -> None:
    """Record ``rel``'s current sha256 in the manifest (a consistent, not a corrupt, edit)."""
    import hashlib

    manifest = _manifest(folder)
    manifest["files"][rel] = hashlib.sha256((folder / rel).read_bytes()).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(manifest))


def _index_name(folder: Path) -> str:
    (name,) = [n for n in _manifest(folder)["files"] if n.endswith(".nbi")]
    return name


def test_shipped_portable_kernels_load_on_a_read_only_install_on_this_cpu(
        tmp_path, portable_build, writable_again):
    src, folder = _shipped_copy(tmp_path / "pkg", portable_build)
    assert _manifest(folder)["cpu"] == "generic"
    _read_only(src)
    cache = tmp_path / "user-cache"
    got = _ship_probe(src, cache)  # this machine's own CPU, an empty user cache
    assert got["hits"] == 1 and got["misses"] == 0 and got["warnings"] == []
    assert _cache_files(cache) == []  # a shipped hit writes nothing to the user cache
    # what the warm-up sets: compile this CPU's own kernels into the user cache
    got = _ship_probe(src, cache, LABELWISE_SHIPPED_KERNELS="0")
    assert got["hits"] == 0 and got["misses"] == 1
    assert {p.suffix for p in _cache_files(cache)} == {".nbi", ".nbc"}


def test_a_shipped_entry_of_another_cpu_is_never_loaded(tmp_path, portable_build):
    import pickle

    src, folder = _shipped_copy(tmp_path / "pkg", portable_build)
    index = folder / _index_name(folder)
    with open(index, "rb") as f:
        version = pickle.load(f)
        stamp, overloads = pickle.loads(f.read())
    # the same entry, filed (with a valid sha256) under a CPU that is neither this one nor
    # generic: what a wheel built on another machine without the generic setting holds
    moved = {(sig, (magic[0], "some-other-cpu", "+avx512f"), code): name
             for (sig, magic, code), name in overloads.items()}
    with open(index, "wb") as f:
        pickle.dump(version, f, protocol=-1)
        f.write(pickle.dumps((stamp, moved), protocol=-1))
    _rehash(folder, _index_name(folder))
    cache = tmp_path / "user-cache"
    got = _ship_probe(src, cache)
    assert got["hits"] == 0 and got["misses"] == 1 and got["warnings"] == []
    assert {p.suffix for p in _cache_files(cache)} == {".nbi", ".nbc"}  # compiled, then cached


@pytest.mark.parametrize("damage", ["data-flipped", "index-missing", "index-truncated"])
def test_a_damaged_shipped_cache_is_compiled_instead_with_a_warning(
        tmp_path, portable_build, damage):
    src, folder = _shipped_copy(tmp_path / "pkg", portable_build)
    index = folder / _index_name(folder)
    if damage == "data-flipped":  # one byte of the object code changed, the manifest kept
        (data,) = folder.rglob("*.nbc")
        raw = bytearray(data.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        data.write_bytes(bytes(raw))
    elif damage == "index-missing":
        index.unlink()
    else:
        index.write_bytes(index.read_bytes()[:20])
    got = _ship_probe(src, tmp_path / "user-cache")
    assert got["hits"] == 0 and got["misses"] == 1
    assert len(got["warnings"]) == 1 and got["warnings"][0].startswith("KernelCacheWarning")


def test_shipped_kernels_of_other_sources_or_numba_are_ignored(tmp_path, portable_build):
    src, folder = _shipped_copy(tmp_path / "pkg", portable_build)
    manifest = _manifest(folder)
    manifest["numba"] = "0.0.1"  # a wheel built against another numba
    (folder / "manifest.json").write_text(json.dumps(manifest))
    got = _ship_probe(src, tmp_path / "cache-a")
    assert got["misses"] == 1 and got["warnings"] == []

    src, folder = _shipped_copy(tmp_path / "pkg2", portable_build)
    with open(src / "labelwise" / "split" / "_kernels.py", "a") as f:
        f.write("\n# changed\n")  # the sources moved on: another folder, nothing shipped for it
    got = _ship_probe(src, tmp_path / "cache-b")
    assert got["misses"] == 1 and got["warnings"] == []


def test_an_unreadable_user_cache_entry_is_compiled_again_instead_of_raising(tmp_path):
    src = _copy_package(tmp_path / "pkg")
    cache = tmp_path / "user-cache"
    assert _ship_probe(src, cache)["misses"] == 1
    (index,) = [p for p in _cache_files(cache) if p.suffix == ".nbi"]
    index.write_bytes(index.read_bytes()[:20])  # numba itself raises on this
    got = _ship_probe(src, cache)
    assert got["misses"] == 1 and got["warnings"][0].startswith("KernelCacheWarning")
    assert _ship_probe(src, cache)["hits"] == 1  # rewritten whole by the compile


def test_njit_refuses_eager_signatures():
    with pytest.raises(TypeError, match="lazily"):
        _numba.njit("int64(int64)")


def test_a_shipped_folder_that_leads_out_of_the_package_is_refused(tmp_path, portable_build):
    src, folder = _shipped_copy(tmp_path / "pkg", portable_build)
    outside = tmp_path / "outside"
    folder.rename(outside)  # a valid shipped cache, but outside the package, reached by a link
    folder.symlink_to(outside, target_is_directory=True)
    out = subprocess.run([sys.executable, "-c", SHIP_PROBE],
                         env=_env(src, LABELWISE_NUMBA_CACHE=str(tmp_path / "user-cache")),
                         cwd=src, capture_output=True, text=True, check=True)
    got = json.loads(out.stdout.splitlines()[-1])
    assert got["value"] == _splitmix64_first()
    assert got["hits"] == 0 and got["misses"] == 1
    assert "KernelCacheWarning" in out.stderr and "leads out of the package" in out.stderr


def test_pack_refuses_an_empty_build(tmp_path):
    from labelwise.warmup import pack

    (tmp_path / "built" / "split").mkdir(parents=True)
    with pytest.raises(RuntimeError, match="nothing cached"):
        pack(tmp_path / "built", tmp_path / "shipped")


# --- cache hits skip numba's full context refresh (labelwise._numba.prepare_cached_load) ---

LIGHT_PROBE = textwrap.dedent("""
    import hashlib, json, sys
    import numpy as np, scipy.sparse as sp
    from numba.core.registry import CPUDispatcher
    from labelwise import _numba
    if sys.argv[1] == "full":  # numba's own way: every registry installed before a load
        _numba.prepare_cached_load = lambda ctx: ctx.refresh()
    from labelwise.metrics import evaluate
    from labelwise.models import (ClassifierChain, LabelForest, LabelPowerset, LabelTree,
                                  MLkNN, OneVsRest, RAkEL)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((120, 12)).astype(np.float32)
    Y = sp.csr_matrix((X[:, :5] + 0.5 * rng.standard_normal((120, 5)) > 0.3).astype(np.float32))
    Xs = sp.csr_matrix(np.where(X > 0.5, X, 0).astype(np.float32))
    digest = hashlib.sha256()
    for model, Xm in ((LabelForest(n_estimators=4, n_threads=2), X),
                      (LabelForest(kind="extra", n_estimators=4, n_threads=2), Xs),
                      (OneVsRest(), Xs), (ClassifierChain(), X), (LabelPowerset(), X),
                      (RAkEL(), X), (MLkNN(k=5), X), (LabelTree(random_state=0), Xs)):
        S = model.fit(Xm, Y).decision_function(Xm, k=3)
        digest.update(np.asarray(S.toarray(), np.float64).tobytes())
    digest.update(json.dumps(evaluate(Y, S, k=(1, 3))).encode())
    misses = sum(sum(obj.stats.cache_misses.values()) for name, m in list(sys.modules.items())
                 if name.startswith("labelwise.") for obj in vars(m).values()
                 if isinstance(obj, CPUDispatcher))
    print(json.dumps({"digest": digest.hexdigest(), "misses": misses,
                      "registries": "numba.np.polynomial.polynomial_core" in sys.modules}))
""")


def test_hash_secrets_are_linked_only_for_code_that_names_them():
    """links_hash_secrets on numba's own reduced compile results: a kernel hashing a string
    names the secrets (numba.cpython.hashing must be imported before it links), one adding
    integers does not; a payload in another form is assumed to need them."""
    import numba

    @numba.njit(cache=False)
    def hashes(x):
        return hash(x)

    @numba.njit(cache=False)
    def adds(x):
        return x + 1

    hashes("ab")
    adds(3)
    assert _numba.links_hash_secrets(hashes.overloads[hashes.signatures[0]]._reduce())
    assert not _numba.links_hash_secrets(adds.overloads[adds.signatures[0]]._reduce())
    assert _numba.links_hash_secrets(None)
    assert _numba.links_hash_secrets((("lib", "bitcode", b"..."),))


def test_runtime_is_linked_only_for_code_that_names_it():
    """links_runtime on numba's own reduced compile results: a kernel taking an array names
    numba's runtime (reference counts, the wrapper's array adapter) unless compiled with
    ``_nrt=False`` (as the forest kernels are), so the runtime is set up only before the
    first kernel that needs it; a payload in another form is assumed to need it."""
    import numba
    import numpy as np

    @numba.njit(cache=False)
    def counted(a):
        return a[0] + 1

    @numba.njit(cache=False, _nrt=False)
    def plain(a):
        return a[0] + 1

    x = np.arange(3.0)
    assert counted(x) == plain(x) == 1.0
    assert _numba.links_runtime(counted.overloads[counted.signatures[0]]._reduce())
    assert not _numba.links_runtime(plain.overloads[plain.signatures[0]]._reduce())
    assert _numba.links_runtime(None)
    assert _numba.links_runtime((("lib", "bitcode", b"..."),))


@pytest.mark.skipif(sys.platform != "linux", reason="numba's object code is ELF on Linux")
def test_elf_symbols_are_numbas_defined_symbols_but_the_private_constants():
    """elf_defined_symbols reads from a kernel's object code every symbol numba takes from
    its bitcode (functions and globals it defines) but the private constants (``.const.*``,
    which nothing looks up), and nothing more; anything not ELF64 is None."""
    import numba
    import numpy as np
    from llvmlite import binding as ll

    @numba.njit(cache=False)
    def kernel(a, k):
        if k < 0:
            raise ValueError("negative k")
        return np.sort(a)[k]

    assert kernel(np.array([3.0, 1.0, 2.0]), 1) == 2.0
    name, kind, (obj, bitcode) = kernel.overloads[kernel.signatures[0]]._reduce()[0]
    assert kind == "object"
    module = ll.parse_bitcode(bitcode)
    numbas = {g.name for group in (module.functions, module.global_variables) for g in group
              if not g.is_declaration}
    got = _numba.elf_defined_symbols(obj)
    assert got == {n for n in numbas if not n.startswith(".const.")}
    assert any(n.startswith(".const.") for n in numbas)  # (the exception's message)
    assert _numba.elf_defined_symbols(bitcode) is None
    assert _numba.elf_defined_symbols(obj[:100]) is None
    assert _numba.elf_defined_symbols(b"") is None


LAZY_PROBE = textwrap.dedent("""
    import json, sys
    import numba, numpy as np
    from labelwise.split import _kernels as K
    first = int(K.splitmix64_next(np.zeros(1, np.uint64)))
    lib = K.splitmix64_next.overloads[K.splitmix64_next.signatures[0]].library
    state = {"hits": sum(K.splitmix64_next.stats.cache_hits.values()),
             "library": type(lib).__name__, "bitcode_unread": "_lw_bitcode" in vars(lib)}

    @numba.njit(cache=False)
    def twice(s):  # compiled here: links the cached kernel's library into its own
        return K.splitmix64_next(s) ^ K.splitmix64_next(s)

    s = np.zeros(1, np.uint64)
    state.update(first=first, twice=int(twice(s)), state_after=int(s[0]),
                 bitcode_read=lib._shared_module is not None and "_lw_bitcode" not in vars(lib))
    print(json.dumps(state))
""")


def test_a_cached_kernel_loads_without_its_bitcode_and_still_links_into_new_code(tmp_path):
    """A kernel read from the cache is linked from its object code alone (its bitcode, the
    module other kernels would link it from, is parsed only when one does): a function
    compiled afterwards that calls it links it all the same and computes what plain Python
    computes."""
    env = _env(SRC, LABELWISE_NUMBA_CACHE=str(tmp_path / "cache"))
    run = [sys.executable, "-c", LAZY_PROBE]
    cold = json.loads(subprocess.run(run, env=env, capture_output=True, text=True,
                                     check=True).stdout.splitlines()[-1])
    warm = json.loads(subprocess.run(run, env=env, capture_output=True, text=True,
                                     check=True).stdout.splitlines()[-1])
    assert cold["hits"] == 0 and warm["hits"] == 1
    assert warm["library"].startswith("Lazy") and warm["bitcode_unread"]
    assert not cold["library"].startswith("Lazy")
    mask = (1 << 64) - 1
    z1 = _splitmix64_first()
    # splitmix64 from state 0 twice: the state moves by the golden-ratio step per call
    gamma = 0x9E3779B97F4A7C15
    z = (2 * gamma) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    z2 = z ^ (z >> 31)
    for got in (cold, warm):
        assert got["first"] == z1 and got["twice"] == z1 ^ z2
        assert got["state_after"] == 2 * gamma & mask
    assert warm["bitcode_read"]


FOREST_FIT_PROBE = textwrap.dedent("""
    import json, sys
    import numpy as np, scipy.sparse as sp
    from labelwise.models import LabelForest
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 30)).astype(np.float32)
    Y = sp.csr_matrix((X[:, :4] > 0.3).astype(np.float32))
    Xs = sp.csr_matrix(np.where(X > 0.8, X, 0).astype(np.float32))
    before = set(sys.modules)
    a = LabelForest(n_estimators=3, n_threads=2).fit(X, Y)
    b = LabelForest(kind="extra", n_estimators=3, n_threads=2).fit(Xs, Y)
    from numba.core import entrypoints
    print(json.dumps([entrypoints._already_initialized,
                      sorted(m for m in set(sys.modules) - before if m.startswith("numba."))]))
""")


def test_a_forest_fit_links_without_numbas_array_random_or_hash_modules():
    """A forest fit in a fresh process (kernels from the cache) imports none of the numba
    modules its kernels do not link against: the array library (its kernels allocate
    nothing), the random-number modules (each tree draws from its own generator) and the
    hash secrets (imported only for code that names them); nor does it run the installed
    packages' numba extension entry points (only a compile needs them)."""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    run = [sys.executable, "-c", FOREST_FIT_PROBE]
    subprocess.run(run, env=env, capture_output=True, check=True)  # (fills a cold cache)
    out = subprocess.run(run, env=env, capture_output=True, text=True, check=True)
    extensions, imported = json.loads(out.stdout.splitlines()[-1])
    assert not extensions  # numba's extension entry points: only before compiling
    for name in ("numba.np.arrayobj", "numba.cpython.randomimpl", "numba.np.random",
                 "numba.cpython.hashing"):
        assert name not in imported, imported


def test_cached_kernels_load_without_the_full_refresh_and_compute_the_same():
    """A fresh process whose kernels all come from the cache links them after only the
    runtime set-up (prepare_cached_load), never installing numba's registries, and every
    family computes bit for bit what it computes after numba's own full refresh; the
    runtime's compiled part is written once and read by the next processes (a damaged copy
    is compiled again)."""
    env = {**os.environ, "PYTHONPATH": str(SRC)}

    def probe(mode: str) -> dict:
        out = subprocess.run([sys.executable, "-c", LIGHT_PROBE, mode], env=env,
                             capture_output=True, text=True, check=True)
        return json.loads(out.stdout.splitlines()[-1])

    from numba.core.registry import cpu_target

    runtime = _numba.runtime_file(cpu_target.target_context.codegen())
    runtime.unlink(missing_ok=True)
    probe("light")  # fills the cache where it is cold (a miss refreshes fully)
    written = runtime.read_bytes()  # the runtime's object code, compiled by that process
    light, full = probe("light"), probe("full")
    assert light["misses"] == full["misses"] == 0
    assert not light["registries"] and full["registries"]
    assert light["digest"] == full["digest"]
    # the runtime read from the file (above) computes the same; a damaged file is a miss:
    # compiled again and written anew
    assert runtime.read_bytes() == written
    runtime.write_bytes(written[:-10] + b"0123456789")
    assert probe("light")["digest"] == full["digest"]
    assert _numba._read_runtime(runtime) is not None


# Two processes compile numba's quicksort once for a sort and once for an argsort; the second
# first draws ``shift`` function ids, so for one of the shifts numba's own counter gives both
# the same mangled name (numba issue #10486). A third process loads both kernels from the
# cache: under the counter the argsort ran the sort's code (or the reverse).
_SORTS = textwrap.dedent("""
    import numba, numpy as np

    @numba.njit(cache=True)
    def f_sort(a):
        b = a.copy()
        b.sort()
        return b

    @numba.njit(cache=True)
    def f_argsort(a):
        return np.argsort(a)
""")
_COMPILE = textwrap.dedent("""
    import importlib, sys
    import labelwise.metrics._kernels  # a labelwise kernel module: installs labelwise's ids
    from numba.core.bytecode import FunctionIdentity
    shift, which = int(sys.argv[1]), sys.argv[2:]
    for _ in range(shift):
        next(FunctionIdentity._unique_ids)
    import numpy as np
    for name in which:
        module, func = name.split(".")
        getattr(importlib.import_module(module), func)(np.array([5, 3, 9, 1, 7]))
""")
_LOAD = textwrap.dedent("""
    import importlib, json, sys
    import labelwise.metrics._kernels
    import numpy as np
    a = np.array([5, 3, 9, 1, 7])
    out = {}
    for name in sys.argv[1:]:
        module, func = name.split(".")
        f = getattr(importlib.import_module(module), func)
        out[name] = [f(a).tolist(), sum(f.stats.cache_hits.values())]
    print(json.dumps(out))
""")


def test_kernels_compiled_in_different_processes_never_share_a_function_name(tmp_path):
    shifts = range(5)
    for s in shifts:
        (tmp_path / f"sorts_{s}.py").write_text(_SORTS)
    env = _env(SRC, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(SRC)])

    def run(script, *args):
        return subprocess.run([sys.executable, "-c", script, *map(str, args)], env=env,
                              cwd=tmp_path, capture_output=True, text=True, check=True).stdout

    run(_COMPILE, 0, *(f"sorts_{s}.f_sort" for s in shifts))
    for s in shifts:
        run(_COMPILE, s, f"sorts_{s}.f_argsort")
    names = [f"sorts_{s}.{f}" for s in shifts for f in ("f_sort", "f_argsort")]
    out = json.loads(run(_LOAD, *names).splitlines()[-1])
    for name in names:
        result, hits = out[name]
        assert hits == 1, name  # loaded from the cache, not compiled again
        expected = [1, 3, 5, 7, 9] if name.endswith("f_sort") else [3, 1, 0, 4, 2]
        assert result == expected, name
    from numba.core.bytecode import FunctionIdentity

    import labelwise.metrics._kernels  # noqa: F401  (a kernel module: installs the ids)

    assert isinstance(FunctionIdentity._unique_ids, _numba._RandomIds)
    ids = {next(FunctionIdentity._unique_ids) for _ in range(1000)}
    assert len(ids) == 1000 and min(ids) >= 2 ** 63 > max(ids) - 2 ** 64


OVR_FIT_PROBE = textwrap.dedent("""
    import hashlib, json, sys
    import numpy as np, scipy.sparse as sp
    if sys.argv[1] == "eager":  # numba's own way: the module is there when a kernel loads
        import numba.np.arrayobj  # noqa: F401
    from labelwise.models import OneVsRest
    rng = np.random.default_rng(0)
    X = rng.standard_normal((120, 9)).astype(np.float32)
    Y = sp.csr_matrix((X @ rng.standard_normal((9, 12)) > 0.8).astype(np.float32))
    model = OneVsRest(n_threads=2, random_state=1).fit(X, Y)
    S = model.decision_function(X, k=3)
    digest = hashlib.sha256()
    for a in (model.coef_.indptr, model.coef_.indices, model.coef_.data, model.intercept_,
              S.indices, S.data):
        digest.update(np.ascontiguousarray(a).tobytes())
    imported = "numba.np.arrayobj" in sys.modules
    import numba

    @numba.njit(cache=False)  # compiled now, allocating: the real module serves it
    def zeros_plus(n):
        return np.zeros(n) + 1.0

    again = OneVsRest(n_threads=2, random_state=1).fit(X, Y)
    print(json.dumps({"digest": digest.hexdigest(), "arrayobj_at_fit": imported,
                      "compiled_after": float(zeros_plus(3).sum()),
                      "same_again": bool(np.array_equal(again.coef_.data, model.coef_.data))}))
""")


def test_cached_kernels_load_without_importing_numbas_array_module():
    """A kernel read from the cache brings the environments of numba's own functions it calls;
    their modules (numba.np.arrayobj: ~15 ms) are not imported for them, and the model is
    the one of numba's own way (the module imported first), bit for bit; code compiled
    afterwards still gets the real module."""
    env = _env(SRC)
    run = [sys.executable, "-c", OVR_FIT_PROBE]
    subprocess.run(run + ["lazy"], env=env, capture_output=True, check=True)  # fills the cache
    lazy = json.loads(subprocess.run(run + ["lazy"], env=env, capture_output=True, text=True,
                                     check=True).stdout.splitlines()[-1])
    eager = json.loads(subprocess.run(run + ["eager"], env=env, capture_output=True, text=True,
                                      check=True).stdout.splitlines()[-1])
    assert lazy["arrayobj_at_fit"] is False and eager["arrayobj_at_fit"] is True
    assert lazy["digest"] == eager["digest"]
    assert lazy["compiled_after"] == eager["compiled_after"] == 3.0
    assert lazy["same_again"] and eager["same_again"]


SPARSE_FAMILIES_PROBE = textwrap.dedent("""
    import json
    import numpy as np, scipy.sparse as sp
    from labelwise.models import ClassifierChain, RAkEL
    from numba.core.runtime import rtsys
    rng = np.random.default_rng(0)
    X = sp.random(300, 1500, density=0.01, format="csr", dtype=np.float32, random_state=3)
    Y = np.zeros((300, 7), np.float32)  # at most two labels a row: fewer than 8 classes in
    for i in range(300):                 # any labelset of 3, so no lockstep block
        Y[i, rng.choice(7, size=i % 3, replace=False)] = 1.0
    Y = sp.csr_matrix(Y)
    ClassifierChain(n_threads=2).fit(X, Y)
    RAkEL(n_threads=2).fit(X, Y)
    print(json.dumps(bool(rtsys._init)))
""")


def test_a_chain_and_rakel_on_small_sparse_data_link_no_numba_runtime():
    """A classifier chain's positions and RAkEL's labelsets on small sparse data are solved
    by ``_dcd.solve_into``, which allocates nothing and is compiled without numba's runtime
    (as the row solvers it calls): a fresh process fitting them (kernels from the cache)
    never sets the runtime up (about 4 ms of a fresh fit on a 2-core machine)."""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    run = [sys.executable, "-c", SPARSE_FAMILIES_PROBE]
    subprocess.run(run, env=env, capture_output=True, check=True)  # (fills a cold cache)
    out = subprocess.run(run, env=env, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.splitlines()[-1]) is False
