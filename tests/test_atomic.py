import os

import pytest

from labelwise.atomic import atomic_directory, atomic_write


def test_atomic_write_replaces_only_on_success(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(target) as f:
            f.write("half")
            raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.txt"]
    with atomic_write(target) as f:
        f.write("new")
    assert target.read_text() == "new"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_atomic_write_exclusive_and_mode_check(tmp_path):
    target = tmp_path / "x.bin"
    with atomic_write(target, "xb") as f:
        f.write(b"1")
    with pytest.raises(FileExistsError):
        with atomic_write(target, "xb") as f:
            f.write(b"2")
    assert target.read_bytes() == b"1"
    with pytest.raises(ValueError):
        with atomic_write(target, "r"):
            pass


def test_atomic_directory(tmp_path):
    model = tmp_path / "model"
    with atomic_directory(model) as d:
        (d / "a.txt").write_text("v1")
    assert (model / "a.txt").read_text() == "v1"
    with pytest.raises(RuntimeError):
        with atomic_directory(model) as d:
            (d / "a.txt").write_text("v2-partial")
            raise RuntimeError("crash")
    assert (model / "a.txt").read_text() == "v1"
    with atomic_directory(model) as d:
        (d / "b.txt").write_text("v2")
    assert sorted(os.listdir(model)) == ["b.txt"]
    assert sorted(os.listdir(tmp_path)) == ["model"]


def test_atomic_write_keeps_usual_permissions(tmp_path):
    target = tmp_path / "perm.txt"
    umask = os.umask(0o022)
    try:
        with atomic_write(target) as f:
            f.write("x")
    finally:
        os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o644
    os.chmod(target, 0o600)
    with atomic_write(target) as f:
        f.write("y")
    assert target.stat().st_mode & 0o777 == 0o600
