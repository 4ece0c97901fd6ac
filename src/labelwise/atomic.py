"""Atomic file and directory writes: a crash never leaves a half-written file in place.

Data goes to a temporary sibling, is flushed and fsync'ed, then renamed over the target
(``os.replace`` is atomic on POSIX and Windows when both live on one file system).

Temporary siblings are named ``.<target name>.<pid>.<random>.lwtmp`` (and an old directory
moved aside ``.<target name>.<pid>.<random>.lwold``), and their writer holds an exclusive
``flock`` on them while it works. A process killed mid-write (``kill -9``) leaves one behind
and its lock goes with it; a process's first write into a folder removes the siblings there of
exactly this naming whose process is gone and whose lock is free (without ``fcntl``: whose
process is gone and which are older than the current process), and nothing else. Readers
never take them for data: the names are hidden and end in ``.lwtmp``/``.lwold``.

A directory is replaced only when it is empty or holds one of the files that mark what
labelwise writes (:data:`LABELWISE_MARKERS`): saving a model onto a folder of the user's
files raises :class:`OutputExistsError` instead of deleting them. Each save names the kinds
it may replace: a model replaces a model (:data:`MODEL_MARKERS`), a featurizer a featurizer
(:data:`FEATURIZER_MARKERS`), a pipeline a pipeline or a plain model folder
(:data:`PIPELINE_MARKERS`: the commands that take a plain model folder, e.g. ``labels add``,
write it back as a pipeline); a folder holding another labelwise kind is refused, naming it.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from .errors import OutputExistsError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: fall back on pid and age
    fcntl = None  # type: ignore[assignment]

__all__ = ["atomic_write", "atomic_directory", "check_replaceable", "remove_stale",
           "OutputExistsError", "LABELWISE_MARKERS", "MODEL_MARKERS", "FEATURIZER_MARKERS",
           "PIPELINE_MARKERS"]

#: a folder holding one of these at its top is a model, pipeline or featurizer labelwise
#: wrote, and may be replaced by a new save (``labelwise split`` passes its own split.json)
LABELWISE_MARKERS: tuple[str, ...] = ("manifest.json", "pipeline.json", "featurizer.json")
#: what each kind of save may replace (module docstring)
MODEL_MARKERS: tuple[str, ...] = ("manifest.json",)
FEATURIZER_MARKERS: tuple[str, ...] = ("featurizer.json",)
PIPELINE_MARKERS: tuple[str, ...] = ("pipeline.json", "manifest.json")
_KINDS = {"manifest.json": "model", "pipeline.json": "pipeline", "featurizer.json": "featurizer"}

#: this module's import time: temporaries older than it were not made by this process
_STARTED = time.time()
#: the temporary siblings' names: .<target name>.<pid>.<8 hex>.lwtmp|lwold
_PATTERN = re.compile(r"\..+\.(\d+)\.[0-9a-f]{8}\.(?:lwtmp|lwold)", re.DOTALL)
#: folders already cleaned of stale temporaries by this process
_CLEANED: set[str] = set()



def check_replaceable(path: str | os.PathLike[str], *,
                      markers: Iterable[str] = LABELWISE_MARKERS,
                      inputs: Iterable[str | os.PathLike[str]] = (), what: str = "output") -> None:
    """Refuse (:class:`OutputExistsError`) to replace ``path`` unless it does not exist, is an
    empty folder, or is a folder holding one of ``markers``; and refuse when any of ``inputs``
    is ``path`` or lies inside it (a command must not delete what it reads)."""
    target = Path(path)
    for src in inputs:
        if src is None or not os.path.exists(src):
            continue
        if _same_or_inside(Path(src), target):
            raise OutputExistsError(f"{what} {target}: holds or is the input {src}; refusing to "
                                    "replace it (choose another path)")
    if not (target.exists() or target.is_symlink()):
        return
    markers = tuple(markers)
    if target.is_dir() and not target.is_symlink():
        if not any(True for _ in target.iterdir()):
            return
        if any((target / m).is_file() for m in markers):
            return
        other = [m for m in LABELWISE_MARKERS if (target / m).is_file()]
        if other:
            kinds = sorted({_KINDS.get(m, m) for m in markers})
            raise OutputExistsError(
                f"{what} {target}: holds a saved labelwise {_KINDS[other[0]]} ({other[0]}), "
                f"not a {' or '.join(kinds)}; refusing to replace it (choose a new or empty "
                "folder, or delete it first)")
        raise OutputExistsError(
            f"{what} {target}: exists and is not a folder labelwise wrote (none of "
            f"{', '.join(markers)}); refusing to replace it (choose a new or empty folder)")
    raise OutputExistsError(f"{what} {target}: exists and is not a folder; refusing to "
                            "replace it (choose a new or empty folder)")


def _same_or_inside(src: Path, target: Path) -> bool:
    try:
        s, t = src.resolve(), target.resolve()
    except OSError:
        return False
    return s == t or t in s.parents


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "w", **kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary sibling of ``path`` for writing; on success rename it to ``path``.

    On any exception the temporary file is removed and ``path`` is left untouched.
    """
    if not any(c in mode for c in "wx"):
        raise ValueError(f"atomic_write needs a write mode, got {mode!r}")
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise OutputExistsError(f"output {target}: is a folder; expected a file path")
    _clean_once(target)
    tmp = _sibling(target, "lwtmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    _lock(fd)  # held until this function ends: the sibling is in use
    try:
        os.chmod(tmp, _file_mode(target))  # keep the target's or the umask's mode
        with open(tmp, mode.replace("x", "w"), **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        if "x" in mode and target.exists():
            raise FileExistsError(str(target))
        os.replace(tmp, target)
        _fsync_dir(parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike[str], *,
                     markers: Iterable[str] = LABELWISE_MARKERS) -> Iterator[Path]:
    """Yield a fresh temporary sibling directory; on success it replaces ``path``.

    An existing ``path`` must be empty or hold one of ``markers`` (see
    :func:`check_replaceable`); it is moved aside first and removed only after the new
    directory is in place, so at every moment either the old or the new directory exists whole.
    """
    target = Path(path)
    markers = tuple(markers)
    check_replaceable(target, markers=markers)
    target.parent.mkdir(parents=True, exist_ok=True)
    _clean_once(target)
    tmp = _sibling(target, "lwtmp")
    tmp.mkdir()
    fd = os.open(tmp, os.O_RDONLY)
    _lock(fd)
    try:
        yield tmp
        for f in tmp.rglob("*"):
            if f.is_file():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
        old = None
        if target.exists():
            check_replaceable(target, markers=markers)  # it may have changed meanwhile
            old = _sibling(target, "lwold")
            os.replace(target, old)
        os.replace(tmp, target)
        _fsync_dir(target.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        os.close(fd)


def _lock(fd: int) -> None:
    if fcntl is not None:
        with contextlib.suppress(OSError):  # a file system without locks: pid and age decide
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _lock_free(path: str) -> bool:
    """Whether no process holds the writer's lock on ``path`` (False when unsure)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # held (EWOULDBLOCK), or locks not supported: keep it
        return False
    else:
        return True
    finally:
        os.close(fd)


def _sibling(target: Path, kind: str) -> Path:
    parent = target.parent if str(target.parent) else Path(".")
    return parent / f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.{kind}"


def remove_stale(folder: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporary siblings that earlier, killed writes left in ``folder``: only names
    of this module's pattern whose process is gone and whose writer's lock is free (without
    fcntl: which are older than this process). Returns what was removed."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        m = _PATTERN.fullmatch(entry.name)
        if m is None or int(m.group(1)) == os.getpid() or _alive(int(m.group(1))):
            continue
        try:
            if fcntl is None:
                if entry.stat(follow_symlinks=False).st_mtime >= _STARTED:
                    continue
            elif entry.is_symlink() or not _lock_free(entry.path):
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)
        except OSError:
            continue
        removed.append(Path(entry.path))
    return removed


def _clean_once(target: Path) -> None:
    """:func:`remove_stale` on the target's folder, once per folder and process (a folder of
    many files written one by one is not scanned at every write)."""
    parent = target.parent if str(target.parent) else Path(".")
    try:
        key = str(parent.resolve())
    except OSError:
        return
    if key not in _CLEANED:
        _CLEANED.add(key)
        remove_stale(parent)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # exists (another user's) or cannot tell: keep its files
    return True


def _file_mode(target: Path) -> int:
    try:
        return target.stat().st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _fsync_dir(d: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
