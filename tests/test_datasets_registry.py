"""The dataset registry: names, the checksum table, and verified, atomic downloads.

Downloads are tested against a local HTTP server (127.0.0.1, random port) serving copies of
../shared/datasets folders, a local-folder mirror, and a stand-in for the canonical GitHub
URLs; no test reaches the internet (``_no_internet`` refuses any other host).
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import re
import shutil
import threading
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

import labelwise.datasets as lds
import labelwise.datasets.download as dl
from conftest import SHARED_DATASETS, shared_dataset_dir
from labelwise.datasets import registry
from labelwise.datasets.checksums import FILE_TABLES
from labelwise.errors import DatasetError

_REAL_URLOPEN = urllib.request.urlopen


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """A fresh data home, no mirror, and no network beyond 127.0.0.1 and file://."""
    monkeypatch.setenv("LABELWISE_DATA_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LABELWISE_DATASETS_MIRROR", raising=False)

    def guarded(url, *args, **kwargs):
        u = urllib.parse.urlsplit(url if isinstance(url, str) else url.full_url)
        if u.scheme != "file" and u.hostname != "127.0.0.1":
            raise AssertionError(f"test tried to reach the internet: {url}")
        return _REAL_URLOPEN(url, *args, **kwargs)

    monkeypatch.setattr(dl.urllib.request, "urlopen", guarded)


def home() -> Path:
    return lds.data_home()


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*")) if folder.exists() else []


# ---------------------------------------------------------------------- HTTP server
class _Handler(http.server.SimpleHTTPRequestHandler):
    requests: list[str]
    truncate: set[str]  # paths served with a full Content-Length but half the bytes

    def log_message(self, *args):  # keep the test output clean
        pass

    def do_GET(self):
        self.requests.append(self.path)
        local = Path(self.translate_path(self.path))
        if self.path in self.truncate and local.is_file():
            data = local.read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()


@pytest.fixture
def serve():
    """serve(folder) -> (base_url, handler class with .requests / .truncate)."""
    servers = []

    def start(folder: Path):
        handler = type("H", (_Handler,), {"requests": [], "truncate": set()})
        server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(handler, directory=str(folder))
        )
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}", handler

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


@pytest.fixture
def emotions_copy(tmp_path) -> Path:
    """A writable mirror folder holding a copy of ../shared/datasets/mulan-emotions."""
    src = shared_dataset_dir("mulan-emotions")
    mirror = tmp_path / "mirror"
    shutil.copytree(src, mirror / "mulan-emotions")
    for p in (mirror / "mulan-emotions").iterdir():
        p.chmod(0o644)
    return mirror


def corrupt(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------------- names
def test_parse_name():
    assert lds.parse_name("mulan-yeast:test") == ("mulan-yeast", "test")
    assert lds.parse_name("mulan-yeast") == ("mulan-yeast", None)
    assert lds.parse_name("goemotions-ekman:dev") == ("goemotions-ekman", "dev")


def test_unknown_name_lists_known():
    with pytest.raises(DatasetError, match="unknown dataset 'mulan-yaest'") as e:
        lds.parse_name("mulan-yaest:test")
    assert "mulan-yeast" in str(e.value) and "goemotions-group" in str(e.value)
    with pytest.raises(DatasetError, match="known datasets: .*reuters21578"):
        lds.load("nope")
    with pytest.raises(DatasetError, match="unknown dataset"):
        lds.fetch("nope")


def test_unknown_split_lists_known():
    with pytest.raises(DatasetError, match="no split 'valid'; known splits: train, test, all"):
        lds.parse_name("mulan-yeast:valid")
    with pytest.raises(DatasetError, match="known splits: train, dev, test"):
        lds.load("goemotions", split="validation")
    with pytest.raises(DatasetError, match="split given twice"):
        lds.load("mulan-yeast:test", split="train")


def test_exports():
    assert lds.__all__ == ["load", "fetch", "list_datasets", "parse_name", "data_home"]


def test_data_home_default_and_env(monkeypatch, tmp_path):
    monkeypatch.setenv("LABELWISE_DATA_HOME", str(tmp_path / "x"))
    assert lds.data_home() == tmp_path / "x"
    monkeypatch.delenv("LABELWISE_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "h"))
    assert lds.data_home() == tmp_path / "h" / ".cache" / "labelwise"


def test_mirror_setting(monkeypatch, tmp_path):
    monkeypatch.setenv("LABELWISE_DATASETS_MIRROR", "https://example.org/data/")
    assert dl.mirror() == "https://example.org/data"
    monkeypatch.setenv("LABELWISE_DATASETS_MIRROR", str(tmp_path))
    assert dl.mirror() == tmp_path
    monkeypatch.setenv("LABELWISE_DATASETS_MIRROR", str(tmp_path / "absent"))
    with pytest.raises(DatasetError, match="no such folder"):
        dl.mirror()
    monkeypatch.setenv("LABELWISE_DATASETS_MIRROR", "ftp://example.org/x")
    with pytest.raises(DatasetError, match="expected an http"):
        dl.mirror()


# ---------------------------------------------------------------------- the table itself
def test_every_split_resolves_to_registered_files():
    for info in registry.REGISTRY.values():
        assert info.default_split in info.splits, info.name
        assert info.files, info.name
        for split, spec in info.splits.items():
            files = info.split_files(split)
            assert files, (info.name, split)
            assert spec.n_samples > 0
            assert {f.path for f in files} <= {f.path for f in info.files}
        for f in info.files:
            assert re.fullmatch(r"[0-9a-f]{64}", f.sha256), f
            assert f.url is not None or f.archive is not None, f
            if f.url is not None:
                assert re.match(registry.RAW + r"/[\w.-]+/[\w.-]+/[0-9a-f]{40}/", f.url), f.url


def test_shared_folders_share_file_entries():
    # goemotions variants and hmc datasets take their own files out of a shared folder
    ekman = {f.path for f in registry.get("goemotions-ekman").files}
    assert ekman == {"ekman/train.tsv", "ekman/dev.tsv", "ekman/test.tsv", "ekman/labels.txt",
                     "ekman_mapping.json"}
    church = registry.get("hmc-clus-church-fun").files
    assert [f.path.rsplit("/", 1)[1] for f in church] == [
        "church_FUN.test.arff", "church_FUN.train.arff", "church_FUN.valid.arff"]


def _readme_files(folder: Path) -> dict[str, tuple[int, str]]:
    out, on = {}, False
    for line in (folder / "README.txt").read_text(encoding="utf-8").splitlines():
        if line.startswith("FILES"):
            on = True
        elif on and line.strip():
            path, size, digest = line.split()
            out[path] = (int(size), digest)
    return out


@pytest.mark.parametrize("folder", sorted(FILE_TABLES))
def test_checksums_match_readme_and_upstream(folder):
    d = shared_dataset_dir(folder)
    readme = _readme_files(d)
    text = (d / "README.txt").read_text(encoding="utf-8")
    files = registry.folder_files(folder)
    for f in files:
        assert readme[f.path] == (f.size, f.sha256), f.path
        if f.url is not None:
            commit = f.url.split("/")[5]
            assert commit[:12] in text, f"{f.url}: commit not named in {folder}/README.txt"
    listed = {p for p in readme if folder != "hmc-clus" or p.startswith("datasets_FUN/")}
    assert {f.path for f in files} == listed


def test_enron_manifest_is_the_folders_sha256sums():
    d = shared_dataset_dir("enron-berkeley-annotated")
    assert registry.ENRON_MANIFEST.read_bytes() == (d / "SHA256SUMS").read_bytes()
    assert registry.ENRON_MANIFEST_SHA256 in (d / "README.txt").read_text(encoding="utf-8")
    files = registry.get("enron-berkeley-annotated").files
    assert len(files) == 3405
    assert files[0].url.endswith("/enron_with_categories/1/10425.cats")


def test_every_file_of_the_shared_copy_verifies():
    shared_dataset_dir()
    checked = 0
    for folder in {i.folder for i in registry.REGISTRY.values()}:
        if not (SHARED_DATASETS / folder).is_dir():
            continue
        for f in registry.folder_files(folder):
            assert dl.verified(SHARED_DATASETS / folder / f.path, f), f"{folder}/{f.path}"
            checked += 1
    assert checked > 3500


# ---------------------------------------------------------------------- downloads
def test_fetch_from_http_mirror_verifies_and_caches(serve, emotions_copy, monkeypatch):
    base, handler = serve(emotions_copy)
    monkeypatch.setenv("LABELWISE_DATASETS_MIRROR", base + "/")
    paths = lds.fetch("mulan-emotions")
    info = registry.get("mulan-emotions")
    assert [p.name for p in paths] == [Path(f.path).name for f in info.files]
    for p, f in zip(paths, info.files):
        assert p.parent == home() / "mulan-emotions" and sha(p) == f.sha256
    assert len(handler.requests) == len(info.files)
    # already in the data home and verified: load does not ask the server again
    ds = lds.load("mulan-emotions", split="test")
    assert ds.n_samples == 202 and len(handler.requests) == len(info.files)
    assert ds.meta["dataset"] == "mulan-emotions" and ds.meta["split"] == "test"


def test_load_downloads_only_the_split_files(serve, emotions_copy, monkeypatch):
    base, handler = serve(emotions_copy)
    monkeypatch.setenv("LABELWISE_DATASETS_MIRROR", base)
    ds = lds.load("mulan-emotions:train")
    assert ds.n_samples == 391
    assert sorted(handler.requests) == ["/mulan-emotions/emotions-train.arff",
                                        "/mulan-emotions/emotions.xml"]
    assert leftovers(home() / "mulan-emotions") == ["emotions-train.arff", "emotions.xml"]


def test_corrupt_file_from_mirror_is_refused_and_removed(serve, emotions_copy, monkeypatch):
    bad = emotions_copy / "mulan-emotions" / "emotions-test.arff"
    corrupt(bad)
    base, _ = serve(emotions_copy)
    monkeypatch.setenv("LABELWISE_DATASETS_MIRROR", base)
    expected = registry.get("mulan-emotions").split_files("test")[0].sha256
    with pytest.raises(DatasetError) as e:
        lds.load("mulan-emotions", split="test")
    msg = str(e.value)
    assert "emotions-test.arff" in msg and expected in msg and sha(bad) in msg
    assert "emotions-test.arff" not in " ".join(leftovers(home()))
    assert not [n for n in leftovers(home()) if n.endswith(".part")]


def test_connection_dying_mid_download_leaves_nothing(serve, emotions_copy, monkeypatch):
    base, handler = serve(emotions_copy)
    handler.truncate.add("/mulan-emotions/emotions-test.arff")
    monkeypatch.setenv("LABELWISE_DATASETS_MIRROR", base)
    with pytest.raises(DatasetError, match=r"emotions-test.arff: got 66003 bytes .*expected 132007"):
        lds.load("mulan-emotions", split="test")
    assert leftovers(home() / "mulan-emotions") == []


def test_http_error_is_a_dataset_error(serve, tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    base, _ = serve(tmp_path / "empty")
    monkeypatch.setenv("LABELWISE_DATASETS_MIRROR", base)
    with pytest.raises(DatasetError, match=r"yeast-test.arff: HTTP 404 .* from http://127"):
        lds.load("mulan-yeast:test")
    monkeypatch.setenv("LABELWISE_DATASETS_MIRROR", "http://127.0.0.1:9")  # nothing listens
    with pytest.raises(DatasetError, match="cannot download http://127.0.0.1:9/mulan-yeast/"):
        lds.load("mulan-yeast:test")


def test_an_unreachable_upstream_without_a_mirror_says_how_to_use_a_local_copy(monkeypatch):
    import urllib.error

    def offline(url, *args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(dl.urllib.request, "urlopen", offline)
    with pytest.raises(DatasetError, match=r"yeast-test.arff: cannot download https://.*Name "
                       r"or service not known \(offline\? set LABELWISE_DATASETS_MIRROR"):
        lds.load("mulan-yeast:test")
    assert not (home() / "mulan-yeast" / "yeast-test.arff").exists()


def test_corrupt_file_in_data_home_is_replaced(serve, emotions_copy, monkeypatch):
    target = home() / "mulan-emotions" / "emotions.xml"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"<labels/>")
    base, handler = serve(emotions_copy)
    monkeypatch.setenv("LABELWISE_DATASETS_MIRROR", base)
    assert lds.load("mulan-emotions:test").n_labels == 6
    assert sha(target) == sha(emotions_copy / "mulan-emotions" / "emotions.xml")
    assert "/mulan-emotions/emotions.xml" in handler.requests


def test_local_folder_mirror_is_read_in_place(emotions_copy, monkeypatch):
    monkeypatch.setenv("LABELWISE_DATASETS_MIRROR", str(emotions_copy))
    ds = lds.load("mulan-emotions", split="all")
    assert ds.n_samples == 593
    assert Path(ds.meta["source"]).parent == emotions_copy / "mulan-emotions"
    assert not home().exists()
    paths = lds.fetch("mulan-emotions")  # fetch copies into the data home
    assert all(p.is_file() and p.parent == home() / "mulan-emotions" for p in paths)
    assert sha(paths[1]) == sha(emotions_copy / "mulan-emotions" / paths[1].name)


def test_local_folder_mirror_corrupt_or_missing(emotions_copy, monkeypatch):
    monkeypatch.setenv("LABELWISE_DATASETS_MIRROR", str(emotions_copy))
    corrupt(emotions_copy / "mulan-emotions" / "emotions.xml")
    with pytest.raises(DatasetError, match="emotions.xml: sha256 mismatch: expected dbce8e6c"):
        lds.load("mulan-emotions:test")
    (emotions_copy / "mulan-emotions" / "emotions.xml").unlink()
    with pytest.raises(DatasetError, match="emotions.xml: not in the mirror folder"):
        lds.load("mulan-emotions:test")
    assert not [n for n in leftovers(home()) if n.startswith("emotions.xml")]


def test_canonical_urls_without_a_mirror(monkeypatch):
    """No mirror: files come from the raw GitHub URL at the pinned commit."""
    src = shared_dataset_dir("mulan-emotions")
    prefix = f"{registry.RAW}/tsoumakas/mulan/43f6389095ad71984264db4387a8074b22bc7d4a/data/multi-label/emotions/"
    asked = []

    def fake(url, *args, **kwargs):
        asked.append(url)
        assert url.startswith(prefix), url
        return _REAL_URLOPEN((src / url[len(prefix):]).as_uri(), *args, **kwargs)

    monkeypatch.setattr(dl.urllib.request, "urlopen", fake)
    assert lds.load("mulan-emotions:test").n_samples == 202
    assert asked == [prefix + "emotions-test.arff", prefix + "emotions.xml"]


def test_archive_members_are_extracted_from_the_verified_archive(tmp_path):
    """cooking-stackexchange's extracted/ files have no URL of their own: they come out of the
    tar.gz (here already in the data home, so nothing is downloaded)."""
    src = shared_dataset_dir("cooking-stackexchange")
    folder = home() / "cooking-stackexchange"
    folder.mkdir(parents=True)
    shutil.copyfile(src / "cooking.stackexchange.tar.gz", folder / "cooking.stackexchange.tar.gz")
    ds = lds.load("cooking-stackexchange", split="test")
    assert ds.n_samples == 3000
    extracted = folder / "extracted" / "cooking.stackexchange.txt"
    assert sha(extracted) == sha(src / "extracted" / "cooking.stackexchange.txt")
    assert leftovers(folder / "extracted") == ["cooking.stackexchange.txt"]


def test_extract_member_refuses_a_corrupt_member(tmp_path):
    import tarfile

    archive = tmp_path / "a.tar"
    (tmp_path / "m.txt").write_bytes(b"hello")
    with tarfile.open(archive, "w") as tar:
        tar.add(tmp_path / "m.txt", arcname="m.txt")
    info = registry.FileInfo("x/m.txt", "0" * 64, 5, None, "a.tar", "m.txt")
    with pytest.raises(DatasetError, match="expected 0{64}, got " + sha(tmp_path / "m.txt")):
        dl.extract_member(archive, tmp_path / "x" / "m.txt", info)
    assert leftovers(tmp_path / "x") == []
    absent = registry.FileInfo("x/n.txt", "0" * 64, 5, None, "a.tar", "n.txt")
    with pytest.raises(DatasetError, match="has no member 'n.txt'"):
        dl.extract_member(archive, tmp_path / "x" / "n.txt", absent)
    (tmp_path / "bad.tar").write_bytes(b"not a tar")
    with pytest.raises(DatasetError, match="not a readable tar archive"):
        dl.extract_member(tmp_path / "bad.tar", tmp_path / "x" / "m.txt", info)


def test_download_checks_size_and_hash_directly(tmp_path):
    payload = tmp_path / "p.bin"
    payload.write_bytes(b"x" * 1000)
    good = registry.FileInfo("p.bin", sha(payload), 1000)
    out = dl.download(payload.as_uri(), tmp_path / "dl" / "p.bin", good)
    assert out.read_bytes() == b"x" * 1000
    wrong = registry.FileInfo("p.bin", "f" * 64, 1000)
    with pytest.raises(DatasetError, match="sha256 mismatch"):
        dl.download(payload.as_uri(), tmp_path / "dl2" / "p.bin", wrong)
    assert leftovers(tmp_path / "dl2") == []


def test_list_datasets_reports_cache_state(emotions_copy, monkeypatch):
    rows = {r["name"]: r for r in lds.list_datasets()}
    assert set(rows) == set(registry.REGISTRY)
    r = rows["mulan-emotions"]
    assert r["splits"] == {"train": 391, "test": 202, "all": 593}
    assert (r["n_labels"], r["n_features"], r["cached"]) == (6, 72, False)
    assert r["bytes"] == 918 + 132007 + 252080 + 380476 + 323
    monkeypatch.setenv("LABELWISE_DATASETS_MIRROR", str(emotions_copy))
    lds.fetch("mulan-emotions")
    assert {r["name"]: r for r in lds.list_datasets()}["mulan-emotions"]["cached"] is True
