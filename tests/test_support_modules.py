"""The tests' own helper modules: one definition of each helper."""

from __future__ import annotations

import ast
from pathlib import Path

import net_support

HERE = Path(__file__).parent


def test_one_free_port_helper():
    # review_support had its own _free_port beside serve_support.free_port
    texts = {p.name: p.read_text(encoding="utf-8") for p in sorted(HERE.glob("*.py"))}
    defined = {name: [n.name for n in ast.walk(ast.parse(text))
                      if isinstance(n, ast.FunctionDef) and n.name.lstrip("_") == "free_port"]
               for name, text in texts.items() if "free_port" in text}
    assert {name: fns for name, fns in defined.items() if fns} == {
        "net_support.py": ["free_port"]}
    port = net_support.free_port()
    assert isinstance(port, int) and 1024 <= port < 65536
