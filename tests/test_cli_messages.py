"""Every message of the CLI is one ``error:`` or ``warning:`` line, even when the text it
reports holds line breaks (from user data or a library)."""

import warnings

import labelwise.cli.info
from labelwise.cli.main import main
from labelwise.errors import DataFormatError


def test_messages_with_line_breaks_stay_one_line(monkeypatch, capsys, tmp_path):
    def run(args):
        warnings.warn("first\nsecond\r\n", stacklevel=1)
        raise DataFormatError("bad value\n  in a row\n", path="f.csv", line=3)

    monkeypatch.setattr(labelwise.cli.info, "run", run)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        assert main(["info", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == ["warning: first | second", "error: f.csv:3: bad value | in a row"]


def test_tune_objective_default_is_the_apis():
    from labelwise.cli.main import build_parser
    from labelwise.pipeline import DEFAULT_OBJECTIVE

    args = build_parser().parse_args(["tune", "m", "d"])
    assert args.objective is None  # Pipeline.tune chooses: the pipeline's own, else the default
    help_text = build_parser()._subparsers._group_actions[0].choices["tune"].format_help()
    assert f"else {DEFAULT_OBJECTIVE}" in " ".join(help_text.split())
