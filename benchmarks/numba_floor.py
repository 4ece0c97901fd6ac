"""The memory floor of numba's runtime, and why numba's ahead-of-time compiler cannot lower it.

Part 1 runs in a fresh subprocess and prints the process's peak and current resident set
(``VmHWM``, ``VmRSS``, split into anonymous and file-backed pages) after each step: numpy and
scipy.sparse, ``llvmlite.binding``, ``numba``, and the first call of a cached ``@njit``
function (where numba compiles its runtime module with LLVM). The XMC benchmark's runners are
measured the same way (``VmHWM``), so this is the least any runner that calls a numba kernel
can report.

Part 2 builds a one-function module with ``numba.pycc`` (numba's ahead-of-time compiler) in a
temporary folder and, in another subprocess, measures its peak memory and whether two threads
calling it run at once (they do not: the exported functions hold the GIL).

    .venv/bin/python benchmarks/numba_floor.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import textwrap

STEPS = textwrap.dedent("""
    import json, os, re, sys

    def status():
        text = open("/proc/self/status").read()
        get = lambda key: int(re.search(key + r":\\s+(\\d+)", text).group(1)) / 1024
        return {"peak_mb": get("VmHWM"), "rss_mb": get("VmRSS"), "anon_mb": get("RssAnon"),
                "file_mb": get("RssFile")}

    rows = [("python", status())]
    import numpy, scipy.sparse
    rows.append(("import numpy, scipy.sparse", status()))
    import llvmlite.binding
    rows.append(("import llvmlite.binding", status()))
    import numba
    rows.append(("import numba", status()))
    folder = sys.argv[2]
    if sys.argv[1] == "compile":
        with open(os.path.join(folder, "floor_kernel.py"), "w") as f:
            f.write("import numba\\n@numba.njit(cache=True)\\ndef total(a):\\n"
                    "    s = 0.0\\n    for v in a:\\n        s += v\\n    return s\\n")
    sys.path.insert(0, folder)
    import floor_kernel
    floor_kernel.total(numpy.ones(3))  # "compile" writes the cache that "measure" loads
    rows.append(("first call of a cached @njit kernel", status()))
    if sys.argv[1] == "compile":
        rows = []
    print(json.dumps(rows))
""")

AOT_BUILD = textwrap.dedent("""
    import warnings
    warnings.simplefilter("ignore")
    from numba.pycc import CC
    cc = CC("floor_aot")
    @cc.export("spin", "f8(i8)")
    def spin(n):
        s = 0.0
        for i in range(n):
            s += (i % 7) * 0.5
        return s
    cc.compile()
""")

AOT_RUN = textwrap.dedent("""
    import json, re, sys, threading, time
    import numpy
    import floor_aot
    n = 200_000_000
    t = time.perf_counter(); floor_aot.spin(n); one = time.perf_counter() - t
    threads = [threading.Thread(target=floor_aot.spin, args=(n,)) for _ in range(2)]
    t = time.perf_counter()
    for th in threads: th.start()
    for th in threads: th.join()
    two = time.perf_counter() - t
    peak = int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) / 1024
    print(json.dumps({"one_call_s": one, "two_threads_s": two, "peak_mb": peak,
                      "numba_imported": "numba" in sys.modules}))
""")


def _python(code: str, *args: str, cwd: str | None = None) -> str:
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          cwd=cwd, check=False)
    if done.returncode != 0:
        raise SystemExit(f"subprocess failed:\n{done.stderr}")
    lines = done.stdout.strip().splitlines()
    return lines[-1] if lines else ""


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        _python(STEPS, "compile", tmp)
        rows = json.loads(_python(STEPS, "measure", tmp))
    print("numba's runtime, one fresh process (MB):")
    print(f"  {'step':40s} {'peak':>6s} {'rss':>6s} {'anon':>6s} {'file':>6s}")
    for step, s in rows:
        print(f"  {step:40s} {s['peak_mb']:6.0f} {s['rss_mb']:6.0f} {s['anon_mb']:6.0f} "
              f"{s['file_mb']:6.0f}")
    with tempfile.TemporaryDirectory() as tmp:
        _python(AOT_BUILD, cwd=tmp)
        aot = json.loads(_python(AOT_RUN, cwd=tmp))
    print("numba.pycc (ahead of time) module, one fresh process:")
    print(f"  peak {aot['peak_mb']:.0f} MB with numpy, numba imported: {aot['numba_imported']}")
    print(f"  one call {aot['one_call_s']:.2f} s; two threads, one call each "
          f"{aot['two_threads_s']:.2f} s (about {aot['one_call_s']:.2f} s if the GIL were "
          "released)")


if __name__ == "__main__":
    main()
