"""The table of registered datasets: where each file comes from, its size and sha256, and how
each split is read.

Every dataset lives in one *folder* (the same name as in ``../shared/datasets`` and in a
mirror), several datasets may share a folder (``goemotions``, ``goemotions-ekman``,
``goemotions-group``). A file of a folder is known by its path relative to the folder, its
size in bytes, its sha256, and its canonical URL: the raw file at the pinned commit of the
upstream GitHub repository,
``https://raw.githubusercontent.com/<owner>/<repo>/<commit>/<upstream path>``.
A file without an upstream URL of its own is a member of an archive file of the same folder
(cooking-stackexchange's ``extracted/``); it is extracted from the verified archive.

A split says which reader builds the :class:`~labelwise.Dataset`:

- ``format`` is a :mod:`labelwise.io` reader name (``arff``, ``tsv``, ``fasttext``, ...) or a
  custom loader of :mod:`labelwise.datasets.loaders` (``enron-berkeley``, ``annif-titles``,
  ``annif-fulltext``);
- ``path`` is the file (or folder) given to the reader, relative to the dataset folder;
- ``options`` are keyword options of the reader; a :class:`Ref` value is a file of the same
  folder, replaced by its absolute path when the split is read;
- ``rows`` keeps a slice ``[start, stop)`` of the rows read (cooking-stackexchange's
  first 12,404 / last 3,000 lines, as in the fastText tutorial), keeping the whole label space;
- ``n_samples`` is the number of rows the split holds (from the folder's README.txt).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..errors import DatasetError
from .checksums import FILE_TABLES

__all__ = [
    "FileInfo",
    "Ref",
    "Split",
    "DatasetInfo",
    "REGISTRY",
    "get",
    "names",
    "folder_files",
]

RAW = "https://raw.githubusercontent.com"


@dataclass(frozen=True)
class FileInfo:
    """One file of a dataset folder."""

    path: str  #: relative to the dataset folder, '/'-separated
    sha256: str
    size: int | None = None  #: bytes; None where the source lists only the hash
    url: str | None = None  #: canonical download URL
    archive: str | None = None  #: path of the archive (same folder) holding this file
    member: str | None = None  #: member name inside ``archive``


@dataclass(frozen=True)
class Ref:
    """A reader option that names a file of the dataset folder (resolved to a path on load)."""

    path: str


@dataclass(frozen=True)
class Split:
    format: str
    path: str
    n_samples: int
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    files: tuple[str, ...] = ()  #: files needed besides ``path`` and the Ref options
    rows: tuple[int, int] | None = None
    n_labels: int | None = None  #: where it differs from the dataset's ``n_labels``


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    folder: str
    description: str
    splits: Mapping[str, Split]
    default_split: str
    n_labels: int
    n_features: int  #: 0 for raw text
    upstream: str  #: 'owner/repo@commit:path' of the main source, for people
    license: str
    #: the dataset's files where it shares its folder: paths or 'dir/' prefixes (None: all)
    only: tuple[str, ...] | None = None

    @property
    def files(self) -> tuple[FileInfo, ...]:
        """Every file of the dataset (what ``fetch`` downloads)."""
        every = folder_files(self.folder)
        if self.only is None:
            return every
        return tuple(
            f for f in every
            if any(f.path == p or (p.endswith("/") and f.path.startswith(p)) for p in self.only)
        )

    def split_files(self, split: str) -> tuple[FileInfo, ...]:
        """The files one split needs: its path (a file, or every file under a folder), its
        extra files and the files its Ref options name."""
        s = self.splits[split]
        by_path = {f.path: f for f in self.files}
        wanted: list[str] = []
        for p in (s.path, *s.files, *(v.path for v in s.options.values() if isinstance(v, Ref))):
            if p in by_path:
                wanted.append(p)
            else:  # a folder: every file under it
                prefix = p.rstrip("/") + "/"
                inside = [q for q in by_path if q.startswith(prefix)]
                if not inside:
                    raise DatasetError(f"{self.name}:{split}: registry names unknown file {p!r}")
                wanted.extend(inside)
        out: dict[str, FileInfo] = {}
        for p in wanted:
            out[p] = by_path[p]
        return tuple(out.values())

    def labels_in(self, split: str) -> int:
        """Number of labels of one split's label space."""
        n = self.splits[split].n_labels
        return self.n_labels if n is None else n

    @property
    def size(self) -> int:
        """Total bytes of the folder's files (where sizes are known)."""
        return sum(f.size or 0 for f in self.files)


# ---------------------------------------------------------------------- file tables
def _github(repo: str, commit: str, prefix: str):
    return lambda path: f"{RAW}/{repo}/{commit}/{prefix}{path}"


_MULAN = "tsoumakas/mulan", "43f6389095ad71984264db4387a8074b22bc7d4a"
_GOEMO = "monologg/GoEmotions-pytorch", "b75f9d3a8b76bc1060687925b04ca98a1b8ea66b"
_GOOGLE = "google-research/google-research", "7c35f3f048c1bbf1416bf12491e4a2e528f2f988"
_REUTERS = "colibri17/TextCategorization", "b6c2ca3d46a2540843400890792e5165448b4516"
_HMC = "EGiunchiglia/C-HMCNN", "e887855ab4b3b8f22e4fafc80a0a33c1d1ac0041"
_ANNIF = "NatLibFi/Annif", "f6030a3cb74900d856970a8162beb567f0f9b749"
_NAPKIN = "mwydmuch/napkinXC", "e95fb3fd505c164366d373f3f526b00d7b3e4165"
_COOKING = "HuStanding/ml", "890d481df3da334b1f3b13ce43eb50df829915b7"
_ENRON_B = "Giskard-AI/giskard-examples", "e300e4b0b2f0474458590357ea9fbfd8340ca029"

MULAN_FOLDERS = {
    "mulan-emotions": "emotions",
    "mulan-scene": "scene",
    "mulan-yeast": "yeast",
    "mulan-enron": "enron",
    "mulan-medical": "medical",
    "mulan-bibtex": "bibtex",
    "mulan-delicious": "delicious",
    "mulan-corel5k": "corel5k",
    "mulan-tmc2007": "tmc2007",
}

#: sha256 of the packaged copy of enron-berkeley-annotated's SHA256SUMS (its README pins it).
ENRON_MANIFEST_SHA256 = "497c92aaa03efb838dee3d26cf6a35ba7c19d1de8d425179fbaccca35b8fcca6"
ENRON_MANIFEST = Path(__file__).with_name("enron-berkeley-annotated.SHA256SUMS")


def _url_of(folder: str, path: str) -> str | None:
    if folder in MULAN_FOLDERS:
        return _github(*_MULAN, f"data/multi-label/{MULAN_FOLDERS[folder]}/")(path)
    if folder == "goemotions":
        if path == "ekman_mapping.json":
            return _github(*_GOOGLE, "goemotions/data/")(path)
        return _github(*_GOEMO, "data/")(path)
    if folder == "reuters21578":
        return _github(*_REUTERS, "reuters21578/")(path.removeprefix("original/"))
    if folder == "hmc-clus":
        return _github(*_HMC, "HMC_data/")(path)
    if folder == "annif-archaeology-fi":
        return _github(*_ANNIF, "tests/corpora/")(path)
    if folder == "libsvm-yeast-napkinxc":
        return _github(*_NAPKIN, "python/tests/test_data/yeast/")(path)
    if folder == "cooking-stackexchange":
        return None if path.startswith("extracted/") else _github(*_COOKING, "fasttext/data/")(path)
    if folder == "enron-berkeley-annotated":
        return _github(*_ENRON_B, "")(path)
    raise DatasetError(f"no upstream known for folder {folder!r}")  # pragma: no cover


@cache
def folder_files(folder: str) -> tuple[FileInfo, ...]:
    """The files of one dataset folder, with sizes, hashes and canonical URLs."""
    if folder == "enron-berkeley-annotated":
        return _enron_manifest()
    out = []
    for line in FILE_TABLES[folder].splitlines():
        path, size, sha = line.split()
        archive = member = None
        url = _url_of(folder, path)
        if url is None:  # cooking-stackexchange/extracted/*: members of the tar.gz
            archive, member = "cooking.stackexchange.tar.gz", path.removeprefix("extracted/")
        out.append(FileInfo(path, sha, int(size), url, archive, member))
    return tuple(out)


def _enron_manifest() -> tuple[FileInfo, ...]:
    data = ENRON_MANIFEST.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != ENRON_MANIFEST_SHA256:
        raise DatasetError(
            f"{ENRON_MANIFEST}: sha256 {actual} differs from the pinned {ENRON_MANIFEST_SHA256}; "
            "reinstall labelwise"
        )
    out = []
    for line in data.decode("ascii").splitlines():
        sha, path = line.split(None, 1)
        path = path.lstrip("*")
        out.append(FileInfo(path, sha, None, _url_of("enron-berkeley-annotated", path)))
    return tuple(out)


# ---------------------------------------------------------------------- datasets
def _freeze(d: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(d))


def _mulan(
    name: str,
    description: str,
    sizes: Mapping[str, tuple[str, int]],
    *,
    xml: str,
    n_labels: int,
    n_features: int,
) -> DatasetInfo:
    sub = MULAN_FOLDERS[name]
    splits = {
        s: Split("arff", path, n, _freeze({"xml": Ref(xml)})) for s, (path, n) in sizes.items()
    }
    return DatasetInfo(
        name,
        name,
        description,
        _freeze(splits),
        "train",
        n_labels,
        n_features,
        f"{_MULAN[0]}@{_MULAN[1][:12]}:data/multi-label/{sub}/",
        "research-use benchmark data (none stated); MULAN code GPL-3.0",
    )


def _goemotions(variant: str, n_labels: int, description: str) -> DatasetInfo:
    sizes = {"train": 43410, "dev": 5426, "test": 5427}
    opts = _freeze(
        {
            "text_column": 0,
            "labels_column": 1,
            "label_sep": ",",
            "label_names": Ref(f"{variant}/labels.txt"),
            "id_column": 2,
            "header": False,
            "quoting": "none",
        }
    )
    splits = {s: Split("tsv", f"{variant}/{s}.tsv", n, opts) for s, n in sizes.items()}
    name = "goemotions" if variant == "original" else f"goemotions-{variant}"
    return DatasetInfo(
        name,
        "goemotions",
        description,
        _freeze(splits),
        "train",
        n_labels,
        0,
        f"{_GOEMO[0]}@{_GOEMO[1][:12]}:data/{variant}/",
        "Apache-2.0 (repositories); Reddit comments",
        (f"{variant}/", "ekman_mapping.json"),
    )


_HMC_SIZES = {  # name -> (train, valid, test, n_features, n_labels); from hmc-clus/README.txt
    "cellcycle": (1628, 848, 1281, 77, 499),
    "church": (1630, 844, 1281, 27, 499),
    "derisi": (1608, 842, 1275, 63, 499),
    "eisen": (1058, 529, 837, 79, 461),
    "expr": (None, 849, 1291, 551, 499),
    "gasch1": (1634, 846, 1284, 173, 499),
    "gasch2": (1639, 849, 1291, 52, 499),
    "pheno": (656, 353, 582, 69, 455),
    "seq": (1701, 879, 1339, 478, 499),
    "spo": (1600, 837, 1266, 80, 499),
}


def _hmc(base: str) -> DatasetInfo:
    train, valid, test, n_features, n_labels = _HMC_SIZES[base]
    folder = f"datasets_FUN/{base}_FUN/{base}_FUN"
    splits = {}
    for split, n in (("train", train), ("valid", valid), ("test", test)):
        if n is not None:
            splits[split] = Split("arff", f"{folder}.{split}.arff", n)
    return DatasetInfo(
        f"hmc-clus-{base}-fun",
        "hmc-clus",
        f"{base}_FUN: yeast functional genomics, FunCat tree hierarchy (Clus HMC, Vens et al. 2008)"
        + ("; no train split (its file is over the copy's size cap)" if train is None else ""),
        _freeze(splits),
        "train" if train is not None else "valid",
        n_labels,
        n_features,
        f"{_HMC[0]}@{_HMC[1][:12]}:HMC_data/datasets_FUN/{base}_FUN/",
        "GPL-3.0 (repository); no separate data licence",
        (f"datasets_FUN/{base}_FUN/",),
    )


def _reuters(split: str, topics: str) -> Mapping[str, Any]:
    return _freeze({"split": split, "topics": topics})


def _build() -> dict[str, DatasetInfo]:
    ds: list[DatasetInfo] = [
        _mulan(
            "mulan-emotions",
            "music clips, 6 emotions (MULAN)",
            {"train": ("emotions-train.arff", 391), "test": ("emotions-test.arff", 202),
             "all": ("emotions.arff", 593)},
            xml="emotions.xml", n_labels=6, n_features=72,
        ),
        _mulan(
            "mulan-scene",
            "images, 6 scene classes (MULAN)",
            {"train": ("scene-train.arff", 1211), "test": ("scene-test.arff", 1196)},
            xml="scene.xml", n_labels=6, n_features=294,
        ),
        _mulan(
            "mulan-yeast",
            "yeast genes, 14 functional classes (MULAN)",
            {"train": ("yeast-train.arff", 1500), "test": ("yeast-test.arff", 917),
             "all": ("yeast.arff", 2417)},
            xml="yeast.xml", n_labels=14, n_features=103,
        ),
        _mulan(
            "mulan-enron",
            "emails, 53 category codes, bag of words (MULAN)",
            {"train": ("enron-train.arff", 1123), "test": ("enron-test.arff", 579),
             "all": ("enron.arff", 1702)},
            xml="enron.xml", n_labels=53, n_features=1001,
        ),
        _mulan(
            "mulan-medical",
            "clinical free text, 45 ICD-9 codes (MULAN)",
            {"train": ("medical-train.arff", 333), "test": ("medical-test.arff", 645),
             "all": ("medical.arff", 978)},
            xml="medical.xml", n_labels=45, n_features=1449,
        ),
        _mulan(
            "mulan-bibtex",
            "BibSonomy bibtex entries, 159 tags (MULAN)",
            {"train": ("bibtex-train.arff", 4880), "test": ("bibtex-test.arff", 2515),
             "all": ("bibtex.arff", 7395)},
            xml="bibtex.xml", n_labels=159, n_features=1836,
        ),
        _mulan(
            "mulan-delicious",
            "del.icio.us web pages, 983 tags (MULAN)",
            {"train": ("delicious-train.arff", 12920), "test": ("delicious-test.arff", 3185),
             "all": ("delicious.arff", 16105)},
            xml="delicious.xml", n_labels=983, n_features=500,
        ),
        _mulan(
            "mulan-corel5k",
            "Corel images, 374 words, 499 visual-word features (MULAN)",
            {"train": ("Corel5k-train-sparse.arff", 4500), "test": ("Corel5k-test-sparse.arff", 500),
             "all": ("Corel5k-sparse.arff", 5000), "test-dense": ("Corel5k-test.arff", 500)},
            xml="Corel5k.xml", n_labels=374, n_features=499,
        ),
        _mulan(
            "mulan-tmc2007",
            "aviation safety reports, 22 labels, top-500 words (MULAN tmc2007-500)",
            {"train": ("tmc2007-500-train.arff", 21519), "test": ("tmc2007-500-test.arff", 7077),
             "all": ("tmc2007-500.arff", 28596)},
            xml="tmc2007-500.xml", n_labels=22, n_features=500,
        ),
        _goemotions("original", 28, "GoEmotions Reddit comments, 27 emotions + neutral"),
        _goemotions("ekman", 7, "GoEmotions mapped to 6 Ekman emotions + neutral"),
        _goemotions("group", 4, "GoEmotions mapped to positive/negative/ambiguous/neutral"),
        DatasetInfo(
            "reuters21578",
            "reuters21578",
            "Reuters-21578 newswire, ModApte split; train/test = the R90 topics (documents "
            "without one left out), train-all/test-all = every ModApte document and topic",
            _freeze(
                {
                    "train": Split("reuters", "original", 7770, _reuters("modapte-train", "r90")),
                    "test": Split("reuters", "original", 3019, _reuters("modapte-test", "r90")),
                    "train-all": Split(
                        "reuters", "original", 9603, _reuters("modapte-train", "all"), n_labels=120
                    ),
                    "test-all": Split(
                        "reuters", "original", 3299, _reuters("modapte-test", "all"), n_labels=120
                    ),
                }
            ),
            "train",
            90,
            0,
            f"{_REUTERS[0]}@{_REUTERS[1][:12]}:reuters21578/",
            "research use only (Reuters Ltd., Carnegie Group)",
        ),
        DatasetInfo(
            "cooking-stackexchange",
            "cooking-stackexchange",
            "Cooking Stack Exchange titles with tags (fastText tutorial); "
            "train = first 12,404 lines, test = last 3,000",
            _freeze(
                {
                    s: Split("fasttext", "extracted/cooking.stackexchange.txt", b - a, rows=(a, b))
                    for s, (a, b) in (("train", (0, 12404)), ("test", (12404, 15404)),
                                      ("all", (0, 15404)))
                }
            ),
            "train",
            736,
            0,
            f"{_COOKING[0]}@{_COOKING[1][:12]}:fasttext/data/cooking.stackexchange.tar.gz",
            "CC-BY-SA 3.0",
        ),
        DatasetInfo(
            "enron-berkeley-annotated",
            "enron-berkeley-annotated",
            "UC Berkeley annotated Enron emails (raw text of MULAN enron); labels 'top.sub' from "
            "categories.txt, groups = mailbox owner (X-Origin)",
            _freeze(
                {"all": Split("enron-berkeley", "enron_with_categories", 1702)}
            ),
            "all",
            53,
            0,
            f"{_ENRON_B[0]}@{_ENRON_B[1][:12]}:enron_with_categories/",
            "none stated; public FERC Enron corpus",
        ),
        DatasetInfo(
            "annif-archaeology-fi",
            "annif-archaeology-fi",
            "Finnish titles indexed with YSO subject URIs (Annif test corpus); 'fulltext' = 28 "
            "full-text documents; hierarchy from skos:broader",
            _freeze(
                {
                    "all": Split(
                        "annif-titles", "archaeology/documents.tsv", 6404,
                        files=("archaeology/subjects.tsv", "archaeology/yso-archaeology.ttl"),
                    ),
                    "fulltext": Split(
                        "annif-fulltext", "archaeology/fulltext", 28,
                        files=("archaeology/subjects.tsv", "archaeology/yso-archaeology.ttl"),
                        n_labels=202,  # 125 subjects + 77 URIs only the full texts use
                    ),
                }
            ),
            "all",
            126,
            0,
            f"{_ANNIF[0]}@{_ANNIF[1][:12]}:tests/corpora/archaeology/",
            "Apache-2.0 (Annif); YSO CC BY 4.0",
        ),
        DatasetInfo(
            "libsvm-yeast-napkinxc",
            "libsvm-yeast-napkinxc",
            "yeast in LIBSVM multi-label format (napkinXC test data); same split as mulan-yeast",
            _freeze(
                {
                    s: Split("libsvm", f"yeast_{s}.txt", n, _freeze(
                        {"index_base": 1, "n_features": 103, "labels": tuple(map(str, range(14)))}
                    ))
                    for s, n in (("train", 1500), ("test", 917))
                }
            ),
            "train",
            14,
            103,
            f"{_NAPKIN[0]}@{_NAPKIN[1][:12]}:python/tests/test_data/yeast/",
            "MIT (napkinXC); public LIBSVM yeast data",
        ),
    ]
    ds.extend(_hmc(base) for base in _HMC_SIZES)
    return {d.name: d for d in ds}


REGISTRY: Mapping[str, DatasetInfo] = MappingProxyType(_build())


def names() -> list[str]:
    """Registered dataset names, sorted."""
    return sorted(REGISTRY)


def get(name: str) -> DatasetInfo:
    """The registry entry of ``name``; DatasetError listing the known names otherwise."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise DatasetError(
            f"unknown dataset {name!r}; known datasets: {', '.join(names())}"
        ) from None
