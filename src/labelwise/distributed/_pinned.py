"""Tasks pinned to the worker that holds a partition of rows, and what happens when that
worker dies (partitioned training: :mod:`labelwise.distributed.partitions`).

Every task on partition ``k`` runs on its worker (``workers=[w], allow_other_workers=False``),
so rows never move between machines. Dask's own recovery cannot help when ``w`` dies: the
lost results would have to be recomputed elsewhere, and the pinning forbids that (the tasks
would wait for ``w`` for ever). So :class:`Pinned` keeps, for every future it submits, its
*recipe*: the partition, the function and the arguments, with any argument that is itself a
pinned future replaced by that future's recipe (so a recipe never keeps a result alive on a
worker). Tasks that change their first argument in place (the solver's curvature, kept on the
worker between rounds) are recorded on that argument's recipe as *effects*; the last one per
function is kept, since each replaces the previous.

:meth:`Pinned.gather` waits for a round; if a worker of a partition has left the cluster
meanwhile, each of its partitions is given to a surviving worker (the one with the fewest
partitions, then in address order) and every lost future of the round is rebuilt there from
its recipe: back to the read of the partition's source (its file or byte range), then each
step again, the in-place effects replayed in the same task. The functions are deterministic
and the client adds partition sums in partition order, so the result is the same bits as
without the fault.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import cluster_errors

__all__ = ["Pinned", "Recipe", "replay", "SHARE_BYTES"]

#: values at least this big are scattered to the workers once instead of riding in each task
SHARE_BYTES = 1 << 20
#: seconds between checks for a lost worker while a round runs
POLL_S = 0.25


@dataclass(eq=False)
class Recipe:
    """How to compute one pinned future again: ``fn(*args)`` for partition ``part``, last run
    on ``worker``; ``effects``: in-place changes made to its result since (fn name -> (fn,
    the arguments after the first))."""

    part: int
    worker: str
    fn: Any
    args: tuple
    key: str = ""
    effects: dict[str, tuple] = field(default_factory=dict)


def replay(fn: Any, args: tuple, effects: list[tuple]) -> Any:
    """Runs on a worker: ``fn(*args)``, then each in-place effect on the result, in order."""
    out = fn(*args)
    for efn, eargs in effects:
        efn(out, *eargs)
    return out


def _nbytes(value: Any) -> int:
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, list | tuple):
        return sum(_nbytes(v) for v in value)
    return 64


class Pinned:
    """Submits one function per partition, pinned to the partition's worker, and survives
    the loss of a worker (module docstring). ``workers[k]`` is partition ``k``'s worker; the
    list is shared with (and updated for) its owner, e.g. :class:`Partitions`."""

    def __init__(self, client: Any, parts: list[tuple[Any, str]], what: str,
                 tasks: list | None = None, *, workers: list[str] | None = None) -> None:
        self.client, self.what = client, what
        self.futures = [f for f, _ in parts]
        self.workers = workers if workers is not None else [w for _, w in parts]
        self.tasks = tasks  # a test seam: every submitted (function name, worker)
        self.recipes: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self.moved: dict[str, Any] = {}  # key of a lost future -> the future rebuilt for it

    @property
    def parts(self) -> list[tuple[Any, str]]:
        return list(zip(self.futures, self.workers, strict=True))

    # ------------------------------------------------------------------ submitting
    def _recipe_args(self, args: tuple) -> tuple:
        """``args`` with each pinned future replaced by its recipe."""
        out = []
        for a in args:
            r = self.recipes.get(a) if _is_future(a) else None
            out.append(r if r is not None else a)
        return tuple(out)

    def current(self, value: Any) -> Any:
        """The future that stands for ``value`` now (a rebuilt one if it was lost)."""
        while _is_future(value) and value.key in self.moved:
            value = self.moved[value.key]
        return value

    def _submit_one(self, k: int, fn: Any, args: tuple, *, mutates: bool = False,
                    recipe: Recipe | None = None) -> Any:
        w = self.workers[k]
        args = tuple(self.current(a) for a in args)
        if self.tasks is not None:
            self.tasks.append((fn.__name__, w))
        fut = self.client.submit(fn, *args, workers=[w], allow_other_workers=False,
                                 pure=False)
        r = recipe or Recipe(k, w, fn, self._recipe_args(args))
        r.key = fut.key
        self.recipes[fut] = r
        if mutates and _is_future(args[0]) and args[0] in self.recipes:
            self.recipes[args[0]].effects[fn.__name__] = (fn, self._recipe_args(args[1:]))
        return fut

    def submit(self, fn: Any, args_per_part: list[tuple], *, mutates: bool = False) -> list:
        """``fn(*args)`` for every partition, each on its worker; ``mutates``: ``fn`` changes
        its first argument (a pinned future) in place."""
        if len(args_per_part) > len(self.workers):
            raise ValueError(f"{len(args_per_part)} argument tuples for "
                             f"{len(self.workers)} partitions")
        with cluster_errors(self.what):
            return [self._submit_one(k, fn, args, mutates=mutates)
                    for k, args in enumerate(args_per_part)]

    def share(self, value: Any, *, always: bool = False) -> Any:
        """One copy of ``value`` for all partitions' tasks (scattered once to every worker
        when it is big or ``always``; small values travel inside the tasks)."""
        if not always and _nbytes(value) < SHARE_BYTES:
            return value
        with cluster_errors(self.what):
            [fut] = self.client.scatter([value], hash=False, broadcast=True,
                                        workers=sorted(set(self.workers)))
        return fut

    # ------------------------------------------------------------------ gathering
    def gather(self, futures: list) -> list:
        """The results of ``futures`` (pinned futures of this object), rebuilding on a
        surviving worker whatever a lost worker held (module docstring)."""
        import distributed

        futures = list(futures)
        with cluster_errors(self.what):
            while True:
                try:
                    distributed.wait(futures, timeout=POLL_S)
                except TimeoutError:
                    pass
                if all(f.done() for f in futures):
                    return self.client.gather(futures)
                lost = self._lost()
                if lost:
                    self._move(lost)
                futures = [self._rebuild_future(f) for f in futures]

    def _alive(self) -> list[str]:
        # asked of the scheduler itself: ``client.scheduler_info()`` returns a cache that the
        # client's periodic refresh may have just replaced by one without the workers
        return sorted(self.client.sync(self.client.scheduler.identity,
                                       n_workers=-1)["workers"])

    def _lost(self) -> set[str]:
        return set(self.workers) - set(self._alive())

    def _move(self, lost: set[str]) -> None:
        """Give every partition of a lost worker to the surviving worker with the fewest."""
        alive = [w for w in self._alive() if w not in lost]
        if not alive:
            from ..errors import ClusterError

            raise ClusterError(f"{self.what}: every worker that held partitions was lost; "
                               "nothing was saved")
        for k, w in enumerate(self.workers):
            if w in lost:
                held = {a: sum(1 for x in self.workers if x == a) for a in alive}
                self.workers[k] = min(alive, key=lambda a: (held[a], a))

    def _placed(self, fut: Any) -> Recipe | None:
        """``fut``'s recipe when it lives where its partition lives now, else None."""
        r = self.recipes.get(fut)
        return r if r is not None and r.worker == self.workers[r.part] else None

    def _rebuild_future(self, fut: Any) -> Any:
        """``fut``, or, when its partition has moved since it was submitted, the same
        computation submitted again on the partition's worker now."""
        fut = self.current(fut)
        r = self.recipes.get(fut)
        if r is None or self._placed(fut) is not None:
            return fut
        return self._rebuild(r)

    def _rebuild(self, r: Recipe) -> Any:
        """Submit ``r`` again on its partition's worker now (its recipe arguments first,
        each once), and note the new future as the one that stands for the old."""
        if r.key in self.moved:
            cur = self.current(self.moved[r.key])
            if self._placed(cur) is not None:
                return cur
            r = self.recipes.get(cur, r)  # moved before, and lost again: the latest recipe
        args = tuple(self._rebuild(a) if isinstance(a, Recipe) else a for a in r.args)
        effects = [(fn, tuple(self._rebuild(a) if isinstance(a, Recipe) else a for a in eargs))
                   for fn, eargs in r.effects.values()]
        again = Recipe(r.part, self.workers[r.part], r.fn, r.args, effects=dict(r.effects))
        if effects:
            fut = self._submit_one(r.part, replay, (r.fn, args, effects), recipe=again)
        else:
            fut = self._submit_one(r.part, r.fn, args, recipe=again)
        self.moved[r.key] = fut
        return fut


def _is_future(value: Any) -> bool:
    from distributed import Future

    return isinstance(value, Future)
