"""The dataset registry: ``load("mulan-yeast", split="test")`` gives a verified Dataset.

Names and splits are listed by :func:`list_datasets` (``labelwise datasets list``); a name may
carry its split after a colon (``mulan-yeast:test``, see :func:`parse_name`). Files are
found, downloaded and verified as described in :mod:`labelwise.datasets.download`:

1. a file in the data home (``$LABELWISE_DATA_HOME`` or ``~/.cache/labelwise``) with the
   right sha256 is used;
2. else, with ``$LABELWISE_DATASETS_MIRROR`` set, the mirror: a local folder laid out like
   ``../shared/datasets`` is verified and read in place (nothing copied), a URL mirror is
   downloaded from into the data home;
3. else the canonical upstream URL (raw GitHub file at a pinned commit).

Every file is checked against the size and sha256 of the registry
(:mod:`labelwise.datasets.registry`) before any reader sees it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import DatasetError
from .download import data_home
from .download import download as _download
from .download import extract_member as _extract_member
from .download import mirror as _mirror
from .download import mirror_url as _mirror_url
from .download import verified as _verified
from .registry import REGISTRY, DatasetInfo, FileInfo, Ref, folder_files, get, names

__all__ = ["load", "fetch", "list_datasets", "parse_name", "data_home"]


def parse_name(name: str) -> tuple[str, str | None]:
    """``"mulan-yeast:test"`` -> ``("mulan-yeast", "test")``; no split -> ``(name, None)``.

    Raises DatasetError for an unknown dataset or split, listing the known ones.
    """
    base, sep, split = name.partition(":")
    info = get(base)
    if not sep:
        return base, None
    _check_split(info, split)
    return base, split


def _check_split(info: DatasetInfo, split: str) -> None:
    if split not in info.splits:
        raise DatasetError(
            f"dataset {info.name!r} has no split {split!r}; known splits: "
            f"{', '.join(info.splits)}"
        )


def load(name: str, *, split: str | None = None, **options: Any):
    """Load one split of a registered dataset (default: the dataset's default split).

    ``options`` override the registry's reader options (e.g. ``text="body"`` for
    ``enron-berkeley-annotated``).
    """
    if ":" in name:
        if split is not None:
            raise DatasetError(f"split given twice: in {name!r} and split={split!r}")
        name, split = parse_name(name)
    info = get(name)
    split = info.default_split if split is None else split
    _check_split(info, split)
    spec = info.splits[split]
    root = _materialise(info, info.split_files(split))
    opts = {
        k: (str(root / v.path) if isinstance(v, Ref) else v) for k, v in spec.options.items()
    }
    opts.update(options)
    path = root / spec.path
    from .loaders import LOADERS

    if spec.format in LOADERS:
        ds = LOADERS[spec.format](path, **opts)
    else:
        from ..io import read

        ds = read(path, format=spec.format, **opts)
    if spec.rows is not None:
        start, stop = spec.rows
        if ds.n_samples < stop:
            raise DatasetError(
                f"{name}:{split}: {path} has {ds.n_samples} rows, expected at least {stop}"
            )
        ds = ds.subset(range(start, stop))
    ds.meta = {**ds.meta, "dataset": name, "split": split}
    return ds


def fetch(name: str) -> list[Path]:
    """Download (or copy from the mirror) every file of dataset ``name`` into the data home.

    Returns the paths of the verified files.
    """
    info = get(name.partition(":")[0])
    home = data_home() / info.folder
    _materialise(info, info.files, into_home=True)
    return [home / f.path for f in info.files]


def list_datasets() -> list[dict[str, Any]]:
    """One dict per dataset: name, splits (name -> rows), default split, labels, features,
    bytes, and whether every file is in the data home (checked by presence and size only)."""
    home = data_home()
    out = []
    for n in names():
        info = REGISTRY[n]
        folder = home / info.folder
        cached = all(
            (folder / f.path).is_file()
            and (f.size is None or (folder / f.path).stat().st_size == f.size)
            for f in info.files
        )
        out.append(
            {
                "name": n,
                "splits": {s: sp.n_samples for s, sp in info.splits.items()},
                "default_split": info.default_split,
                "n_labels": info.n_labels,
                "n_features": info.n_features,
                "bytes": info.size,
                "n_files": len(info.files),
                "cached": cached,
                "description": info.description,
                "upstream": info.upstream,
            }
        )
    return out


# ---------------------------------------------------------------------- resolution
def _materialise(
    info: DatasetInfo, files: tuple[FileInfo, ...], *, into_home: bool = False
) -> Path:
    """Make ``files`` available, verified; return the folder to read them from."""
    home = data_home() / info.folder
    missing = [f for f in files if not _verified(home / f.path, f)]
    if not missing:
        return home
    m = _mirror()
    if isinstance(m, Path):
        local = m / info.folder
        bad = [f for f in files if not _verified(local / f.path, f)]
        if not bad and not into_home:
            return local  # read in place: every file of the split is there and verified
        for f in missing:
            src = local / f.path
            if not _verified(src, f):
                _raise_bad_local(src, f)
            (home / f.path).parent.mkdir(parents=True, exist_ok=True)
            _download(src.resolve().as_uri(), home / f.path, f)
        return home
    by_path = {f.path: f for f in folder_files(info.folder)}
    for f in missing:
        target = home / f.path
        if m is not None:
            _download(_mirror_url(m, info.folder, f.path), target, f)
        elif f.url is not None:
            _download(f.url, target, f)
        elif f.archive is not None:
            archive = by_path[f.archive]
            if not _verified(home / archive.path, archive):
                _download(archive.url or "", home / archive.path, archive)
            _extract_member(home / archive.path, target, f)
        else:  # pragma: no cover - every registry file has a URL or an archive
            raise DatasetError(f"{info.name}: no source for {f.path}")
    return home


def _raise_bad_local(src: Path, f: FileInfo):
    from .download import sha256_of

    if not src.is_file():
        raise DatasetError(f"{f.path}: not in the mirror folder ({src} is absent)")
    actual = sha256_of(src)
    if actual != f.sha256:
        raise DatasetError(f"{src}: sha256 mismatch: expected {f.sha256}, got {actual}")
    raise DatasetError(f"{src}: size {src.stat().st_size} bytes, expected {f.size}")
