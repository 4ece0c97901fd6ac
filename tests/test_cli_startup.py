"""`labelwise --help` must start fast: guarded by the import work it does, not by wall time."""

import json
import subprocess
import sys

HEAVY = ("numpy", "scipy", "numba", "sklearn", "pandas", "pyarrow", "matplotlib", "torch", "tqdm")

PROBE = """
import json, sys
from labelwise.cli.main import build_parser
build_parser().format_help()
for name in list(sys.modules):
    pass
print(json.dumps(sorted(sys.modules)))
"""


def test_help_imports_no_heavy_module():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout)
    heavy = sorted({m.split(".")[0] for m in loaded} & set(HEAVY))
    assert heavy == [], f"labelwise --help imports heavy modules: {heavy}"
    own = [m for m in loaded if m.startswith("labelwise")]
    assert all(not m.startswith(("labelwise.models", "labelwise.metrics")) for m in own), own


def test_help_import_time_budget():
    # -X importtime reports the cumulative import time of every module in microseconds;
    # the labelwise modules' own import work (excluding the interpreter's start-up) stays small.
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "from labelwise.cli.main import build_parser; build_parser()"],
        capture_output=True,
        text=True,
        check=True,
    )
    total_us = 0
    for line in out.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[2].strip().startswith("labelwise") and "." not in parts[2].strip():
            total_us = int(parts[1])
    assert 0 < total_us < 250_000, f"importing labelwise took {total_us} us of import work"


def test_help_runs_and_lists_commands():
    out = subprocess.run(
        [sys.executable, "-m", "labelwise", "--help"], capture_output=True, text=True, check=True
    )
    for command in ("info", "convert", "datasets", "split", "train", "predict", "evaluate"):
        assert command in out.stdout


FIT_PROBE = """
import json, sys
import numpy as np
import labelwise.models as models
from labelwise import Pipeline
rng = np.random.default_rng(0)
X = rng.normal(size=(60, 5)).astype(np.float32)
Y = (rng.random((60, 3)) < 0.4).astype(np.float32)
for name in sys.argv[1:]:
    Pipeline(model=getattr(models, name)()).fit(X, Y)
print(json.dumps(sorted(m.split(".")[0] for m in sys.modules)))
"""


def test_numeric_fit_imports_no_scikit_learn():
    # a pipeline on numeric features only scales them: it must not pay scikit-learn's import
    # (about 1 s, most of a small set's fit) through labelwise.features
    names = ["OneVsRest", "ClassifierChain", "LabelPowerset", "RAkEL", "MLkNN", "LabelForest"]
    out = subprocess.run([sys.executable, "-c", FIT_PROBE, *names], capture_output=True,
                         text=True, check=True)
    heavy = sorted(set(json.loads(out.stdout)) & {"sklearn", "pandas", "torch"})
    assert heavy == [], f"fitting {names} on numbers imports {heavy}"
