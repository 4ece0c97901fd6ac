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
