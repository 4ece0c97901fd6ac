"""Getting dataset files onto disk, verified.

Where files come from
---------------------
- The *data home*, ``$LABELWISE_DATA_HOME`` or ``~/.cache/labelwise``, laid out like
  ``../shared/datasets``: ``<data home>/<dataset folder>/<file path>``. A file already there
  whose sha256 matches the registry is used as it is.
- Otherwise, when ``$LABELWISE_DATASETS_MIRROR`` is set, from that mirror only (never the
  internet behind its back). A mirror is a base URL (``http://``, ``https://``, ``file://``)
  or a local folder, both laid out like the data home. A local-folder mirror is read in
  place: its files are verified (sha256) and handed to the readers without copying; ``fetch``
  copies them into the data home.
- Otherwise from the canonical URL: the raw file at the pinned commit on GitHub. A file
  without one is a member of an archive of the same folder and is extracted from it.

Every download goes to a temporary sibling of the target, is hashed while written, checked
against the expected size and sha256, fsync'ed and renamed into place; on any failure the
temporary file is removed, so a partial or corrupt download is never left where a later run
would take it for the real file. A mismatch raises :class:`~labelwise.errors.DatasetError`
naming the file, the expected and the actual hash.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from ..errors import DatasetError
from ..files import sha256_file
from ..progress import progress_enabled
from .registry import FileInfo

__all__ = [
    "data_home",
    "mirror",
    "sha256_of",
    "download",
    "verified",
    "TIMEOUT_S",
]

#: seconds before a stalled connection is given up
TIMEOUT_S = 60.0
CHUNK = 1 << 20
#: files above this size show a progress line on stderr when progress is on
#: (:func:`labelwise.progress.show_progress`: the CLI without ``--quiet``, on a terminal)
PROGRESS_MIN_BYTES = 4 << 20

_HASHES: dict[tuple[str, int, int, int], str] = {}


def data_home() -> Path:
    """``$LABELWISE_DATA_HOME`` or ``~/.cache/labelwise`` (not created here)."""
    env = os.environ.get("LABELWISE_DATA_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "labelwise"


def mirror() -> str | Path | None:
    """``$LABELWISE_DATASETS_MIRROR``: a base URL (str), a local folder (Path), or None."""
    env = os.environ.get("LABELWISE_DATASETS_MIRROR", "").strip()
    if not env:
        return None
    scheme = urllib.parse.urlsplit(env).scheme.lower()
    if scheme in ("http", "https", "file"):
        return env.rstrip("/")
    if len(scheme) > 1:  # 'ftp:', 's3:' ... (a one-letter scheme is a Windows drive)
        raise DatasetError(
            f"LABELWISE_DATASETS_MIRROR={env!r}: expected an http(s):// or file:// URL or a folder"
        )
    path = Path(env).expanduser()
    if not path.is_dir():
        raise DatasetError(f"LABELWISE_DATASETS_MIRROR={env!r}: no such folder")
    return path


def sha256_of(path: Path) -> str:
    """sha256 of a file; remembered per (path, size, mtime, inode) within one process."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)
    if key not in _HASHES:
        _HASHES[key] = sha256_file(path)
    return _HASHES[key]


def verified(path: Path, info: FileInfo) -> bool:
    """Whether ``path`` is a file of the expected size and sha256."""
    if not path.is_file():
        return False
    if info.size is not None and path.stat().st_size != info.size:
        return False
    return sha256_of(path) == info.sha256


def mirror_url(base: str, folder: str, path: str) -> str:
    return f"{base}/{urllib.parse.quote(folder)}/{urllib.parse.quote(path)}"


def download(url: str, target: Path, info: FileInfo) -> Path:
    """Download ``url`` to ``target`` atomically, checking size and sha256."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        response = urllib.request.urlopen(url, timeout=TIMEOUT_S)  # noqa: S310 (http/file only)
    except urllib.error.HTTPError as e:
        raise DatasetError(f"{info.path}: HTTP {e.code} {e.reason} from {url}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        hint = ("" if os.environ.get("LABELWISE_DATASETS_MIRROR", "").strip() else
                " (offline? set LABELWISE_DATASETS_MIRROR to a local copy: a folder laid out "
                "like the upstream folders, e.g. ../shared/datasets, or an http(s):// URL)")
        raise DatasetError(f"{info.path}: cannot download {url}: {reason}{hint}") from None
    with response:
        length = response.headers.get("Content-Length")
        expected = int(length) if length and length.isdigit() else info.size
        return _write_verified(response, target, info, source=url, expected_bytes=expected)


def extract_member(archive: Path, target: Path, info: FileInfo) -> Path:
    """Extract ``info.member`` of a tar archive to ``target`` atomically, checking its sha256."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, "r:*") as tar:
            try:
                member = tar.getmember(info.member or "")
            except KeyError:
                raise DatasetError(f"{archive}: has no member {info.member!r}") from None
            if not member.isfile():
                raise DatasetError(f"{archive}: member {info.member!r} is not a regular file")
            f = tar.extractfile(member)
            if f is None:  # pragma: no cover - isfile() members always have a file object
                raise DatasetError(f"{archive}: cannot read member {info.member!r}")
            with f:
                return _write_verified(
                    f, target, info, source=f"{archive}:{info.member}", expected_bytes=member.size
                )
    except tarfile.TarError as e:
        raise DatasetError(f"{archive}: not a readable tar archive: {e}") from None


def _write_verified(src, target: Path, info: FileInfo, *, source: str, expected_bytes) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    h = hashlib.sha256()
    received = 0
    show = (  # only where progress is on (the CLI without --quiet, on a terminal)
        expected_bytes is not None and expected_bytes >= PROGRESS_MIN_BYTES and progress_enabled()
    )
    try:
        with os.fdopen(fd, "wb") as out:
            while True:
                try:
                    chunk = src.read(CHUNK)
                except (OSError, EOFError) as e:  # connection reset, IncompleteRead, bad gzip
                    raise DatasetError(
                        f"{info.path}: reading {source} failed after {received} bytes: {e!r}"
                    ) from None
                if not chunk:
                    break
                out.write(chunk)
                h.update(chunk)
                received += len(chunk)
                if show:
                    pct = 100.0 * received / expected_bytes
                    print(f"\r{info.path}: {received >> 20} MiB ({pct:.0f}%)", end="", file=sys.stderr)
            out.flush()
            os.fsync(out.fileno())
        if show:
            print(file=sys.stderr)
        if expected_bytes is not None and received != expected_bytes:
            raise DatasetError(
                f"{info.path}: got {received} bytes from {source}, expected {expected_bytes} "
                "(connection closed early?)"
            )
        actual = h.hexdigest()
        if actual != info.sha256:
            raise DatasetError(
                f"{info.path}: sha256 mismatch for {source}: expected {info.sha256}, got {actual}"
            )
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return target
