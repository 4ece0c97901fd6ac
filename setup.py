"""Build step of labelwise's wheel: ship precompiled numba kernels inside the package.

Everything else is declared in pyproject.toml. After setuptools' ``build_py`` has copied the
package into the build folder, this runs ``python -m labelwise.warmup --ship`` on that copy:
the kernels are compiled for numba's ``generic`` CPU (valid on every CPU of the build's
target triple) into ``labelwise/_kernel_cache`` with a manifest of sha256 sums, so that a
wheel install's first run loads them instead of compiling (see labelwise/_numba.py).

Skipped for an editable install (``make venv`` runs the warm-up into the user cache) and
when ``LABELWISE_SHIP_KERNELS=0``; a failed compile fails the build.
"""

import os
import subprocess
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class build_py_with_kernels(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False) or os.environ.get("LABELWISE_SHIP_KERNELS") == "0":
            return
        build_lib = Path(self.build_lib).resolve()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(build_lib), *filter(None, [env.get("PYTHONPATH")])])
        subprocess.run([sys.executable, "-m", "labelwise.warmup", "--ship", "--quiet"], env=env,
                       cwd=build_lib, check=True)
        if not any((build_lib / "labelwise" / "_kernel_cache").glob("*/manifest.json")):
            raise RuntimeError(f"no kernels shipped under {build_lib}/labelwise/_kernel_cache")


setup(cmdclass={"build_py": build_py_with_kernels})
