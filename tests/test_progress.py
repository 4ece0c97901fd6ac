import io
import sys

from labelwise import progress as pg


class _TTY(io.StringIO):
    def isatty(self):
        return True


def test_bars_off_by_default_and_when_not_a_terminal(monkeypatch):
    assert not pg.progress_enabled()
    with pg.progress(10, "x") as bar:
        assert bar._bar is None
        bar.update(3)
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    with pg.show_progress():
        assert not pg.progress_enabled()


def test_bar_shown_on_a_terminal_and_restored(monkeypatch):
    err = _TTY()
    monkeypatch.setattr(sys, "stderr", err)
    with pg.show_progress():
        assert pg.progress_enabled()
        with pg.progress(4, "training labels", unit="label") as bar:
            assert bar._bar is not None
            bar.update(3)
            bar.update(1)
            assert bar._bar.n == 4
    assert not pg.progress_enabled()
    assert "training labels" in err.getvalue() and "/4" in err.getvalue()
    with pg.show_progress(False):
        assert not pg.progress_enabled()


def test_quiet_silences_download_progress(tmp_path, monkeypatch, capsys):
    """A download's progress line shows on a terminal unless --quiet (and never through the
    API unless progress is turned on)."""
    import hashlib

    import labelwise.datasets
    from labelwise.cli.main import main
    from labelwise.datasets import download as dl
    from labelwise.datasets.registry import FileInfo

    payload = tmp_path / "p.bin"
    payload.write_bytes(b"x" * 3000)
    info = FileInfo("p.bin", hashlib.sha256(payload.read_bytes()).hexdigest(), 3000)
    monkeypatch.setattr(dl, "PROGRESS_MIN_BYTES", 1)
    monkeypatch.setattr(labelwise.datasets, "fetch",
                        lambda name: [dl.download(payload.as_uri(), tmp_path / name / "p.bin", info)])
    err = _TTY()
    monkeypatch.setattr(sys, "stderr", err)
    assert main(["datasets", "fetch", "loud"]) == 0
    assert "p.bin: 0 MiB (100%)" in err.getvalue()
    err.seek(0)
    err.truncate()
    assert main(["datasets", "fetch", "quiet", "--quiet"]) == 0
    dl.download(payload.as_uri(), tmp_path / "api" / "p.bin", info)  # API: progress is off
    assert err.getvalue() == ""
    assert (tmp_path / "quiet" / "p.bin").is_file() and (tmp_path / "api" / "p.bin").is_file()
    capsys.readouterr()
