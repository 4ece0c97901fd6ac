"""The pure helpers of benchmarks/serve.py (percentiles, quality of served answers) against
hand-computed values and slow references. The benchmark itself (servers, Annif) is not run."""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path

import numpy as np
import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "serve.py"
_spec = importlib.util.spec_from_file_location("bench_serve", _PATH)
serve = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(serve)


def test_percentile_hand_values():
    assert serve.percentile([4, 1, 3, 2], 50) == pytest.approx(2.5)
    assert serve.percentile([1, 2, 3, 4], 99) == pytest.approx(3.97)  # 3 + 0.97 * (4 - 3)
    assert serve.percentile([1, 2, 3, 4], 0) == 1
    assert serve.percentile([1, 2, 3, 4], 100) == 4
    assert serve.percentile([5.0], 99) == 5.0
    with pytest.raises(ValueError, match="no values"):
        serve.percentile([], 50)
    with pytest.raises(ValueError, match=r"\[0, 100\]"):
        serve.percentile([1.0], 101)


def test_percentile_matches_numpy_linear():
    rng = np.random.default_rng(0)
    for n in (1, 2, 7, 100, 1001):
        xs = rng.exponential(size=n).tolist()
        for q in (0, 1, 50, 90, 99, 99.9, 100):
            assert serve.percentile(xs, q) == pytest.approx(np.percentile(xs, q, method="linear"))


def test_precision_at_k_hand_values():
    ranked = [["a", "b", "c"], ["x"]]
    gold = [{"a", "c"}, {"y"}]
    assert serve.precision_at_k(ranked, gold, 1) == pytest.approx(0.5)
    assert serve.precision_at_k(ranked, gold, 2) == pytest.approx(0.25)  # (1 + 0) / (2 * 2)
    assert serve.precision_at_k(ranked, gold, 5) == pytest.approx(0.2)  # short list: misses count
    with pytest.raises(ValueError, match="2 rankings for 1 gold"):
        serve.precision_at_k(ranked, gold[:1], 1)


def test_set_f1_hand_values():
    chosen = [{"a", "b"}, set(), set()]
    gold = [{"a"}, {"b"}, set()]
    micro, samples = serve.set_f1(chosen, gold)
    assert micro == pytest.approx(0.5)  # 2 * 1 / (2 + 2)
    assert samples == pytest.approx((2 / 3 + 0 + 1) / 3)


def test_quality_in_percent():
    q = serve.quality([["a", "b"], ["c"]], [{"a"}, {"c", "d"}], [{"b"}, {"c"}])
    assert q["p_at_1"] == pytest.approx(50.0)
    assert q["p_at_5"] == pytest.approx(100 * 2 / 10)
    assert q["micro_f1"] == pytest.approx(100 * 2 * 1 / (3 + 2))
    assert q["samples_f1"] == pytest.approx(100 * (0 + 2 / 3) / 2)
    assert q["mean_chosen"] == pytest.approx(1.5)


def test_best_threshold_hand_values_and_ties():
    scored = [[("a", 0.9), ("b", 0.5)], [("c", 0.5), ("d", 0.2)]]
    f1, t = serve.best_threshold_micro_f1(scored, [{"a"}, {"d"}])
    assert (f1, t) == (pytest.approx(100 * 2 / 3), 0.9)  # 0.2 ties at 4/6; the first is kept
    # equal scores go in together: 'a' alone would give F1 1.0, but no threshold parts a from b
    f1, t = serve.best_threshold_micro_f1([[("a", 0.5), ("b", 0.5)]], [{"a"}])
    assert (f1, t) == (pytest.approx(100 * 2 / 3), 0.5)


def test_best_threshold_matches_brute_force():
    rng = random.Random(0)
    for _ in range(50):
        n = rng.randint(1, 6)
        scored = [[(f"l{j}", rng.choice([0.1, 0.2, 0.3, 0.5, 0.9])) for j in rng.sample(range(8), rng.randint(0, 5))]
                  for _ in range(n)]
        gold = [{f"l{j}" for j in rng.sample(range(8), rng.randint(0, 3))} for _ in range(n)]
        best = 0.0 if any(gold) else 100.0
        for t in {s for row in scored for _, s in row}:
            chosen = [{lab for lab, s in row if s >= t} for row in scored]
            best = max(best, 100 * serve.set_f1(chosen, gold)[0])
        assert serve.best_threshold_micro_f1(scored, gold)[0] == pytest.approx(best)


def test_latency_summary():
    s = serve.latency_summary([0.01, 0.03, 0.02], wall_s=1.5)
    assert s["p50_ms"] == pytest.approx(20.0)
    assert s["mean_ms"] == pytest.approx(20.0)
    assert s["rps"] == pytest.approx(2.0)


def test_tree_memory_of_this_process():
    m = serve.tree_memory_mb(__import__("os").getpid())
    assert m["processes"] >= 1 and m["rss_mb"] > 10


def test_raw_connection_reads_length_chunked_and_close_answers():
    """The load phases' client against a loopback server that answers with a content-length
    body, then a chunked body, then closes the connection (the client must reconnect)."""
    import asyncio

    seen: list[bytes] = []

    async def handle(reader, writer):
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    break
                n = int([h for h in head.split(b"\r\n")
                         if h.lower().startswith(b"content-length")][0].split(b":")[1])
                seen.append(await reader.readexactly(n))
                k = len(seen)
                if k in (1, 4):
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello")
                elif k == 2:
                    writer.write(b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
                                 b"3\r\nabc\r\n4;x=1\r\ndefg\r\n0\r\n\r\n")
                else:
                    writer.write(b"HTTP/1.1 422 Unprocessable\r\ncontent-length: 2\r\n"
                                 b"connection: close\r\n\r\nno")
                    await writer.drain()
                    break
                await writer.drain()
        finally:
            writer.close()
            await writer.wait_closed()

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        conn = serve.RawConnection(f"http://127.0.0.1:{port}")
        try:
            out = [await conn.request("/a", "application/json", b'{"x": 1}'),
                   await conn.request("/b", "text/plain", b"body"),
                   await conn.request("/c", "text/plain", b"")]
            assert conn.writer is None  # closed after "connection: close"
            out.append(await conn.request("/d", "text/plain", b"again"))  # reconnects
        finally:
            await conn.close()
            server.close()
            await server.wait_closed()
        return out

    out = asyncio.run(main())
    assert out == [(200, b"hello"), (201, b"abcdefg"), (422, b"no"), (200, b"hello")]
    assert seen == [b'{"x": 1}', b"body", b"", b"again"]


def test_annif_and_labelwise_raw_requests():
    a = serve.AnnifAPI("http://127.0.0.1:1", Path("."))
    path, ctype, body = a.single_raw("cooking", {"id": "d", "text": "rice & beans?"})
    assert path == "/v1/projects/cooking-omikuji-en/suggest"
    assert ctype == "application/x-www-form-urlencoded"
    assert body == b"text=rice+%26+beans%3F"
    lw = serve.LabelwiseAPI("http://127.0.0.1:1")
    path, ctype, body = lw.single_raw("cooking", {"id": "d", "text": "rice"})
    assert path == "/v1/models/cooking/predict" and ctype == "application/json"
    import json
    assert json.loads(body) == {"items": [{"id": "d", "text": "rice"}], "top_k": serve.TOP_K,
                                "policy": "tuned"}


def test_annif_and_labelwise_batch_raw_requests():
    import json

    docs = [{"id": "d1", "text": "pähkinä & rice"}, {"id": "d2", "text": "beans"}]
    path, ctype, body = serve.AnnifAPI("http://127.0.0.1:1", Path(".")).batch_raw("archaeology", docs)
    assert path == "/v1/projects/archaeology-omikuji-fi/suggest-batch" and ctype == "application/json"
    assert json.loads(body) == {"documents": [{"document_id": "d1", "text": "pähkinä & rice"},
                                              {"document_id": "d2", "text": "beans"}]}
    path, ctype, body = serve.LabelwiseAPI("http://127.0.0.1:1").batch_raw("cooking", docs)
    assert path == "/v1/models/cooking/predict" and ctype == "application/json"
    assert json.loads(body) == {"items": [{"id": "d1", "text": "pähkinä & rice"},
                                          {"id": "d2", "text": "beans"}],
                                "top_k": serve.TOP_K, "policy": "tuned"}
    assert "pähkinä".encode() in body  # UTF-8, as sent


def test_pass_summary_hand_values():
    # 100 documents in 0.5, 0.25, 1.0 and 0.2 s: 200, 400, 100, 500 documents/s
    out = serve.pass_summary([0.5, 0.25, 1.0, 0.2], 100)
    assert out["passes"] == 4
    assert out["docs_per_s"] == pytest.approx(300.0)  # median of 100, 200, 400, 500
    assert out["docs_per_s_all"] == pytest.approx(400 / 1.95)  # 400 documents in 1.95 s
    assert out["docs_per_s_min"] == pytest.approx(100.0)
    assert out["docs_per_s_max"] == pytest.approx(500.0)
    assert out["spread_pct"] == pytest.approx(100 * 400 / 300)
    one = serve.pass_summary([2.0], 10)
    assert one["docs_per_s"] == one["docs_per_s_all"] == one["docs_per_s_min"] == 5.0
    with pytest.raises(ValueError, match="passes"):
        serve.pass_summary([], 10)


def test_more_passes_needs_both_the_count_and_the_seconds():
    def run(walls_each, **kw):
        walls = []
        while serve.more_passes(walls, **kw):
            walls.append(walls_each)
        return len(walls)

    assert run(0.25, min_passes=5, min_s=3.0) == 12  # 5 passes are only 1.25 s
    assert run(2.0, min_passes=5, min_s=3.0) == 5  # 2 passes give 3 s, 5 are asked
    assert run(0.01, min_passes=1, min_s=3.0, max_passes=20) == 20  # capped
    assert run(0.5, min_passes=1, min_s=0.0) == 1  # --quick
