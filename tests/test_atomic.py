import os
import subprocess
import sys
import textwrap
import time

import pytest

from labelwise.atomic import (
    OutputExistsError,
    atomic_directory,
    atomic_write,
    check_replaceable,
    remove_stale,
)


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
        (d / "manifest.json").write_text("{}")
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


def test_atomic_directory_never_replaces_a_users_folder_or_file(tmp_path):
    """issue 18 s5.1: saving onto a folder of the user's files deleted them."""
    thesis = tmp_path / "d" / "thesis.tex"
    thesis.parent.mkdir()
    thesis.write_text("x")
    with pytest.raises(OutputExistsError, match="not a folder labelwise wrote"):
        with atomic_directory(thesis.parent) as d:
            (d / "manifest.json").write_text("{}")
    assert thesis.read_text() == "x" and os.listdir(thesis.parent) == ["thesis.tex"]
    with pytest.raises(OutputExistsError, match="is not a folder"):
        with atomic_directory(thesis):
            pass
    assert thesis.read_text() == "x"
    assert sorted(os.listdir(tmp_path)) == ["d"]  # no temporary left behind
    empty = tmp_path / "empty"
    empty.mkdir()
    with atomic_directory(empty) as d:
        (d / "a").write_text("1")
    assert os.listdir(empty) == ["a"]
    split = tmp_path / "split"
    with atomic_directory(split, markers=("split.json",)) as d:
        (d / "split.json").write_text("{}")
    with pytest.raises(OutputExistsError):  # a split is not a model
        with atomic_directory(split):
            pass
    with pytest.raises(OutputExistsError, match="holds or is the input"):
        check_replaceable(split, inputs=[split / "split.json"])


_KILLED_SAVE = textwrap.dedent("""
    import os, signal, sys
    from labelwise.atomic import atomic_directory, atomic_write
    target, kind = sys.argv[1], sys.argv[2]
    if kind == "dir":
        with atomic_directory(target) as d:
            (d / "manifest.json").write_text("{}")
            (d / "big.npy").write_bytes(b"0" * 100000)
            os.kill(os.getpid(), signal.SIGKILL)
    elif kind == "file":
        with atomic_write(target, "w") as f:
            f.write("half")
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
    else:  # a later, ordinary save
        with atomic_write(target + ".done", "w") as f:
            f.write("ok")
""")


def _run(*args, timeout=60):
    return subprocess.run([sys.executable, "-c", _KILLED_SAVE, *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def test_kill_9_mid_save_leaves_temporaries_that_a_later_save_removes(tmp_path):
    """Real SIGKILLs of a directory save and of a file save: the targets stay whole, the
    temporaries stay recognisable, and the next process saving into the folder removes them
    and nothing else (a user's look-alike names, a live writer's temporary)."""
    model = tmp_path / "model"
    with atomic_directory(model) as d:
        (d / "manifest.json").write_text('{"v": 1}')
    out = tmp_path / "scores.jsonl"
    out.write_text("old\n")
    def temporaries():
        return sorted(f.name for f in tmp_path.iterdir() if f.name.endswith(".lwtmp"))

    assert _run(model, "dir").returncode == -9
    assert (model / "manifest.json").read_text() == '{"v": 1}'
    assert [n.split(".")[1] for n in temporaries()] == ["model"]
    # the next process to save there (killed in turn) removed the first one's temporary first
    assert _run(out, "file").returncode == -9
    assert out.read_text() == "old\n"
    assert [n.split(".")[1] for n in temporaries()] == ["scores"]
    # look-alikes that are not ours, and a temporary whose writer is alive: kept
    keep = [tmp_path / ".model.123.tmp", tmp_path / "notes.lwtmp", tmp_path / ".x.1.abcdefgh.lwtmp"]
    for k in keep:
        k.write_text("mine")
    live = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import sys, time
        from labelwise.atomic import atomic_write
        with atomic_write(sys.argv[1], "w") as f:
            print("writing", flush=True)
            time.sleep(60)
    """), str(tmp_path / "live.txt")], stdout=subprocess.PIPE, text=True)
    try:
        assert live.stdout.readline().strip() == "writing"
        time.sleep(0.05)
        assert _run(tmp_path / "later", "later").returncode == 0
        names = sorted(f.name for f in tmp_path.iterdir())
        assert [n for n in names if n.startswith((".model.", ".scores."))] == [".model.123.tmp"]
        assert len([n for n in names if n.startswith(".live.txt.")]) == 1  # in use: kept
        assert all(k.read_text() == "mine" for k in keep)
        assert remove_stale(tmp_path) == []  # nothing more of ours to remove
    finally:
        live.kill()
        live.wait()
        live.stdout.close()
    assert len(remove_stale(tmp_path)) == 1  # its writer is gone now
