"""``labelwise serve --workers N``: load once, then fork N uvicorn workers (pre-fork).

The parent process loads and warms every model (memory-mapped arrays, compiled or cached
numba kernels, the imported libraries), binds the listening socket, then forks the workers;
each runs a :class:`uvicorn.Server` on the inherited socket. The workers share the parent's
pages copy-on-write: the model arrays through the page cache (they are memory-mapped files)
and, unlike workers started afresh (uvicorn's own ``--workers``, which spawns new
interpreters that each import numpy, scipy, numba and LLVM and compile or load the kernels
again), also the libraries and the numba runtime, the bulk of a worker's memory for models
of modest size. A worker that dies is forked again; SIGTERM or SIGINT stops them all.

Forking after numba has compiled is safe here: the models run their kernels through Python
thread pools that exist only during a call (no numba threading layer is started), and
nothing else holds a thread when the workers are forked (models are loaded in the parent's
main thread).
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import socket
import sys
from typing import Any

__all__ = ["serve_prefork"]


def serve_prefork(settings: Any, *, host: str, port: int, workers: int, log_level: str,
                  access_log: bool = False) -> int:
    import uvicorn

    from labelwise.errors import LabelwiseError

    from .app import create_app

    app = create_app(settings, load_in_background=False)
    registry = app.state.registry
    registry.load_all()
    if not registry.ready:
        raise LabelwiseError(f"not serving: {registry.status()}")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    children: set[int] = set()
    stopping = False

    def fork_worker() -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            code = 0
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                uvicorn.Server(config).run(sockets=[sock])
            except BaseException:  # noqa: BLE001 - reported, then the worker ends
                import traceback

                traceback.print_exc()
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        children.add(pid)

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # uvicorn's protocol, loop and lifespan modules imported once here, not in every worker
    config = uvicorn.Config(app, log_level=log_level, lifespan="on", access_log=access_log,
                            timeout_graceful_shutdown=10)
    config.load()
    with contextlib.suppress(ImportError):
        import uvloop  # noqa: F401 - what the workers' loop="auto" picks when installed
    # everything loaded so far outlives the workers: move it out of the collector's reach, so
    # a worker's full collection does not write every object's header (copy-on-write would
    # then give each worker its own copy of the pages holding them)
    gc.collect()
    gc.freeze()
    for _ in range(workers):
        fork_worker()
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        children.discard(pid)
        if not stopping:
            print(f"labelwise serve: worker {pid} ended ({status}); starting another",
                  file=sys.stderr)
            fork_worker()
    sock.close()
    return 0
