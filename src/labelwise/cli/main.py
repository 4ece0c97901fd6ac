"""Entry point of the ``labelwise`` command.

Start-up stays light: this module and the sub-command modules import only the standard
library at module level; each command imports what it needs inside ``run``. Errors of
labelwise become one ``error: ...`` line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings
from collections.abc import Sequence

#: sub-command name -> module in labelwise.cli (with ``HELP``, ``add_arguments``, ``run``).
COMMANDS: dict[str, str] = {
    "info": "labelwise.cli.info",
    "convert": "labelwise.cli.convert",
    "datasets": "labelwise.cli.datasets",
    "split": "labelwise.cli.split",
    "train": "labelwise.cli.train",
    "predict": "labelwise.cli.predict",
    "evaluate": "labelwise.cli.evaluate",
    "tune": "labelwise.cli.tune",
    "labels": "labelwise.cli.labels",
    "learn": "labelwise.cli.learn",
    "serve": "labelwise.cli.serve",
    "review": "labelwise.cli.review",
}

EXIT_USAGE_OR_DATA = 2


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one ``error: PROG: ...`` line (exit status 2) instead of
    the usage text and a second line; ``PROG --help`` still shows the usage."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(EXIT_USAGE_OR_DATA, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from labelwise import __version__

    parser = _Parser(
        prog="labelwise",
        description="Multi-label classification: read, split, train, tune, evaluate, serve.",
    )
    parser.add_argument("--version", action="version", version=f"labelwise {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show the full traceback of an error"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def _one_line(message: object) -> str:
    """A message on one line (a line break in it, e.g. from user data, becomes " | ")."""
    return " | ".join(part.strip() for part in str(message).splitlines() if part.strip())


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one ``warning: ...`` line on stderr, without source lines."""
    print(f"warning: {_one_line(message)}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        print(f"error: {parser.prog}: no command given (see {parser.prog} --help)", file=sys.stderr)
        return EXIT_USAGE_OR_DATA
    from labelwise.errors import LabelwiseError

    shown = warnings.showwarning
    warnings.showwarning = _show_warning
    try:
        try:
            from labelwise.progress import show_progress

            with show_progress(not getattr(args, "quiet", False)):  # --quiet: no progress line
                return int(args._run(args) or 0)
        except BrokenPipeError:  # e.g. `labelwise predict ... | head`
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        except LabelwiseError as e:
            if args.debug:
                raise
            print(f"error: {_one_line(e)}", file=sys.stderr)
            return EXIT_USAGE_OR_DATA
        except OSError as e:  # missing file, permission, disk full: no traceback either
            if args.debug:
                raise
            where = f"{e.filename}: " if getattr(e, "filename", None) else ""
            print(f"error: {_one_line(f'{where}{e.strerror or e}')}", file=sys.stderr)
            return EXIT_USAGE_OR_DATA
        except KeyboardInterrupt:
            print("error: interrupted", file=sys.stderr)
            return 130
    finally:
        warnings.showwarning = shown


if __name__ == "__main__":
    raise SystemExit(main())
