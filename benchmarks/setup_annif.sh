#!/usr/bin/env bash
# Create the Annif 1.4 virtualenv for benchmarks/serve.py, in the repository root:
#   .venv-annif              annif[omikuji]==1.4.* and gunicorn (Annif's documented way to
#                            serve: gunicorn with uvicorn workers, `annif.app:create_app()`)
#   .venv-annif/nltk_data    NLTK's punkt_tab tokenizer data. Annif downloads it on first
#                            use, which cannot work offline; llama-index-core's wheel on PyPI
#                            ships a copy under llama_index/core/_static/nltk_cache, so the
#                            wheel is fetched with `pip download --no-deps` into a temporary
#                            folder and only that folder is extracted. Annif's processes get
#                            NLTK_DATA=.venv-annif/nltk_data (benchmarks/serve.py sets it).
# torch==2.13.0 (CPU) is pinned first when anything would pull torch (annif[omikuji] does
# not; the pin only applies with ANNIF_PIN_TORCH=1). Re-running skips a venv whose Annif
# already imports and tokenizes offline.
# Usage: bash benchmarks/setup_annif.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=.venv-annif
NLTK_DIR=$VENV/nltk_data

check() {
  NLTK_DATA=$PWD/$NLTK_DIR HF_HUB_OFFLINE=1 "$VENV/bin/python" - <<'EOF'
import importlib.metadata as md
import omikuji  # noqa: F401
import nltk
import annif.analyzer
version = md.version("annif")
assert version.startswith("1.4."), version
nltk.data.find("tokenizers/punkt_tab/english/")
nltk.data.find("tokenizers/punkt_tab/finnish/")
an = annif.analyzer.get_analyzer("snowball(english)")
tokens = an.tokenize_words("How do I cook rice? Boiling it in salted water.")
assert "rice" in tokens, tokens
fi = annif.analyzer.get_analyzer("snowball(finnish)")
print("annif", version, "ok; tokens:", tokens, fi.tokenize_words("Arkeologiset kaivaukset Suomessa."))
EOF
}

if [ -x "$VENV/bin/python" ] && check 2>/dev/null; then
  echo "[annif] ok ($VENV exists, imports and tokenizes offline)"; exit 0
fi

echo "[annif] creating $VENV"
"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
if [ "${ANNIF_PIN_TORCH:-0}" = 1 ]; then
  "$VENV/bin/python" -m pip install -q "torch==2.13.0"
fi
"$VENV/bin/python" -m pip install -q 'annif[omikuji]==1.4.*' gunicorn
if "$VENV/bin/python" -m pip show -q torch 2>/dev/null; then
  echo "[annif] note: torch was pulled in ($("$VENV/bin/python" -m pip show torch | grep ^Version))"
fi

echo "[annif] fetching NLTK punkt_tab from llama-index-core's wheel"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$VENV/bin/python" -m pip download -q --no-deps --dest "$tmp" llama-index-core
wheel=$(ls "$tmp"/llama_index_core-*.whl)
mkdir -p "$NLTK_DIR"
"$VENV/bin/python" - "$wheel" "$NLTK_DIR" <<'EOF'
import sys
import zipfile
from pathlib import Path

wheel, dest = sys.argv[1], Path(sys.argv[2])
prefix = "llama_index/core/_static/nltk_cache/"
n = 0
with zipfile.ZipFile(wheel) as zf:
    for info in zf.infolist():
        if not info.filename.startswith(prefix) or info.is_dir():
            continue
        rel = Path(info.filename[len(prefix):])
        if rel.is_absolute() or ".." in rel.parts:
            sys.exit(f"{wheel}: unsafe member path {info.filename!r}")
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(zf.read(info))
        n += 1
if n == 0:
    sys.exit(f"{wheel}: no files under {prefix}")
print(f"[annif] extracted {n} files into {dest}")
EOF
check
echo "[annif] ok"
