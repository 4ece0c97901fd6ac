"""Serving benchmark: ``labelwise serve`` against Annif 1.4 (omikuji backend) on loopback.

Both servers serve models trained on the same training split of two corpora and answer the
same test documents, one server after the other, on 127.0.0.1 (free ports):

- ``cooking``: cooking.stackexchange (fastText's split: first 12,404 questions train, last
  3,000 test; 736 tags). Annif's vocabulary is a subject file built from the tag names
  (``<http://example.org/cooking-tags/TAG>`` + the tag as its English label); Annif's
  analyzer ``snowball(english)``.
- ``archaeology``: Annif's own Finnish archaeology corpus (6,404 titles, YSO subjects), split
  here 80/20 by ``labelwise.train_test_split`` (iteratively stratified, ``random_state=0``);
  Annif's vocabulary is the dataset's SKOS file ``yso-archaeology.ttl``; analyzer
  ``snowball(finnish)``.

Annif: ``annif[omikuji]==1.4.*`` in ``.venv-annif`` (``bash benchmarks/setup_annif.sh``), one
omikuji project per corpus with the backend's default parameters, ``annif load-vocab`` +
``annif train`` on the training split, served as its documentation says:
``gunicorn "annif:create_app()" --worker-class uvicorn.workers.UvicornWorker``. Its answers
are ``suggest`` / ``suggest-batch`` with the defaults (limit 10, threshold 0): the chosen set
is every suggestion returned. labelwise: ``labelwise train`` (defaults: tf-idf + the default
model) then ``labelwise tune`` on the training split, served by ``labelwise serve``; the
chosen set is the tuned policy's ``labels``, the ranking its ``candidates`` (``top_k`` 10).

Measured for each server (same worker count; ``--workers``, default 1):

- latency p50 / p99 for one document a request at concurrency 1 (``--n-single``, 1,000);
- throughput (requests/s) and p50 / p99 at concurrency 8 and 32 (``--n-concurrent``, 2,000);
- documents/s for batches of 32 (Annif's ``suggest-batch``, labelwise's ``predict`` with 32
  items), sent one after the other over the whole test split, in several passes
  (``--batch-passes``, default 5, and at least ``--batch-min-s`` seconds, default 3): the
  median pass's documents/s (the goal's figure), all passes together, the slowest and the
  fastest pass, and the server's CPU per document. One pass of archaeology takes labelwise
  0.2-0.6 s, so a single pass was decided by whatever else the machine did in that window.
  The requests go through the load phases' raw client (bodies encoded before the clock
  starts, answers kept as bytes and parsed after it stops), so the client's own cost is
  small and the same for both servers. The first pass's answers also give
- quality on the test split: P@1 and P@5 of the ranking, micro-F1 and samples-F1 of the
  chosen sets (and, for reference, each server's best micro-F1 over any one threshold applied
  to its 10 answers' scores (Annif) or probabilities (labelwise), chosen on the test split
  itself: an upper bound for what one global threshold could give);
- server memory: RSS summed over the server's process tree (master + workers) and PSS (shared
  pages split among the processes that map them), sampled every 0.25 s; after the runs and
  the peak. ``--rss-workers`` (default 4) starts each server once more with that many
  workers, warms every worker and runs the concurrency-32 phase, for the RSS ratio.
- the client's own CPU (seconds of CPU per second of wall clock, of this process): when it
  nears 1.0 the client, not the server, is the limit.

``--soak SECONDS`` (off by default; the issue asks for 600): labelwise only, mixed good and
bad requests at concurrency 32, counting answers by status, 5xx, dropped connections and
the growth of the server's RSS from the end of the first tenth of the run to the end.

Goals (issue 19): p50 and p99 <= 0.25x Annif's, throughput >= 4x Annif's at every
concurrency, quality >= Annif's on both corpora; RSS with 4 workers <= 1.5x one worker.

Run (``.venv`` = the project's virtualenv; the datasets from the mirror):
``LABELWISE_DATASETS_MIRROR=/work/shared/datasets .venv/bin/python benchmarks/serve.py``
(``--quick`` for a smoke run with few requests; ``--only annif`` or ``--only labelwise``).
Records go to ``bench-results/serve.json``, a markdown table to stdout. Models and the Annif
project folder are written once to ``bench-data/serve/`` (``--retrain`` redoes them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit

ROOT = Path(__file__).resolve().parents[1]
MIRROR = "/work/shared/datasets"
ANNIF_VENV = ROOT / ".venv-annif"
COOKING_URI = "http://example.org/cooking-tags/"
BATCH = 32
TOP_K = 10
BATCH_PASSES = 5  # passes over the test split in the batch phase (at least)
BATCH_MIN_S = 3.0  # ... and at least this many seconds of passes
BATCH_MAX_PASSES = 100

CORPORA: dict[str, dict[str, str]] = {
    "cooking": {
        "dataset": "cooking-stackexchange", "language": "en", "analyzer": "snowball(english)",
        "vocab": "cooking-tags", "project": "cooking-omikuji-en",
    },
    "archaeology": {
        "dataset": "annif-archaeology-fi", "language": "fi", "analyzer": "snowball(finnish)",
        "vocab": "yso-archaeology", "project": "archaeology-omikuji-fi",
    },
}


# ----------------------------------------------------------------------------- pure helpers
def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0 <= q <= 100) with linear interpolation between the closest ranks
    (numpy's default ``method='linear'``)."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"q must be in [0, 100], got {q}")
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def precision_at_k(ranked: Sequence[Sequence[str]], gold: Sequence[set[str]], k: int) -> float:
    """Mean over documents of |top k of the ranking ∩ gold| / k (a ranking shorter than k
    counts its missing places as misses)."""
    if len(ranked) != len(gold) or not gold:
        raise ValueError(f"{len(ranked)} rankings for {len(gold)} gold sets")
    return sum(len(set(r[:k]) & g) for r, g in zip(ranked, gold, strict=True)) / (k * len(gold))


def set_f1(chosen: Sequence[set[str]], gold: Sequence[set[str]]) -> tuple[float, float]:
    """(micro-F1, samples-F1) of chosen label sets against gold sets. Samples-F1 averages each
    document's 2|C∩G| / (|C| + |G|), which is 1 when both sets are empty."""
    if len(chosen) != len(gold) or not gold:
        raise ValueError(f"{len(chosen)} chosen sets for {len(gold)} gold sets")
    tp = n_chosen = n_gold = 0
    per_doc = 0.0
    for c, g in zip(chosen, gold, strict=True):
        hit = len(c & g)
        tp += hit
        n_chosen += len(c)
        n_gold += len(g)
        per_doc += 1.0 if not c and not g else 2 * hit / (len(c) + len(g))
    micro = 2 * tp / (n_chosen + n_gold) if n_chosen + n_gold else 1.0
    return micro, per_doc / len(gold)


def quality(ranked: Sequence[Sequence[str]], chosen: Sequence[set[str]],
            gold: Sequence[set[str]]) -> dict[str, float]:
    """P@1, P@5, micro-F1 and samples-F1 of the chosen sets, in percent."""
    micro, samples = set_f1(chosen, gold)
    return {
        "p_at_1": 100 * precision_at_k(ranked, gold, 1),
        "p_at_5": 100 * precision_at_k(ranked, gold, 5),
        "micro_f1": 100 * micro,
        "samples_f1": 100 * samples,
        "mean_chosen": sum(len(c) for c in chosen) / len(chosen),
    }


def best_threshold_micro_f1(scored: Sequence[Sequence[tuple[str, float]]],
                            gold: Sequence[set[str]]) -> tuple[float, float]:
    """(best micro-F1 in percent, its threshold) when the chosen set of every document is its
    scored labels with score >= t, over every t among the scores (and t above all of them)."""
    if len(scored) != len(gold) or not gold:
        raise ValueError(f"{len(scored)} score lists for {len(gold)} gold sets")
    n_gold = sum(len(g) for g in gold)
    pairs = sorted(((s, lab in g) for row, g in zip(scored, gold, strict=True) for lab, s in row),
                   key=lambda p: -p[0])
    best = (0.0 if n_gold else 100.0, math.inf)
    tp = 0
    for i, (s, hit) in enumerate(pairs):
        tp += hit
        if i + 1 < len(pairs) and pairs[i + 1][0] == s:
            continue  # ties go in together: a threshold cannot part equal scores
        f1 = 100 * 2 * tp / (i + 1 + n_gold)
        if f1 > best[0]:
            best = (f1, s)
    return best


def latency_summary(latencies_s: Sequence[float], wall_s: float, n_items: int = 1) -> dict[str, float]:
    """p50 / p99 / mean in ms, requests/s and items/s of one load phase."""
    n = len(latencies_s)
    return {
        "p50_ms": 1000 * percentile(latencies_s, 50),
        "p99_ms": 1000 * percentile(latencies_s, 99),
        "mean_ms": 1000 * sum(latencies_s) / n,
        "rps": n / wall_s,
        "items_per_s": n * n_items / wall_s,
    }


def pass_summary(walls_s: Sequence[float], n_docs: int) -> dict[str, float]:
    """Documents/s of passes over ``n_docs`` documents that took ``walls_s`` seconds each: the
    median pass (the goal's figure), all passes together, the slowest and the fastest pass,
    and the spread (fastest - slowest) / median in percent."""
    if not walls_s or n_docs <= 0:
        raise ValueError(f"{len(walls_s)} passes of {n_docs} documents")
    rates = [n_docs / w for w in walls_s]
    med = percentile(rates, 50)
    return {"passes": len(rates), "docs_per_s": med,
            "docs_per_s_all": n_docs * len(rates) / sum(walls_s),
            "docs_per_s_min": min(rates), "docs_per_s_max": max(rates),
            "spread_pct": 100 * (max(rates) - min(rates)) / med}


def more_passes(walls_s: Sequence[float], *, min_passes: int, min_s: float,
                max_passes: int = BATCH_MAX_PASSES) -> bool:
    """Whether the batch phase runs another pass: fewer than ``min_passes`` so far, or less
    than ``min_s`` seconds of passes, and fewer than ``max_passes``."""
    n = len(walls_s)
    return n < max_passes and (n < min_passes or sum(walls_s) < min_s)


# ----------------------------------------------------------------------------- processes
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def process_tree(pid: int) -> list[int]:
    """pid and all its descendants still alive."""
    kids = _children()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def tree_memory_mb(pid: int) -> dict[str, float]:
    """RSS and PSS summed over pid's process tree, MB (PSS from smaps_rollup; 0 if unreadable)."""
    rss = pss = 0
    n = 0
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1])
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1])
            n += 1
        except OSError:
            continue
    return {"rss_mb": rss / 1024, "pss_mb": pss / 1024, "processes": n}


class Server:
    """A server process group started by this benchmark, its readiness, and a memory sampler."""

    def __init__(self, name: str, cmd: list[str], *, cwd: Path, env: dict[str, str],
                 ready_url: str, log_path: Path, workers: int) -> None:
        self.name, self.cmd, self.cwd, self.env, self.workers = name, cmd, cwd, env, workers
        self.ready_url, self.log_path = ready_url, log_path
        self.proc: subprocess.Popen | None = None
        self.samples: list[tuple[float, float, float]] = []
        self._stop = threading.Event()
        self._sampler: threading.Thread | None = None

    def start(self, timeout: float = 300.0) -> float:
        """Start the server and wait until its ready URL answers 200; seconds to ready."""
        import httpx

        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "wb")  # noqa: SIM115 (lives as long as the process)
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(self.cmd, cwd=self.cwd, env=self.env, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode} before it was "
                                   f"ready; log: {self.log_path}\n{self.log_tail()}")
            try:
                if httpx.get(self.ready_url, timeout=2.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.perf_counter() - t0 > timeout:
                self.stop()
                raise RuntimeError(f"{self.name} not ready after {timeout:.0f} s; log: {self.log_path}")
            time.sleep(0.1)
        ready_s = time.perf_counter() - t0
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()
        return ready_s

    def _sample(self) -> None:
        while not self._stop.is_set() and self.proc is not None and self.proc.poll() is None:
            m = tree_memory_mb(self.proc.pid)
            self.samples.append((time.perf_counter(), m["rss_mb"], m["pss_mb"]))
            self._stop.wait(0.25)

    def settle(self, *, window: float = 3.0, tol: float = 0.01, timeout: float = 120.0) -> float:
        """Wait until every worker is up (master + workers processes) and the tree's RSS moved
        less than ``tol`` over ``window`` seconds; seconds waited."""
        t0 = time.perf_counter()
        last = self.memory()
        while time.perf_counter() - t0 < timeout:
            time.sleep(window)
            now = self.memory()
            stable = abs(now["rss_mb"] - last["rss_mb"]) <= tol * last["rss_mb"]
            if stable and now["processes"] >= self.workers + (self.workers > 1):
                break
            last = now
        return time.perf_counter() - t0

    def memory(self) -> dict[str, float]:
        assert self.proc is not None
        return tree_memory_mb(self.proc.pid)

    def peak(self) -> dict[str, float]:
        return {"peak_rss_mb": max((s[1] for s in self.samples), default=0.0),
                "peak_pss_mb": max((s[2] for s in self.samples), default=0.0)}

    def log_tail(self, n: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self) -> None:
        self._stop.set()
        if self._sampler is not None:
            self._sampler.join()
        if self.proc is None or self.proc.poll() is not None:
            return
        pgid = self.proc.pid  # start_new_session: the group is the one this benchmark started
        os.killpg(pgid, signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(pgid, signal.SIGKILL)
            self.proc.wait(30)


def run_cmd(cmd: list[str], *, cwd: Path, env: dict[str, str], what: str, log: Path) -> float:
    """Run a command with its output appended to ``log``; wall seconds; raise on failure."""
    print(f"[serve-bench] {what}: {' '.join(cmd)} (output: {log})", file=sys.stderr, flush=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as f:
        f.write(f"$ {' '.join(cmd)}\n".encode())
        f.flush()
        t0 = time.perf_counter()
        r = subprocess.run(cmd, cwd=cwd, env=env, stdout=f, stderr=subprocess.STDOUT)
        wall = time.perf_counter() - t0
    if r.returncode != 0:
        tail = log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{what} failed with exit code {r.returncode}; log {log}:\n{tail}")
    return wall


# ----------------------------------------------------------------------------- data + training
def _one_line(text: str) -> str:
    return " ".join(text.split())


def prepare_corpus(corpus: str, folder: Path) -> dict[str, Any]:
    """Write the corpus' train/test files for both tools into ``folder``; the test documents."""
    import labelwise
    from labelwise.datasets import load

    spec = CORPORA[corpus]
    if corpus == "cooking":
        train = load(spec["dataset"], split="train")
        test = load(spec["dataset"], split="test")
        split_note = "fastText split: first 12,404 train, last 3,000 test"
    else:
        full = load(spec["dataset"])
        tr, te = labelwise.train_test_split(full, test_size=0.2, random_state=0)
        train, test = full.subset(tr), full.subset(te)
        split_note = "labelwise.train_test_split(test_size=0.2, random_state=0)"
    folder.mkdir(parents=True, exist_ok=True)
    labelwise.write(train, folder / "train.jsonl")

    def uri(name: str) -> str:
        return COOKING_URI + quote(name, safe="") if corpus == "cooking" else name

    with open(folder / "annif-train.tsv", "w", encoding="utf-8") as f:
        for i in range(train.n_samples):
            f.write(_one_line(train.X[i]) + "\t" + " ".join(f"<{uri(n)}>" for n in train.label_names(i)) + "\n")
    if corpus == "cooking":
        names = sorted(set(train.labels) | set(test.labels))
        with open(folder / "annif-vocab.tsv", "w", encoding="utf-8") as f:
            for n in names:
                f.write(f"<{uri(n)}>\t{n}\n")
        vocab_file = str(folder / "annif-vocab.tsv")
    else:
        vocab_file = f"{os.environ['LABELWISE_DATASETS_MIRROR']}/{spec['dataset']}/archaeology/yso-archaeology.ttl"
    docs = [{"id": f"{corpus}-{i}", "text": _one_line(test.X[i]), "gold": test.label_names(i)}
            for i in range(test.n_samples)]
    (folder / "test.json").write_text(json.dumps(docs, ensure_ascii=False))
    meta = {"corpus": corpus, "dataset": spec["dataset"], "split": split_note,
            "n_train": train.n_samples, "n_test": test.n_samples,
            "n_labels_train": int((train.Y.getnnz(axis=0) > 0).sum()), "vocab_file": vocab_file}
    (folder / "meta.json").write_text(json.dumps(meta, indent=1))
    return meta


def annif_env(annif_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update({
        "ANNIF_PROJECTS": str(annif_dir / "projects.cfg"),
        "ANNIF_DATADIR": str(annif_dir / "data"),
        "NLTK_DATA": str(ANNIF_VENV / "nltk_data"),
        "HF_HUB_OFFLINE": "1",
        "PATH": f"{ANNIF_VENV / 'bin'}:{env.get('PATH', '')}",
    })
    return env


def labelwise_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src") + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def annif_projects_cfg() -> str:
    out = []
    for corpus, spec in CORPORA.items():
        out.append(f"[{spec['project']}]\nname={corpus} omikuji ({spec['language']})\n"
                   f"language={spec['language']}\nbackend=omikuji\nanalyzer={spec['analyzer']}\n"
                   f"vocab={spec['vocab']}\n")
    return "\n".join(out)


def train_all(work: Path, *, retrain: bool, corpora: Sequence[str], sides: Sequence[str]) -> dict[str, Any]:
    """Prepare the data, train and tune both tools' models (once; ``retrain`` redoes them)."""
    rec: dict[str, Any] = {}
    log = work / "train.log"
    annif_dir = work / "annif"
    annif_dir.mkdir(parents=True, exist_ok=True)
    (annif_dir / "projects.cfg").write_text(annif_projects_cfg())
    for corpus in corpora:
        folder = work / corpus
        meta_path = folder / "meta.json"
        meta = (json.loads(meta_path.read_text()) if meta_path.exists() and not retrain
                else prepare_corpus(corpus, folder))
        r: dict[str, Any] = {"data": meta}
        spec = CORPORA[corpus]
        done = annif_dir / f"trained-{corpus}.json"
        if "annif" in sides and (retrain or not done.exists()):
            env = annif_env(annif_dir)
            annif = str(ANNIF_VENV / "bin" / "annif")
            vocab_cmd = [annif, "load-vocab", "--force", spec["vocab"], meta["vocab_file"]]
            if corpus == "cooking":
                vocab_cmd[2:2] = ["--language", "en"]
            t_vocab = run_cmd(vocab_cmd, cwd=annif_dir, env=env, what=f"annif load-vocab {corpus}", log=log)
            t_train = run_cmd([annif, "train", spec["project"], str(folder / "annif-train.tsv")],
                              cwd=annif_dir, env=env, what=f"annif train {corpus}", log=log)
            done.write_text(json.dumps({"load_vocab_s": t_vocab, "train_s": t_train}))
        if "annif" in sides:
            r["annif_train"] = json.loads(done.read_text())
        model = work / "models" / corpus
        done = work / "models" / f"trained-{corpus}.json"
        if "labelwise" in sides and (retrain or not done.exists()):
            env = labelwise_env()
            cli = [sys.executable, "-m", "labelwise.cli.main"]
            t_train = run_cmd([*cli, "train", str(folder / "train.jsonl"), "--out", str(model), "--quiet"],
                              cwd=ROOT, env=env, what=f"labelwise train {corpus}", log=log)
            t_tune = run_cmd([*cli, "tune", str(model), str(folder / "train.jsonl"), "--quiet"],
                             cwd=ROOT, env=env, what=f"labelwise tune {corpus}", log=log)
            done.write_text(json.dumps({"train_s": t_train, "tune_s": t_tune}))
        if "labelwise" in sides:
            r["labelwise_train"] = json.loads(done.read_text())
        rec[corpus] = r
    return rec


# ----------------------------------------------------------------------------- the two APIs
class AnnifAPI:
    name = "annif"

    def __init__(self, base: str, work: Path) -> None:
        self.base = base
        self.work = work

    def check(self, corpora: Sequence[str]) -> None:
        """Raise unless every corpus' project is served (Annif starts without a missing one)."""
        import httpx

        have = {p["project_id"] for p in httpx.get(f"{self.base}/v1/projects", timeout=30).json()["projects"]}
        missing = [CORPORA[c]["project"] for c in corpora if CORPORA[c]["project"] not in have]
        if missing:
            raise RuntimeError(f"Annif serves {sorted(have)}, not {missing}")

    def single(self, client: Any, corpus: str, doc: dict) -> Any:
        return client.post(f"{self.base}/v1/projects/{CORPORA[corpus]['project']}/suggest",
                           data={"text": doc["text"]})

    def single_raw(self, corpus: str, doc: dict) -> tuple[str, str, bytes]:
        """(path, content type, body) of ``single`` for the raw client."""
        return (f"/v1/projects/{CORPORA[corpus]['project']}/suggest",
                "application/x-www-form-urlencoded", urlencode({"text": doc["text"]}).encode())

    def batch_raw(self, corpus: str, docs: Sequence[dict]) -> tuple[str, str, bytes]:
        """(path, content type, body) of one ``suggest-batch`` (defaults: limit 10,
        threshold 0) for the raw client."""
        body = {"documents": [{"document_id": d["id"], "text": d["text"]} for d in docs]}
        return (f"/v1/projects/{CORPORA[corpus]['project']}/suggest-batch", "application/json",
                json.dumps(body, ensure_ascii=False).encode("utf-8"))

    @staticmethod
    def _name(corpus: str, uri: str) -> str:
        return unquote(uri[len(COOKING_URI):]) if corpus == "cooking" else uri

    def parse_batch(self, corpus: str, docs: Sequence[dict], body: Any) -> list[dict]:
        by_id = {r["document_id"]: r["results"] for r in body}
        out = []
        for d in docs:
            scored = [(self._name(corpus, s["uri"]), float(s["score"])) for s in by_id[d["id"]]]
            out.append({"ranked": [n for n, _ in scored], "chosen": {n for n, _ in scored},
                        "scored": scored})
        return out


class LabelwiseAPI:
    name = "labelwise"

    def __init__(self, base: str) -> None:
        self.base = base

    def check(self, corpora: Sequence[str]) -> None:
        """Raise unless every corpus' model is served and ready."""
        import httpx

        have = set(httpx.get(f"{self.base}/health/ready", timeout=30).json().get("models", []))
        missing = [c for c in corpora if c not in have]
        if missing:
            raise RuntimeError(f"labelwise serves {sorted(have)}, not {missing}")

    def single(self, client: Any, corpus: str, doc: dict) -> Any:
        return self.batch(client, corpus, [doc])

    def single_raw(self, corpus: str, doc: dict) -> tuple[str, str, bytes]:
        """(path, content type, body) of ``single`` for the raw client."""
        body = {"items": [{"id": doc["id"], "text": doc["text"]}], "top_k": TOP_K, "policy": "tuned"}
        return f"/v1/models/{corpus}/predict", "application/json", json.dumps(body).encode()

    def batch(self, client: Any, corpus: str, docs: Sequence[dict]) -> Any:
        body = {"items": [{"id": d["id"], "text": d["text"]} for d in docs], "top_k": TOP_K,
                "policy": "tuned"}
        return client.post(f"{self.base}/v1/models/{corpus}/predict", json=body)

    def batch_raw(self, corpus: str, docs: Sequence[dict]) -> tuple[str, str, bytes]:
        """(path, content type, body) of ``batch`` for the raw client."""
        body = {"items": [{"id": d["id"], "text": d["text"]} for d in docs], "top_k": TOP_K,
                "policy": "tuned"}
        return (f"/v1/models/{corpus}/predict", "application/json",
                json.dumps(body, ensure_ascii=False).encode("utf-8"))

    def parse_batch(self, corpus: str, docs: Sequence[dict], body: Any) -> list[dict]:
        items = body["items"]
        if [it["id"] for it in items] != [d["id"] for d in docs]:
            raise RuntimeError("labelwise answered items out of request order")
        return [{"ranked": [c["label"] for c in it["candidates"]], "chosen": set(it["labels"]),
                 "scored": [(c["label"], float(c["probability"])) for c in it["candidates"]]}
                for it in items]


# ----------------------------------------------------------------------------- load phases
class RawConnection:
    """One keep-alive HTTP/1.1 connection on asyncio streams: the load phases' client.

    A Python HTTP library costs more CPU per request than these servers do, and the client
    shares the machine's cores with the server: with httpx the phases at concurrency 8 and 32
    measured the client. This one writes the request bytes and reads the status line, the
    headers and a ``content-length`` or chunked body; nothing else."""

    def __init__(self, base: str) -> None:
        u = urlsplit(base)
        self.host, self.port = u.hostname or "127.0.0.1", u.port or 80
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, path: str, content_type: str, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(f"POST {path} HTTP/1.1\r\nhost: {self.host}:{self.port}\r\n"
                          f"content-type: {content_type}\r\ncontent-length: {len(body)}\r\n\r\n"
                          .encode("latin-1") + body)
        await self.writer.drain()
        head = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(head[0].split(" ", 2)[1])
        headers = {k.strip().lower(): v.strip() for k, v in
                   (line.split(":", 1) for line in head[1:] if ":" in line)}
        if headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                parts.append(await self.reader.readexactly(size + 2))
                if size == 0:
                    break
            data = b"".join(p[:-2] for p in parts)
        else:
            data = await self.reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return status, data

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass
        self.reader = self.writer = None


def tree_cpu_s(pid: int | None) -> float | None:
    """CPU seconds (user + system) used so far by the process ``pid`` and its children."""
    if pid is None:
        return None
    total = 0.0
    for p in process_tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


async def load_phase(base: str, request: Callable[[int], tuple[str, str, bytes]], n: int,
                     concurrency: int, server_pid: int | None = None) -> dict[str, Any]:
    """n requests at ``concurrency`` (``concurrency`` keep-alive connections, each sending its
    next request when its last one is answered), on :class:`RawConnection`; latencies of the
    200s, counts of other statuses and transport errors, the client's CPU and the server's CPU
    per request (its whole process tree, from /proc: a figure the client's cost does not
    touch)."""
    lat: list[float] = []
    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    nxt = 0

    async def worker() -> None:
        nonlocal nxt
        conn = RawConnection(base)
        try:
            while nxt < n:
                i = nxt
                nxt += 1
                req = request(i)
                t0 = time.perf_counter()
                try:
                    status, _ = await conn.request(*req)
                except (OSError, asyncio.IncompleteReadError, ValueError) as e:
                    errors[type(e).__name__] += 1
                    await conn.close()
                    continue
                statuses[status] += 1
                if status == 200:
                    lat.append(time.perf_counter() - t0)
        finally:
            await conn.close()

    srv0 = tree_cpu_s(server_pid)
    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    srv1 = tree_cpu_s(server_pid)
    rec: dict[str, Any] = {"n": n, "concurrency": concurrency, "wall_s": wall,
                           "client_cpu": cpu / wall, "statuses": dict(statuses),
                           "transport_errors": dict(errors), "n_ok": len(lat)}
    if srv0 is not None and srv1 is not None and n:
        rec["server_cpu_ms_per_req"] = 1000 * (srv1 - srv0) / n
    if lat:
        rec.update(latency_summary(lat, wall))
    return rec


async def quality_phase(api: Any, corpus: str, docs: Sequence[dict], *,
                        passes: int = BATCH_PASSES, min_s: float = BATCH_MIN_S,
                        server_pid: int | None = None) -> dict[str, Any]:
    """The test split in batches of 32, one batch after the other, in passes
    (:func:`more_passes`) on one keep-alive :class:`RawConnection`: documents/s
    (:func:`pass_summary`), the server's CPU per document, and the quality of the first
    pass's answers. Bodies are encoded before the clock starts and answers parsed after it
    stops; ``passes_other_answers`` counts later passes whose answers differ from the
    first's in any byte."""
    chunks = [docs[a:a + BATCH] for a in range(0, len(docs), BATCH)]
    requests = [api.batch_raw(corpus, chunk) for chunk in chunks]
    conn = RawConnection(api.base)
    first: list[bytes] = []
    walls: list[float] = []
    lat: list[float] = []
    other = 0
    try:
        srv0 = tree_cpu_s(server_pid)
        cpu0 = time.process_time()
        while more_passes(walls, min_passes=passes, min_s=min_s):
            answers: list[bytes] = []
            t0 = time.perf_counter()
            for i, req in enumerate(requests):
                t1 = time.perf_counter()
                status, data = await conn.request(*req)
                lat.append(time.perf_counter() - t1)
                if status != 200:
                    raise RuntimeError(f"{api.name} batch {i} of {corpus}: HTTP {status}: "
                                       f"{data[:300].decode(errors='replace')}")
                answers.append(data)
            walls.append(time.perf_counter() - t0)
            if not first:
                first = answers
            elif answers != first:
                other += 1
        cpu = time.process_time() - cpu0
        srv1 = tree_cpu_s(server_pid)
    finally:
        await conn.close()
    parsed = [a for chunk, data in zip(chunks, first, strict=True)
              for a in api.parse_batch(corpus, chunk, json.loads(data))]
    gold = [set(d["gold"]) for d in docs]
    rec: dict[str, Any] = {
        "n_docs": len(docs), "batch": BATCH, "wall_s": sum(walls), "pass_walls_s": walls,
        "client_cpu": cpu / sum(walls), **pass_summary(walls, len(docs)),
        "batch_p50_ms": 1000 * percentile(lat, 50), "batch_p99_ms": 1000 * percentile(lat, 99),
        "passes_other_answers": other,
        **quality([a["ranked"] for a in parsed], [a["chosen"] for a in parsed], gold),
    }
    if srv0 is not None and srv1 is not None:
        rec["server_cpu_ms_per_doc"] = 1000 * (srv1 - srv0) / (len(docs) * len(walls))
    if "scored" in parsed[0]:
        f1, t = best_threshold_micro_f1([a["scored"] for a in parsed], gold)
        rec["oracle_micro_f1"] = f1
        rec["oracle_threshold"] = t
    return rec


async def large_text_probe(api: Any, corpus: str, docs: Sequence[dict], mb: float = 1.5) -> dict[str, Any]:
    """One document of about ``mb`` MB (test texts repeated): its status and time (the issue:
    Annif answered a single text over 1 MB with a 500)."""
    import httpx

    text, i, size = [], 0, 0
    while size < mb * 1e6:
        text.append(docs[i % len(docs)]["text"])
        size += len(text[-1]) + 1
        i += 1
    doc = {"id": "large", "text": " ".join(text)}
    async with httpx.AsyncClient(timeout=300.0) as client:
        t0 = time.perf_counter()
        try:
            r = await api.single(client, corpus, doc)
        except httpx.TransportError as e:
            return {"mb": mb, "error": f"{type(e).__name__}: {e}", "s": time.perf_counter() - t0}
    return {"mb": mb, "status": r.status_code, "s": time.perf_counter() - t0,
            "body": r.text[:200] if r.status_code != 200 else None}


def _docs_cycle(docs: Sequence[dict], n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    order = list(range(len(docs)))
    rng.shuffle(order)
    return [docs[order[i % len(order)]] for i in range(n)]


def measure_server(server: Server, api: Any, tests: dict[str, list[dict]], args: Any,
                   *, full: bool) -> dict[str, Any]:
    """All phases on one running server; ``full`` False runs the warm-up and c=32 only."""
    rec: dict[str, Any] = {}
    for corpus, docs in tests.items():
        r: dict[str, Any] = {}
        seq = _docs_cycle(docs, max(args.n_single, args.n_concurrent, args.n_warmup), seed=1)
        def one(i: int, corpus: str = corpus, seq: list[dict] = seq) -> tuple[str, str, bytes]:
            return api.single_raw(corpus, seq[i])
        pid = server.proc.pid if server.proc is not None else None
        # warm-up: every worker must have loaded its models and run its kernels once
        r["warmup"] = asyncio.run(load_phase(api.base, one, args.n_warmup, max(4, 4 * server.workers)))
        if server.workers > 1:
            r["settle_s"] = server.settle()
        if full:
            r["batch32"] = asyncio.run(quality_phase(api, corpus, docs, passes=args.batch_passes,
                                                     min_s=args.batch_min_s, server_pid=pid))
            r["c1"] = asyncio.run(load_phase(api.base, one, args.n_single, 1, pid))
            r["c8"] = asyncio.run(load_phase(api.base, one, args.n_concurrent, 8, pid))
        r["c32"] = asyncio.run(load_phase(api.base, one, args.n_concurrent, 32, pid))
        if full:
            r["large_text"] = asyncio.run(large_text_probe(api, corpus, docs))
        r["memory_after"] = server.memory()
        rec[corpus] = r
        print(f"[serve-bench] {api.name} workers={server.workers} {corpus}: "
              + ", ".join(f"{k} {v.get('rps', v.get('docs_per_s', 0)):.1f}/s" for k, v in r.items()
                          if isinstance(v, dict) and ("rps" in v or "docs_per_s" in v)),
              file=sys.stderr, flush=True)
    rec["memory_end"] = server.memory()
    rec.update(server.peak())
    return rec


def make_server(side: str, workers: int, work: Path, results: Path) -> tuple[Server, Any]:
    work, results = work.resolve(), results.resolve()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = results / f"serve-{side}-w{workers}.log"
    if side == "annif":
        annif_dir = work / "annif"
        cmd = [str(ANNIF_VENV / "bin" / "gunicorn"), "annif:create_app()",
               "--worker-class", "uvicorn.workers.UvicornWorker", "--workers", str(workers),
               "--bind", f"127.0.0.1:{port}", "--timeout", "600"]
        server = Server("annif", cmd, cwd=annif_dir, env=annif_env(annif_dir),
                        ready_url=f"{base}/v1/projects", log_path=log, workers=workers)
        api: Any = AnnifAPI(base, work)
    else:
        models = [str(work / "models" / c) for c in CORPORA]
        cmd = [sys.executable, "-m", "labelwise.cli.main", "serve", *models, "--host", "127.0.0.1",
               "--port", str(port), "--workers", str(workers)]
        server = Server("labelwise", cmd, cwd=ROOT, env=labelwise_env(),
                        ready_url=f"{base}/health/ready", log_path=log, workers=workers)
        api = LabelwiseAPI(base)
    return server, api


# ----------------------------------------------------------------------------- soak
def soak_requests(base: str, model: str, docs: Sequence[dict],
                  max_items: int) -> list[tuple[str, float, Callable]]:
    """(kind, weight, request builder) of the soak mix; kinds starting with 'bad' expect 4xx."""
    def predict(client: Any, body: Any, *, raw: bool = False, name: str = model) -> Any:
        url = f"{base}/v1/models/{name}/predict"
        if raw:
            return client.post(url, content=body, headers={"content-type": "application/json"})
        return client.post(url, json=body)

    def doc(i: int) -> dict:
        return docs[i % len(docs)]

    return [
        ("good-single", 50, lambda c, i: predict(c, {"items": [{"id": "a", "text": doc(i)["text"]}],
                                                     "top_k": TOP_K, "policy": "tuned"})),
        ("good-batch32", 15, lambda c, i: predict(c, {"items": [{"id": str(j), "text": doc(i + j)["text"]}
                                                                for j in range(BATCH)], "top_k": TOP_K})),
        ("good-top-k", 5, lambda c, i: predict(c, {"items": [{"id": "a", "text": doc(i)["text"]}],
                                                   "top_k": 3, "policy": "top_k"})),
        ("bad-json", 5, lambda c, i: predict(c, b'{"items": [{"id": 1, "text": "x"', raw=True)),
        ("bad-model", 5, lambda c, i: predict(c, {"items": [{"id": "a", "text": "x"}]}, name="no-such-model")),
        ("bad-types", 5, lambda c, i: predict(c, {"items": "text", "top_k": "ten"})),
        ("bad-policy", 5, lambda c, i: predict(c, {"items": [{"id": "a", "text": "x"}], "policy": {"threshold": 7}})),
        ("bad-no-text", 5, lambda c, i: predict(c, {"items": [{"id": "a"}]})),
        ("bad-too-many", 4, lambda c, i: predict(c, {"items": [{"id": str(j), "text": "x"} for j in range(max_items + 1)]})),
        ("bad-too-large", 1, lambda c, i: predict(c, b'{"items": [{"id": "a", "text": "' + b"a" * (9 << 20) + b'"}]}',
                                                   raw=True)),
    ]


async def soak_phase(base: str, model: str, server: Server, docs: Sequence[dict], seconds: float,
                     concurrency: int = 32, max_items: int = 1000) -> dict[str, Any]:
    import httpx

    mix = soak_requests(base, model, docs, max_items)
    kinds = [m[0] for m in mix]
    weights = [m[1] for m in mix]
    builders = {m[0]: m[2] for m in mix}
    rng = random.Random(7)
    counts: Counter[str] = Counter()
    unexpected: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    n5xx = 0
    t_end = time.perf_counter() + seconds
    t_base = time.perf_counter() + seconds / 10
    rss_base: dict[str, float] | None = None
    drops: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    i_next = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=120.0) as client:
        async def worker() -> None:
            nonlocal n5xx, i_next, rss_base
            while time.perf_counter() < t_end:
                kind = rng.choices(kinds, weights)[0]
                i = i_next
                i_next += 1
                try:
                    r = await builders[kind](client, i)
                except httpx.TransportError as e:
                    errors[f"{kind}:{type(e).__name__}"] += 1
                    if len(drops) < 20:
                        drops.append({"t_s": round(time.perf_counter() - t0, 3), "kind": kind,
                                      "error": f"{type(e).__name__}: {e}"})
                    continue
                counts[f"{kind}:{r.status_code}"] += 1
                if r.status_code >= 500:
                    n5xx += 1
                good = kind.startswith("good")
                if (good and r.status_code != 200) or (not good and not 400 <= r.status_code < 500):
                    unexpected[f"{kind}:{r.status_code}"] += 1
                if rss_base is None and time.perf_counter() >= t_base:
                    rss_base = server.memory()

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    rss_end = server.memory()
    base_rss = (rss_base or rss_end)["rss_mb"]
    return {"seconds": wall, "concurrency": concurrency, "requests": sum(counts.values()),
            "counts": dict(sorted(counts.items())), "n_5xx": n5xx,
            "unexpected": dict(unexpected), "dropped_connections": dict(errors),
            "first_drops": drops,
            "rss_base": rss_base, "rss_end": rss_end,
            "rss_growth_pct": 100 * (rss_end["rss_mb"] - base_rss) / base_rss if base_rss else None,
            **server.peak()}


# ----------------------------------------------------------------------------- report
def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a is not None and b else "-"


def tables(rec: dict[str, Any]) -> str:
    """Markdown: one row per measure and corpus, Annif, labelwise, labelwise/Annif, goal."""
    runs = rec["runs"]
    w, rw = rec["args"]["workers"], rec["args"]["rss_workers"]
    a1, l1 = runs.get(f"annif-w{w}"), runs.get(f"labelwise-w{w}")
    a4, l4 = runs.get(f"annif-w{rw}"), runs.get(f"labelwise-w{rw}")
    lines = [f"workers: {rec['args']['workers']}; machine: {rec['machine']}; {rec['started']}", ""]
    if runs:
        lines += ["| corpus | measure | Annif 1.4 (omikuji) | labelwise | labelwise / Annif | goal |",
                  "|---|---|---:|---:|---:|---|"]

    def get(run: dict | None, corpus: str, *path: str) -> float | None:
        cur: Any = run and run.get(corpus)
        for p in path:
            cur = cur.get(p) if isinstance(cur, dict) else None
        return cur

    def row(corpus: str, label: str, path: tuple[str, ...], fmt: str, goal: str, diff: bool = False,
            pair: tuple[dict | None, dict | None] | None = None) -> None:
        ra, rb = pair or (a1, l1)
        a, b = get(ra, corpus, *path), get(rb, corpus, *path)
        fa = "-" if a is None else format(a, fmt)
        fb = "-" if b is None else format(b, fmt)
        rel = (f"{b - a:+.1f}" if a is not None and b is not None else "-") if diff else _ratio(b, a)
        lines.append(f"| {corpus} | {label} | {fa} | {fb} | {rel} | {goal} |")

    for corpus in rec["corpora"] if runs else []:
        row(corpus, "c=1 p50 ms", ("c1", "p50_ms"), ".2f", "<= 0.25x")
        row(corpus, "c=1 p99 ms", ("c1", "p99_ms"), ".2f", "<= 0.25x")
        row(corpus, "c=1 requests/s", ("c1", "rps"), ".0f", ">= 4x")
        row(corpus, "c=1 server CPU ms / request", ("c1", "server_cpu_ms_per_req"), ".2f", "")
        for c in ("c8", "c32"):
            row(corpus, f"c={c[1:]} requests/s", (c, "rps"), ".0f", ">= 4x")
            row(corpus, f"c={c[1:]} p99 ms", (c, "p99_ms"), ".1f", "<= 0.25x")
            row(corpus, f"c={c[1:]} server CPU ms / request", (c, "server_cpu_ms_per_req"), ".2f", "")
        if rw and rw != w and (a4 or l4):
            row(corpus, f"c=32 requests/s, {rw} workers", ("c32", "rps"), ".0f", ">= 4x", pair=(a4, l4))
            row(corpus, f"c=32 p99 ms, {rw} workers", ("c32", "p99_ms"), ".1f", "<= 0.25x", pair=(a4, l4))
        row(corpus, "batch 32 docs/s (median pass)", ("batch32", "docs_per_s"), ".0f", ">= 4x")
        row(corpus, "batch 32 docs/s, all passes", ("batch32", "docs_per_s_all"), ".0f", "")
        row(corpus, "batch 32 docs/s, slowest pass", ("batch32", "docs_per_s_min"), ".0f", "")
        row(corpus, "batch 32 docs/s, fastest pass", ("batch32", "docs_per_s_max"), ".0f", "")
        row(corpus, "batch 32 passes", ("batch32", "passes"), ".0f", "")
        row(corpus, "batch 32 server CPU ms / doc", ("batch32", "server_cpu_ms_per_doc"), ".3f", "")
        row(corpus, "P@1 %", ("batch32", "p_at_1"), ".2f", ">= +0", diff=True)
        row(corpus, "P@5 %", ("batch32", "p_at_5"), ".2f", ">= +0", diff=True)
        row(corpus, "micro-F1 % (chosen sets)", ("batch32", "micro_f1"), ".2f", ">= +0", diff=True)
        row(corpus, "samples-F1 % (chosen sets)", ("batch32", "samples_f1"), ".2f", ">= +0", diff=True)
        row(corpus, "labels chosen / doc", ("batch32", "mean_chosen"), ".2f", "")
        row(corpus, "best one-threshold micro-F1 % (chosen on test)", ("batch32", "oracle_micro_f1"), ".2f",
            "ref.", diff=True)
    if runs:
        lines += ["", "| server | workers | ready s | RSS MB (end) | PSS MB (end) | peak RSS MB | "
                  "RSS / 1 worker | PSS / 1 worker | client CPU max |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for key, run in runs.items():
        side, nw = key.split("-w")
        one = runs.get(f"{side}-w1")
        cpu = max((v.get("client_cpu", 0) for c in rec["corpora"] for v in run.get(c, {}).values()
                   if isinstance(v, dict)), default=0)
        lines.append(f"| {side} | {nw} | {run['ready_s']:.1f} | {run['memory_end']['rss_mb']:.0f} | "
                     f"{run['memory_end']['pss_mb']:.0f} | {run['peak_rss_mb']:.0f} | "
                     f"{_ratio(run['memory_end']['rss_mb'], one and one['memory_end']['rss_mb'])} | "
                     f"{_ratio(run['memory_end']['pss_mb'], one and one['memory_end']['pss_mb'])} | {cpu:.2f} |")
    probes = [f"{k} {c}: " + (f"HTTP {v[c]['large_text']['status']}" if "status" in v[c]["large_text"]
                              else v[c]["large_text"]["error"]) + f" in {v[c]['large_text']['s']:.1f} s"
              for k, v in runs.items() for c in rec["corpora"] if "large_text" in v.get(c, {})]
    if probes:
        lines += ["", "one 1.5 MB text: " + "; ".join(probes)]
    if rec.get("soak"):
        s = rec["soak"]
        lines += ["", f"soak (labelwise, {s['seconds']:.0f} s, concurrency {s['concurrency']}): "
                  f"{s['requests']} requests, 5xx {s['n_5xx']}, unexpected {sum(s['unexpected'].values())}, "
                  f"dropped connections {sum(s['dropped_connections'].values())}, RSS growth "
                  f"{s['rss_growth_pct']:.2f} % (goal: 0, 0, < 5 %)"]
    return "\n".join(lines)


def machine() -> str:
    try:
        load = os.getloadavg()
    except OSError:
        load = (0.0, 0.0, 0.0)
    return f"{os.cpu_count()} CPUs, load average at start {load[0]:.1f} (shared machine)"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--only", choices=["annif", "labelwise"], help="run one server only")
    ap.add_argument("--corpora", default=",".join(CORPORA), help="comma list (cooking,archaeology)")
    ap.add_argument("--workers", type=int, default=1, help="workers of both servers (default 1)")
    ap.add_argument("--rss-workers", type=int, default=None,
                    help="also start each server with this many workers for the RSS ratio "
                         "(default 4, 0 with --quick; 0: skip)")
    ap.add_argument("--n-single", type=int, default=1000, help="requests at concurrency 1")
    ap.add_argument("--n-concurrent", type=int, default=2000, help="requests at concurrency 8 and 32")
    ap.add_argument("--n-warmup", type=int, default=200, help="warm-up requests per corpus")
    ap.add_argument("--test-docs", type=int, default=0, help="use only the first N test documents (0: all)")
    ap.add_argument("--batch-passes", type=int, default=BATCH_PASSES,
                    help=f"batch phase: at least this many passes over the test split (default {BATCH_PASSES})")
    ap.add_argument("--batch-min-s", type=float, default=BATCH_MIN_S,
                    help=f"batch phase: and at least this many seconds of passes (default {BATCH_MIN_S:g})")
    ap.add_argument("--soak", type=float, default=0, metavar="SECONDS",
                    help="labelwise soak run of this many seconds (0: off; the issue: 600)")
    ap.add_argument("--soak-only", action="store_true", help="with --soak: skip the comparison runs")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 50/100/40 requests, 256 test documents, one batch pass, "
                         "no 4-worker run")
    ap.add_argument("--retrain", action="store_true", help="prepare the data and train again")
    ap.add_argument("--work", default=str(ROOT / "bench-data" / "serve"))
    ap.add_argument("--out", default=str(ROOT / "bench-results" / "serve.json"))
    args = ap.parse_args(argv)
    if args.quick:
        args.n_single, args.n_concurrent, args.n_warmup = 50, 100, 40
        args.test_docs = args.test_docs or 256
        args.batch_passes, args.batch_min_s = 1, 0.0
    if args.batch_passes < 1 or args.batch_min_s < 0:
        ap.error("--batch-passes must be >= 1 and --batch-min-s >= 0")
    if args.rss_workers is None:
        args.rss_workers = 0 if args.quick else 4
    os.environ.setdefault("LABELWISE_DATASETS_MIRROR", MIRROR)
    corpora = [c for c in args.corpora.split(",") if c]
    for c in corpora:
        if c not in CORPORA:
            ap.error(f"--corpora: unknown corpus {c!r} (known: {', '.join(CORPORA)})")
    sides = [args.only] if args.only else ["annif", "labelwise"]
    if "annif" in sides and not (ANNIF_VENV / "bin" / "gunicorn").exists():
        ap.error(f"{ANNIF_VENV} has no gunicorn: run `bash benchmarks/setup_annif.sh` first")
    work, out = Path(args.work).resolve(), Path(args.out).resolve()
    results = out.parent
    results.mkdir(parents=True, exist_ok=True)

    rec: dict[str, Any] = {"args": vars(args), "machine": machine(), "corpora": corpora,
                           "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "runs": {}}
    rec["training"] = train_all(work, retrain=args.retrain, corpora=corpora, sides=sides)
    tests = {}
    for c in corpora:
        docs = json.loads((work / c / "test.json").read_text())
        tests[c] = docs[: args.test_docs] if args.test_docs else docs

    def save() -> None:
        tmp = out.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(rec, indent=1, default=str))
        os.replace(tmp, out)

    plan = [] if args.soak_only else [(side, args.workers, True) for side in sides]
    if args.rss_workers and args.rss_workers != args.workers and not args.soak_only:
        plan += [(side, args.rss_workers, False) for side in sides]
    for side, workers, full in plan:
        server, api = make_server(side, workers, work, results)
        try:
            ready_s = server.start()
            api.check(corpora)
            print(f"[serve-bench] {side} with {workers} worker(s) ready in {ready_s:.1f} s",
                  file=sys.stderr, flush=True)
            run = measure_server(server, api, tests, args, full=full)
            run["ready_s"] = ready_s
            rec["runs"][f"{side}-w{workers}"] = run
        finally:
            server.stop()
        save()
    if args.soak and "labelwise" in sides:
        server, api = make_server("labelwise", args.workers, work, results)
        try:
            ready_s = server.start()
            api.check(corpora)
            first = corpora[0]
            asyncio.run(load_phase(api.base, lambda i: api.single_raw(first, tests[first][i % len(tests[first])]),
                                   args.n_warmup, 8))
            rec["soak"] = asyncio.run(soak_phase(api.base, first, server, tests[first], args.soak))
            rec["soak"]["ready_s"] = ready_s
        finally:
            server.stop()
    rec["finished"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    save()
    print(tables(rec))
    print(f"\nrecords: {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
