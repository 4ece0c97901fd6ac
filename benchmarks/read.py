"""Read speed and peak memory: labelwise.io.xc.read_xc vs scikit-learn's load_svmlight_file.

Generates a synthetic XC file (power-law feature and label frequencies, values like
``0.083873``) of about ``--size-mb`` MB in a temporary folder, plus a header-less copy for
scikit-learn (which cannot read the XC header). Each reader runs in its own subprocess; peak
memory is ``ru_maxrss`` after the read minus ``ru_maxrss`` once the imports are done (and, for
labelwise, numba's compiled kernel is loaded: its compile / cache-load time is reported
separately). Both readers produce float32 values (sklearn with ``dtype=np.float32``). The file
is read once before timing so both see a warm page cache.

    python benchmarks/read.py                # ~1 GB
    python benchmarks/read.py --size-mb 200  # quick run
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

GOAL_SPEED = 2.0  # labelwise at least twice as fast
GOAL_MEMORY = 1.0  # and no more peak memory


# ---------------------------------------------------------------------- data generation
def _gen_kernel():
    from numba import njit

    @njit(cache=True)
    def put_int(out, p, v):
        if v == 0:
            out[p] = 48
            return p + 1
        n = 0
        t = v
        while t > 0:
            n += 1
            t //= 10
        for k in range(n - 1, -1, -1):
            out[p + k] = 48 + v % 10
            v //= 10
        return p + n

    @njit(cache=True)
    def block(rng, n_rows, n_features, n_labels, mean_nnz, mean_labels, out):
        """Write n_rows libsvm lines into out; return the number of bytes."""
        p = 0
        feats = np.empty(4 * mean_nnz + 1, np.int64)
        labs = np.empty(4 * mean_labels + 1, np.int64)
        for _ in range(n_rows):
            nl = min(1 + rng.poisson(mean_labels - 1), labs.size)
            for k in range(nl):
                labs[k] = int(n_labels * rng.random() ** 3)  # power-law-like skew
            ls = np.unique(labs[:nl])
            for k in range(ls.size):
                if k:
                    out[p] = 44
                    p += 1
                p = put_int(out, p, ls[k])
            nf = min(1 + rng.poisson(mean_nnz - 1), feats.size)
            for k in range(nf):
                feats[k] = int(n_features * rng.random() ** 2.5)
            fs = np.unique(feats[:nf])
            for k in range(fs.size):
                out[p] = 32
                p = put_int(out, p + 1, fs[k])
                out[p] = 58
                out[p + 1] = 48
                out[p + 2] = 46
                p += 3
                v = rng.integers(1, 1000000)
                for d in range(5, -1, -1):
                    out[p + d] = 48 + v % 10
                    v //= 10
                p += 6
            out[p] = 10
            p += 1
        return p

    return block


def generate(folder: str, size_mb: float, *, n_features=200_000, n_labels=30_000,
             mean_nnz=60, mean_labels=5) -> tuple[str, str, int]:
    """Write ``data.xc`` and its header-less twin ``data.svm``; return (xc, svm, n_rows)."""
    block = _gen_kernel()
    target = int(size_mb * 1e6)
    rows_per_block = 20_000
    # worst case per row: 4*mean+1 features of <= 17 bytes, 4*mean+1 labels of <= 7 bytes
    out = np.empty(rows_per_block * ((4 * mean_nnz + 1) * 17 + (4 * mean_labels + 1) * 7 + 1), np.uint8)
    svm = os.path.join(folder, "data.svm")
    xc = os.path.join(folder, "data.xc")
    written, n_rows = 0, 0
    rng = np.random.default_rng(0)
    with open(svm, "wb") as f:
        while written < target:
            rows = rows_per_block
            if n_rows:  # last block: about the rows still needed
                rows = max(1, min(rows, int((target - written) * n_rows / written) + 1))
            n = block(rng, rows, n_features, n_labels, mean_nnz, mean_labels, out)
            f.write(memoryview(out)[:n])
            written += n
            n_rows += rows
    with open(xc, "wb") as f:
        f.write(f"{n_rows} {n_features} {n_labels}\n".encode())
        with open(svm, "rb") as g:
            shutil.copyfileobj(g, f, 16 << 20)
    return xc, svm, n_rows


# ---------------------------------------------------------------------- worker
def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def _reset_peak() -> bool:
    """Reset the peak RSS to the current RSS (Linux clear_refs 5), so that a transient peak
    during the imports does not hide the reader's; False where the kernel does not allow it."""
    import gc

    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def worker(reader: str, path: str) -> None:
    import scipy.sparse  # noqa: F401
    from sklearn.datasets import load_svmlight_file

    from labelwise.io.xc import read_xc

    compile_s = 0.0
    if reader == "labelwise":
        tiny = path + ".warm"
        with open(tiny, "w") as f:
            f.write("1 3 2\n0,1 0:1 2:0.5\n")
        t = time.perf_counter()
        read_xc(tiny, index_base=0)
        compile_s = time.perf_counter() - t
        os.unlink(tiny)
    reset = _reset_peak()
    base = _maxrss_mb()
    t = time.perf_counter()
    if reader == "labelwise":
        ds = read_xc(path, index_base=0)
        X, Y = ds.X, ds.Y
        n_y = Y.nnz
    else:
        X, y = load_svmlight_file(path, multilabel=True, zero_based=True, dtype=np.float32)
        n_y = sum(len(r) for r in y)
    seconds = time.perf_counter() - t
    peak = _maxrss_mb()
    print(json.dumps({
        "seconds": seconds, "peak_mb": peak - base, "baseline_mb": base, "compile_s": compile_s, "peak_reset": reset,
        "rows": int(X.shape[0]), "nnz": int(X.nnz), "label_nnz": int(n_y),
        "checksum": float(X.data.astype(np.float64).sum()), "index_sum": int(X.indices.astype(np.int64).sum()),
    }))


def run_worker(reader: str, path: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", reader, path],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------- main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-mb", type=float, default=1000.0, help="size of the generated file (default 1000)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per reader; the fastest is reported")
    ap.add_argument("--worker", nargs=2, metavar=("READER", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(*args.worker)
        return 0
    with tempfile.TemporaryDirectory(prefix="labelwise-bench-") as folder:
        t = time.perf_counter()
        xc, svm, n_rows = generate(folder, args.size_mb)
        sizes = {"labelwise": os.path.getsize(xc), "sklearn": os.path.getsize(svm)}
        print(f"generated {sizes['labelwise'] / 1e6:.0f} MB, {n_rows} rows in {time.perf_counter() - t:.1f} s ({folder})")
        for p in (xc, svm):  # warm the page cache for both
            with open(p, "rb") as f:
                while f.read(64 << 20):
                    pass
        results = {}
        for reader, path in (("labelwise", xc), ("sklearn", svm)):
            runs = [run_worker(reader, path) for _ in range(args.repeat)]
            best = min(runs, key=lambda r: r["seconds"])
            best["peak_mb"] = max(r["peak_mb"] for r in runs)
            best["mb_s"] = sizes[reader] / 1e6 / best["seconds"]
            results[reader] = best
    lw, sk = results["labelwise"], results["sklearn"]
    same = (lw["rows"], lw["nnz"], lw["label_nnz"], lw["index_sum"]) == (sk["rows"], sk["nnz"], sk["label_nnz"], sk["index_sum"])
    same = same and abs(lw["checksum"] - sk["checksum"]) <= 1e-6 * max(1.0, abs(sk["checksum"]))
    print(f"\nrows {lw['rows']}, nnz {lw['nnz']}, label nnz {lw['label_nnz']}; same matrices: {same}")
    print(f"numba kernel compile/cache load (not timed below): {lw['compile_s']:.2f} s")
    if not (lw["peak_reset"] and sk["peak_reset"]):
        print("note: /proc/self/clear_refs not writable: peaks include the imports' transient peak")
    print()
    print(f"{'reader':<12}{'seconds':>10}{'MB/s':>10}{'peak MB':>10}")
    for name, r in results.items():
        print(f"{name:<12}{r['seconds']:>10.2f}{r['mb_s']:>10.1f}{r['peak_mb']:>10.0f}")
    speed = lw["mb_s"] / sk["mb_s"]
    memory = lw["peak_mb"] / max(sk["peak_mb"], 1e-9)
    print(f"\nspeed ratio  (labelwise / sklearn MB/s): {speed:5.2f}  goal >= {GOAL_SPEED:g}: {'met' if speed >= GOAL_SPEED else 'NOT met'}")
    print(f"memory ratio (labelwise / sklearn peak): {memory:5.2f}  goal <= {GOAL_MEMORY:g}: {'met' if memory <= GOAL_MEMORY else 'NOT met'}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
