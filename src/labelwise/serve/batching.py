"""Server-side micro-batching: concurrent requests to one model grouped into one model call.

A request puts its job (input rows, ``top_k``, policy) on the model's queue and awaits its
future. One worker task per model takes the first job, then gathers jobs that arrive within
``max_wait`` seconds (or are already queued) until ``max_batch`` items, groups the jobs that
share ``top_k`` and policy, and runs each group as one model call in a thread (the event loop
keeps answering meanwhile). Rows are scored independently, so a job's answer does not depend
on its batch mates (sparse models give identical numbers; dense BLAS products may differ in
the last bits with the batch size). When a grouped call fails, each job of the group is run
alone, so one request's failure never reaches another.

While a model call runs, new requests queue up and form the next batch: under load batches
grow by themselves, without any waiting (``max_wait = 0``, the default: a batch is what is
queued when the previous call ends). Measured with ``benchmarks/serve_workers.py``
(cooking.stackexchange, one-document requests, a loaded 2-core machine, one run): against
one model call per request, throughput x2.0 at concurrency 8 and x1.35 at 32 with lower p50
and p99, and the same latency at concurrency 1; a 2 ms wait instead gained less (+8 %/+17 %)
and doubled the median latency at concurrency 1.

A batch of at most ``inline_items`` items (default 1: a lone one-document request) runs on
the event loop itself instead of a thread: the hop to a thread and back (waking the thread,
handing the GIL over twice) cost about as much as the model call of one short text, and a
batch that small blocks the loop for no longer than parsing a request does. So does a lone
job (one request, nothing else queued for the model) whose call is expected to take at most
``inline_seconds`` (default 10 ms). Expected: its size (characters of the texts, or stored
values of the rows, plus one an item) times this model's recent seconds per unit of size,
measured on its calls of two items or more as the CPU time the whole process spent meanwhile
(a loaded machine does not inflate it; a model's own threads count); no measure yet: a
thread. A request of a few very long texts is thus not taken for a short one. Nothing waits
for this model then, so the thread would only add its two wake-ups: on the shared 2-core
machine they were 15-20 % of a 32-document request's wall time, with a tail of 3-9 ms each
(the worker woken late, or the event loop woken late when it ended). Measured with batches
of 32 on Annif's archaeology corpus, one request at a time, the old and the new server side
by side and each request sent to both in turn (2-core machine at load 10-12, three runs):
median pass 1,356 -> 2,207, 1,773 -> 2,142 and 1,787 -> 2,083 documents/s; with the two
servers' scheduling group given priority over the other users' (a quiet machine's
conditions, two runs) 4,052 -> 6,229 and 3,811 -> 5,183, request p50 7.4-7.5 -> 4.9-6.1 ms;
the same answers byte for byte. Other batches (several jobs, or a long call) still run in a
thread, so a big request never stalls the other connections for longer than about
``inline_seconds``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .inputs import concat, n_items

__all__ = ["Batcher", "INLINE_SECONDS"]

#: a lone job expected to take at most this long runs on the event loop (module docstring)
INLINE_SECONDS = 0.010
#: weight of the newest call in the model's seconds-per-unit average
_UNIT_S_WEIGHT = 0.25


@dataclass
class _Job:
    key: Any
    X: Any
    n: int
    future: asyncio.Future = field(repr=False)


class Batcher:
    """Group concurrent jobs of one model (module docstring).

    ``run(key, X)`` is the model call (run in a thread, or on the event loop: module
    docstring); ``observe(n_items)`` is told each batch's size (metrics)."""

    def __init__(self, run: Callable[[Any, Any], list[Any]], *, max_batch: int,
                 max_wait: float, observe: Callable[[int], None] | None = None,
                 inline_items: int = 1, inline_seconds: float = INLINE_SECONDS) -> None:
        self.run = run
        self.inline_items = int(inline_items)
        self.inline_seconds = float(inline_seconds)
        self.unit_seconds: float | None = None  # recent CPU seconds per unit (_units)
        self.max_batch = int(max_batch)
        self.max_wait = float(max_wait)
        self.observe = observe
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    async def submit(self, key: Any, X: Any) -> list[Any]:
        """The model's answer for the rows X (one per row), from a batched call."""
        loop = asyncio.get_running_loop()
        if self._closed:  # swapped out while this request was being parsed: run it alone
            return await self._call(key, X)
        if self._queue is None or self._loop is not loop:
            self._loop = loop
            self._queue = asyncio.Queue()
            self._task = loop.create_task(self._work(self._queue))
        fut = loop.create_future()
        self._queue.put_nowait(_Job(key, X, n_items(X), fut))
        return await fut

    def close(self) -> None:
        """Stop after the queued jobs (called when a new version replaces this one)."""
        self._closed = True
        if self._queue is not None and self._loop is not None and not self._loop.is_closed():
            queue = self._queue
            self._loop.call_soon_threadsafe(queue.put_nowait, None)

    async def _call(self, key: Any, X: Any, *, alone: bool = False) -> list[Any]:
        """The model call of one group; ``alone``: no other job is waiting for this model."""
        n = n_items(X)
        if self.observe is not None:
            self.observe(n)
        if n <= self.inline_items or (alone and self._short(X)):  # module docstring
            return self._timed(key, X, n)
        return await asyncio.to_thread(self._timed, key, X, n)

    def _short(self, X: Any) -> bool:
        """True when the call on X is expected to take at most ``inline_seconds``."""
        per = self.unit_seconds
        return per is not None and _units(X) * per <= self.inline_seconds

    def _timed(self, key: Any, X: Any, n: int) -> list[Any]:
        t0 = time.process_time()
        out = self.run(key, X)
        if n >= 2:  # a lone item's call is mostly fixed cost: it would overstate a unit
            per = (time.process_time() - t0) / _units(X)
            old = self.unit_seconds
            self.unit_seconds = per if old is None else old + _UNIT_S_WEIGHT * (per - old)
        return out

    async def _work(self, queue: asyncio.Queue) -> None:
        loop = asyncio.get_running_loop()
        stop = False
        while not stop:
            first = await queue.get()
            if first is None:
                break
            batch = [first]
            n = first.n
            deadline = loop.time() + self.max_wait
            while n < self.max_batch:
                try:
                    job = queue.get_nowait()
                except asyncio.QueueEmpty:
                    left = deadline - loop.time()
                    if left <= 0:
                        break
                    try:
                        job = await asyncio.wait_for(queue.get(), left)
                    except asyncio.TimeoutError:
                        break
                if job is None:
                    stop = True
                    break
                batch.append(job)
                n += job.n
            groups: dict[Any, list[_Job]] = {}
            for job in batch:
                groups.setdefault(job.key, []).append(job)
            alone = len(batch) == 1 and queue.empty()
            for key, jobs in groups.items():
                await self._run_group(key, jobs, alone=alone)
        while not queue.empty():  # jobs that came in after close: answer them too
            job = queue.get_nowait()
            if job is not None:
                await self._run_group(job.key, [job])

    async def _run_group(self, key: Any, jobs: list[_Job], *, alone: bool = False) -> None:
        live = [j for j in jobs if not j.future.done()]  # a client gone: nothing to do
        if not live:
            return
        try:
            out = await self._call(key, concat([j.X for j in live]), alone=alone)
        except Exception as e:  # noqa: BLE001 - re-run alone below
            if len(live) == 1:
                _fail(live[0], e)
                return
            for job in live:
                try:
                    _set(job, await self._call(key, job.X))
                except Exception as e1:  # noqa: BLE001 - this job's own failure
                    _fail(job, e1)
            return
        a = 0
        for job in live:
            _set(job, out[a:a + job.n])
            a += job.n


def _units(X: Any) -> int:
    """The size of a model call's input: characters of the texts, or stored values of the
    rows, plus one an item."""
    if isinstance(X, list):
        return sum(len(t) for t in X if isinstance(t, str)) + len(X)
    return int(X.nnz) + X.shape[0]


def _set(job: _Job, value: Any) -> None:
    if not job.future.done():
        job.future.set_result(value)


def _fail(job: _Job, e: BaseException) -> None:
    if not job.future.done():
        job.future.set_exception(e)
